//! `kiln quantize`: an f32 model file → an int8 model file.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::ValueEnum;
use kiln::data;
use kiln::model::ModelFile;
use kiln::shrink::{self, CalibMethod, QuantizeConfig, Scheme};

/// Quantize a model to int8: smaller, faster, and bit-identical everywhere.
///
/// Dense weights and convolution filters become int8 with one scale per
/// output channel (max|w|/127) and biases i32. Activations between these
/// layers become int8 with a scale and zero point taken from calibration data
/// (`--calibrate`), and pooling between them runs on int8: the kernel
/// multiplies int8 by int8 into i32 and requantizes with an integer
/// multiplier and shift — no float math between layers. `--dynamic` needs no
/// data: each dense layer quantizes its input per row at run time instead
/// (convolutions then stay f32).
///
/// The calibration data is a CSV file (columns matched by the model's feature
/// names, otherwise all columns in order; the target column is ignored) or a
/// JSON array of rows. A few hundred representative rows are enough.
/// The scheme is documented in docs/quantization.md.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln quantize digits.safetensors --calibrate train.csv -o digits-int8.safetensors\n  \
    kiln quantize digits.safetensors --dynamic -o digits-dyn.safetensors\n  \
    kiln eval digits.safetensors digits-int8.safetensors --data test.csv")]
pub(super) struct Args {
    /// The f32 model file (.safetensors).
    model: PathBuf,
    /// Calibration rows: CSV with a header, JSON array of rows, or
    /// `builtin:digits`.
    #[arg(long)]
    calibrate: Option<String>,
    /// How activation ranges are taken from the calibration data.
    #[arg(long, value_enum, default_value = "minmax")]
    calib_method: CalibArg,
    /// Percentile for `--calib-method percentile` (the range is
    /// [100 − p, p] percent of the values).
    #[arg(long, default_value_t = 99.99)]
    percentile: f64,
    /// Quantize activations per row at run time; no calibration data.
    #[arg(long, conflicts_with = "calibrate")]
    dynamic: bool,
    /// `per-channel`: one weight scale per output, round to nearest.
    /// `doc`: the design document's w ← ⌊w·q⌋ with one factor per tensor
    /// (less accurate; kept for comparison).
    #[arg(long, value_enum, default_value = "per-channel")]
    scheme: SchemeArg,
    /// CSV column to ignore in the calibration data (default: the model's
    /// target).
    #[arg(long)]
    target: Option<String>,
    /// Output model file (.safetensors).
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CalibArg {
    Minmax,
    Percentile,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemeArg {
    PerChannel,
    Doc,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let model = ModelFile::load(&a.model)?;
    if !(50.0 < a.percentile && a.percentile <= 100.0) {
        bail!("--percentile must be in (50, 100], got {}", a.percentile);
    }
    let rows = match &a.calibrate {
        None if !a.dynamic => bail!(
            "static quantization needs calibration rows: pass --calibrate DATA (a few hundred \
             rows like those the model will see), or use --dynamic to quantize activations at \
             run time"
        ),
        None => None,
        Some(spec) => Some(read_calibration(&model, spec, a.target.as_deref())?),
    };
    let cfg = QuantizeConfig {
        dynamic: a.dynamic,
        method: match a.calib_method {
            CalibArg::Minmax => CalibMethod::MinMax,
            CalibArg::Percentile => CalibMethod::Percentile(a.percentile),
        },
        scheme: match a.scheme {
            SchemeArg::PerChannel => Scheme::PerChannel,
            SchemeArg::Doc => Scheme::Doc,
        },
    };
    let quantized = shrink::quantize(&model, rows.as_deref(), &cfg)?;
    quantized
        .save(&a.output)
        .with_context(|| format!("writing {}", a.output.display()))?;
    let before = std::fs::metadata(&a.model).map(|m| m.len()).unwrap_or(0);
    let after = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "model": a.output,
            "bytes": after,
            "f32_bytes": before,
            "ratio": after as f64 / before.max(1) as f64,
            "calibration_rows": rows.as_ref().map(|r| r.len() / model.input_len().unwrap_or(1).max(1)),
        })
    );
    Ok(())
}

/// Reads calibration rows for `model` from a CSV/JSON file or a built-in set.
fn read_calibration(
    model: &ModelFile,
    spec: &str,
    target: Option<&str>,
) -> anyhow::Result<Vec<f32>> {
    let width = model.input_len()?;
    let target = target.or(model.graph.target.as_deref());
    let (bytes, path) = if spec.starts_with("builtin:") {
        let table = data::load_table(spec)?;
        let mut csv = table.columns.join(",") + "\n";
        for r in 0..table.rows() {
            let cells: Vec<String> = (0..table.columns.len())
                .map(|c| table.value(r, c).to_string())
                .collect();
            csv += &(cells.join(",") + "\n");
        }
        (csv.into_bytes(), PathBuf::from(spec))
    } else {
        let path = PathBuf::from(spec);
        (
            std::fs::read(&path).with_context(|| format!("reading {spec}"))?,
            path,
        )
    };
    let rows = data::read_rows(&bytes, &path, width, &model.graph.input.features, target)
        .context("reading the calibration data (it must have the model's input width)")?;
    if rows.is_empty() {
        bail!("{spec}: the calibration data has no rows");
    }
    Ok(rows)
}
