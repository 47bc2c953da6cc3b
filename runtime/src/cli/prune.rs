//! `kiln prune`: zero dense weights, optionally fine-tuning the rest.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::ValueEnum;
use kiln::data;
use kiln::model::ModelFile;
use kiln::shrink::{self, FinetuneConfig, PruneMethod};

/// Prune a model: set a fraction of its dense weights to zero.
///
/// `--method magnitude` zeroes the `--sparsity` fraction of weights with the
/// smallest |w|, ranked over all dense layers (or within each with
/// `--per-layer`). `--method random` applies the design document's rule
/// wᵢ ← 0 where a random rᵢ < τ (`--tau`, `--seed`). Biases are kept.
///
/// `--finetune EPOCHS --data FILE --target COLUMN` then retrains the
/// remaining weights with the pruned ones held at zero, which recovers most
/// of the accuracy pruning costs.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln prune digits.safetensors --sparsity 0.5 -o pruned.safetensors\n  \
    kiln prune digits.safetensors --sparsity 0.5 --finetune 10 --data builtin:digits --target digit -o pruned.safetensors\n  \
    kiln prune digits.safetensors --method random --tau 0.3 --seed 1 -o pruned.safetensors")]
pub(super) struct Args {
    /// The f32 model file (.safetensors).
    model: PathBuf,
    #[arg(long, value_enum, default_value = "magnitude")]
    method: MethodArg,
    /// Fraction of weights to zero (magnitude), in [0, 1].
    #[arg(long, required_if_eq("method", "magnitude"))]
    sparsity: Option<f32>,
    /// Rank weights within each layer instead of over all layers.
    #[arg(long)]
    per_layer: bool,
    /// Threshold τ of the random rule, in [0, 1]: about τ of the weights go.
    #[arg(long, required_if_eq("method", "random"))]
    tau: Option<f32>,
    /// Seed of the random rule and of fine-tuning's batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fine-tune for this many epochs after pruning (needs --data).
    #[arg(long, requires = "data")]
    finetune: Option<usize>,
    /// Training data for fine-tuning: CSV with a header or builtin:digits.
    #[arg(long)]
    data: Option<String>,
    /// Label column of --data (default: the model's target).
    #[arg(long)]
    target: Option<String>,
    /// Learning rate of fine-tuning.
    #[arg(long, default_value_t = 0.02)]
    lr: f32,
    /// Output model file (.safetensors).
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MethodArg {
    Magnitude,
    Random,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let model = ModelFile::load(&a.model)?;
    let method = match a.method {
        MethodArg::Magnitude => PruneMethod::Magnitude {
            sparsity: a.sparsity.context("--sparsity S is required")?,
            per_layer: a.per_layer,
        },
        MethodArg::Random => PruneMethod::Random {
            tau: a.tau.context("--tau T is required")?,
            seed: a.seed,
        },
    };
    if a.data.is_some() && a.finetune.is_none() {
        bail!("--data is only used with --finetune EPOCHS");
    }
    if !(a.lr > 0.0 && a.lr.is_finite()) {
        bail!("--lr must be a positive number, got {}", a.lr);
    }
    let (mut pruned, _) = shrink::prune(&model, method)?;
    let mut epochs_log = Vec::new();
    if let (Some(epochs), Some(spec)) = (a.finetune, &a.data) {
        let table = data::load_table(spec)?;
        let data = shrink::labelled_data(&model, &table, a.target.as_deref())?;
        let cfg = FinetuneConfig {
            epochs,
            lr: a.lr,
            batch: 32,
            l2: 1e-4,
            seed: a.seed,
        };
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            indicatif::ProgressBar::new(epochs as u64).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} fine-tune epoch {pos}/{len} {msg}",
                )
                .expect("valid template"),
            )
        });
        pruned = shrink::finetune(&pruned, &data, &cfg, |epoch, loss| {
            epochs_log.push(loss);
            if let Some(bar) = &bar {
                bar.set_position(epoch as u64);
                bar.set_message(format!("loss {loss:.4}"));
            }
        })?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    }
    pruned
        .save(&a.output)
        .with_context(|| format!("writing {}", a.output.display()))?;
    let report = shrink::prune::report(&pruned);
    println!(
        "{}",
        serde_json::json!({
            "model": a.output,
            "sparsity": report.sparsity,
            "layers": report.layers.iter().map(|(name, zeros, n)| serde_json::json!({
                "weight": name, "zeros": zeros, "weights": n,
            })).collect::<Vec<_>>(),
            "finetune_loss": epochs_log,
        })
    );
    Ok(())
}
