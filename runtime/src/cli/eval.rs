//! `kiln eval`: score a model on labelled data, or compare two models (an
//! f32 model and its quantized or pruned version) on the same rows.

use std::path::PathBuf;

use anyhow::{Context, bail};
use kiln::data;
use kiln::model::ModelFile;
use kiln::shrink;
use kiln::train::{self, Evaluation};

/// Score a model on labelled rows: accuracy and a confusion matrix for a
/// classifier, mean squared error and R² for a regression model.
///
/// The rows run through the same kernel as the model's module (natively),
/// so the numbers are the module's. The model's feature columns are read by
/// name when the data has them; otherwise every column but the target, in
/// order.
///
/// With a second model B, both run on the same rows and one JSON object
/// reports each one's accuracy, the difference in points (B − A), how often
/// they predict the same class and the largest difference between their
/// scores.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln eval digits.safetensors --data test.csv\n  \
    kiln eval price.safetensors --data houses.csv --target price --json\n  \
    kiln eval digits.safetensors digits-int8.safetensors --data test.csv")]
pub(super) struct Args {
    /// The model file (.safetensors) to score.
    model: PathBuf,
    /// A second model file, compared with the first on the same rows.
    other: Option<PathBuf>,
    /// CSV file with a header line, or `builtin:digits`.
    #[arg(long)]
    data: String,
    /// Column holding the truth (default: the column the model was trained
    /// to predict).
    #[arg(long)]
    target: Option<String>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    if std::fs::read(&a.model).is_ok_and(|b| b.starts_with(b"\0asm")) {
        bail!(
            "{} is a module; kiln eval reads the model file (.safetensors) it was built from",
            a.model.display()
        );
    }
    let model = ModelFile::load(&a.model)?;
    let Some(target) = a.target.clone().or_else(|| model.graph.target.clone()) else {
        bail!("the model records no target column: pass --target COLUMN");
    };
    let table = data::load_table(&a.data)?;
    if let Some(other) = &a.other {
        let b = ModelFile::load(other)?;
        let rows = shrink::labelled_data(&model, &table, Some(&target))?;
        let cmp = shrink::compare(&model, &b, &rows)
            .with_context(|| format!("comparing {} with {}", a.model.display(), other.display()))?;
        println!("{}", serde_json::to_string(&cmp)?);
        return Ok(());
    }
    let evaluation = train::evaluate(&model, &table, &target)
        .with_context(|| format!("scoring {} on {}", a.model.display(), a.data))?;
    if a.json {
        let mut v = serde_json::to_value(&evaluation)?;
        v["model"] = a.model.display().to_string().into();
        if let Some((coefs, intercept)) = train::linear_coefficients(&model) {
            v["coefficients"] = coefs
                .into_iter()
                .map(|(k, c)| (k, c.into()))
                .collect::<serde_json::Map<_, _>>()
                .into();
            v["intercept"] = intercept.into();
        }
        println!("{v}");
        return Ok(());
    }
    println!("model: {}", a.model.display());
    match &evaluation {
        Evaluation::Classification {
            rows,
            accuracy,
            labels,
            confusion,
        } => {
            println!("rows: {rows}\naccuracy: {:.4}", accuracy);
            println!("confusion matrix (rows: true class, columns: predicted):");
            let width = confusion
                .iter()
                .flatten()
                .map(|n| n.to_string().len())
                .chain(labels.iter().map(String::len))
                .max()
                .unwrap_or(1)
                + 1;
            print!("{:>width$}", "");
            for l in labels {
                print!("{l:>width$}");
            }
            println!();
            for (l, row) in labels.iter().zip(confusion) {
                print!("{l:>width$}");
                for n in row {
                    print!("{n:>width$}");
                }
                println!();
            }
        }
        Evaluation::Regression { rows, mse, r2 } => {
            println!("rows: {rows}\nmse: {mse}\nr2: {r2}");
            if let Some((coefs, intercept)) = train::linear_coefficients(&model) {
                let mut formula = format!("{intercept}");
                for (name, c) in &coefs {
                    let sign = if *c < 0.0 { '-' } else { '+' };
                    formula += &format!(" {sign} {} × {name}", c.abs());
                }
                let target = model.graph.target.as_deref().unwrap_or("y");
                println!("fitted: {target} = {formula}");
            }
        }
    }
    Ok(())
}
