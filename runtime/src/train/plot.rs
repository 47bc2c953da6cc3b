//! Training curves: train and validation loss per epoch, drawn with
//! plotters as a PNG or an SVG (chosen by the file extension).
//!
//! Text is measured and (in PNGs) rendered with DejaVu Sans Mono, compiled
//! into the binary (`runtime/assets/`, Bitstream Vera/DejaVu licence,
//! redistributable), so plotting needs no system fonts.

use std::path::Path;

use plotters::prelude::*;

use super::EpochReport;

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: plot files must end in .png or .svg")]
    Extension { path: std::path::PathBuf },
    #[error("there are no epochs to plot")]
    Empty,
    #[error("{path}: drawing the plot: {message}")]
    Draw {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Writes the loss curves of `history` to `path` (temporary file + rename).
pub fn loss_curves(history: &[EpochReport], path: &Path) -> Result<(), PlotError> {
    if history.is_empty() {
        return Err(PlotError::Empty);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let draw_err = |e: String| PlotError::Draw {
        path: path.into(),
        message: e,
    };
    register_font();
    let bytes = match ext.as_deref() {
        Some("svg") => {
            let mut svg = String::new();
            draw(
                SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area(),
                history,
            )
            .map_err(draw_err)?;
            svg.into_bytes()
        }
        Some("png") => {
            // plotters writes the PNG itself: draw into a temporary file in
            // the same directory, then rename it into place.
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let io = |source| PlotError::Io {
                path: path.into(),
                source,
            };
            let tmp = tempfile::Builder::new()
                .prefix(".kiln-plot-")
                .suffix(".png")
                .tempfile_in(dir)
                .map_err(io)?;
            draw(
                BitMapBackend::new(tmp.path(), (800, 500)).into_drawing_area(),
                history,
            )
            .map_err(draw_err)?;
            tmp.persist(path).map_err(|e| io(e.error))?;
            return Ok(());
        }
        _ => return Err(PlotError::Extension { path: path.into() }),
    };
    crate::fsutil::write_atomic(path, &bytes).map_err(|source| PlotError::Io {
        path: path.into(),
        source,
    })
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is valid TrueType; failing here would be a build defect.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    history: &[EpochReport],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| err.to_string();
    area.fill(&WHITE).map_err(e)?;
    let train: Vec<(f32, f32)> = history
        .iter()
        .map(|r| (r.epoch as f32, r.train_loss))
        .collect();
    let val: Vec<(f32, f32)> = history
        .iter()
        .filter_map(|r| Some((r.epoch as f32, r.val_loss?)))
        .collect();
    let top = train
        .iter()
        .chain(&val)
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold(0.0f32, f32::max)
        .max(1e-6)
        * 1.05;
    let last = history.len().max(2) as f32;
    let mut chart = ChartBuilder::on(&area)
        .caption("kiln train: loss per epoch", ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1f32..last, 0f32..top)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss")
        .draw()
        .map_err(e)?;
    chart
        .draw_series(LineSeries::new(train, BLUE.stroke_width(2)))
        .map_err(e)?
        .label("train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    if !val.is_empty() {
        chart
            .draw_series(LineSeries::new(val, RED.stroke_width(2)))
            .map_err(e)?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(e)?;
    area.present().map_err(e)?;
    Ok(())
}
