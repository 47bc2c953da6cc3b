//! `kiln train`: fit a model on a CSV file or a built-in data set.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::ValueEnum;
use kiln::data;
use kiln::train::{self, Activation, ModelKind, TrainConfig};

/// Train a classifier and write it as a kiln model file (safetensors).
///
/// The data is a CSV file with a header line (`--target` names the column to
/// predict; the other columns, or those listed in `--features`, are the
/// inputs) or `builtin:digits`, the 1,797 8×8 handwritten digits.
/// A fraction of the rows (`--test-split`) is held out and the accuracy on
/// it is reported last. The same `--seed` gives byte-identical output.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  kiln train --data builtin:digits --model mlp:64,32 --seed 1 -o digits.safetensors"
)]
pub(super) struct Args {
    /// CSV file with a header line, or `builtin:digits`.
    #[arg(long)]
    data: String,
    /// Column to predict (default for builtin:digits: `digit`).
    #[arg(long)]
    target: Option<String>,
    /// Comma-separated input columns (default: all but the target).
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
    /// `softmax` (multinomial logistic regression) or `mlp:H1,H2,…`
    /// (hidden layer widths; plain `mlp` means mlp:64,32).
    #[arg(long, default_value = "mlp:64,32")]
    model: ModelKind,
    /// Activation between hidden layers.
    #[arg(long, value_enum, default_value = "relu")]
    activation: ActivationArg,
    /// Optimizer. `sgd`: θ ← θ − α (1/m) Σᵢ ∇J(θ; xᵢ, yᵢ) over mini-batches of `--batch` rows.
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimizerArg,
    /// Learning rate α.
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// Passes over the training rows.
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    /// Mini-batch size m.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// L2 penalty on the weights.
    #[arg(long, default_value_t = 1e-4)]
    l2: f32,
    /// Fraction of rows held out for the test accuracy.
    #[arg(long, default_value_t = 0.2)]
    test_split: f32,
    /// Seed for the split, the initial weights and the batch order. Without
    /// it a seed is drawn from the OS and printed, so the run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Also write the held-out rows (features and target) to this CSV file.
    #[arg(long)]
    test_out: Option<PathBuf>,
    /// Model name recorded in the file (default: the output file's stem).
    #[arg(long)]
    name: Option<String>,
    /// Print one JSON line per epoch instead of a progress bar.
    #[arg(long)]
    log_json: bool,
    /// Output model file (.safetensors).
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ActivationArg {
    Relu,
    Tanh,
    Sigmoid,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OptimizerArg {
    Sgd,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let target = match (&a.target, a.data.as_str()) {
        (Some(t), _) => t.clone(),
        (None, "builtin:digits") => "digit".into(),
        (None, _) => bail!("--target COLUMN is required: name the CSV column to predict"),
    };
    if !(0.0..1.0).contains(&a.test_split) {
        bail!("--test-split must be in [0, 1), got {}", a.test_split);
    }
    if !(a.lr > 0.0 && a.lr.is_finite()) {
        bail!("--lr must be a positive number, got {}", a.lr);
    }
    let seed = match a.seed {
        Some(s) => s,
        None => {
            let s = getrandom::u64().context("drawing a random seed")?;
            eprintln!("seed: {s} (pass --seed {s} to repeat this run)");
            s
        }
    };
    let OptimizerArg::Sgd = a.optimizer;
    let table = data::load_table(&a.data)?;
    let name = a.name.clone().unwrap_or_else(|| {
        a.output
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned())
    });
    let cfg = TrainConfig {
        model: a.model.clone(),
        activation: match a.activation {
            ActivationArg::Relu => Activation::Relu,
            ActivationArg::Tanh => Activation::Tanh,
            ActivationArg::Sigmoid => Activation::Sigmoid,
        },
        lr: a.lr,
        epochs: a.epochs,
        batch: a.batch,
        l2: a.l2,
        test_split: a.test_split,
        seed,
        target,
        features: a.features.clone(),
        name,
    };

    let bar = (!a.log_json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        indicatif::ProgressBar::new(a.epochs as u64).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} epoch {pos}/{len} {msg}")
                .expect("valid template"),
        )
    });
    let trained = train::train(&table, &cfg, |r| {
        if a.log_json {
            println!("{}", serde_json::to_string(r).expect("report serialises"));
        } else if let Some(bar) = &bar {
            bar.set_position(r.epoch as u64);
            bar.set_message(format!("loss {:.4}", r.train_loss));
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    trained
        .model
        .save(&a.output)
        .with_context(|| format!("writing {}", a.output.display()))?;
    if let Some(path) = &a.test_out {
        write_rows(&table, &trained.test_rows, path)?;
    }
    let summary = serde_json::json!({
        "model": a.output,
        "test_rows": trained.test_rows.len(),
        "test_accuracy": trained.test_accuracy,
    });
    println!("{summary}");
    Ok(())
}

/// Writes the selected rows of `table` as CSV (temporary file + rename).
fn write_rows(table: &data::Table, rows: &[usize], path: &std::path::Path) -> anyhow::Result<()> {
    let mut out = Vec::new();
    writeln!(out, "{}", table.columns.join(","))?;
    for &r in rows {
        let cells: Vec<String> = (0..table.columns.len())
            .map(|c| table.value(r, c).to_string())
            .collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    kiln::fsutil::write_atomic(path, &out).with_context(|| format!("writing {}", path.display()))
}
