//! `kiln train`: fit a model on a CSV file or a built-in data set.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::ValueEnum;
use kiln::data;
use kiln::model::Task;
use kiln::train::{self, Activation, Evaluation, ModelKind, Optimizer, TrainConfig};

/// Train a model and write it as a kiln model file (safetensors).
///
/// The data is a CSV file with a header line (`--target` names the column to
/// predict; the other columns, or those listed in `--features`, are the
/// inputs), `builtin:digits`, the 1,797 8×8 handwritten digits, or
/// `builtin:sine`, 2,000 noisy two-frequency sine windows generated from
/// `--seed` (predict the next value from T = `--shape Tx1` steps, default
/// 16; regression). Inputs are standardised with statistics of the training
/// rows, stored in the model, so the model takes raw inputs.
///
/// Models: `linear` (regression, mean squared error), `logistic` (binary
/// classification, cross-entropy), `softmax` (multiclass), `mlp:H1,H2,…`
/// (hidden layers), `cnn[:SPEC]` (convolutions for inputs of `--shape`),
/// and recurrent models over sequences of `--shape TxF`.
/// A CNN SPEC is a comma-separated list: `cNkK[sS][pP]` = convolution with N
/// filters K×K, stride S (default 1), zero padding P (default K/2); `pK` =
/// K×K max pooling; `aK` = K×K average pooling; `dN` = dense layer of N.
/// Plain `cnn` is `c16k3,p2,d64` for 8×8 images and
/// `c16k3,p2,c32k3,p2,d64` from 16×16 up.
/// A recurrent model is `rnn:H`, `gru:H` or `lstm:H` (H = state size) with
/// options `:seq` (output every step: needed by every recurrent layer but
/// the last), `:bi` (bidirectional), `:orig` (GRU only: the original
/// formulation instead of linear-before-reset), comma-separated, then dense
/// layers `dN`: e.g. `gru:32`, `lstm:32:seq:bi,lstm:32,d64`. A CSV row is
/// one sequence, its feature columns time-major (step 0's F features, then
/// step 1's, …).
///
/// A fraction of the rows (`--val-split`) is held out: each epoch reports
/// its loss and metric, `--early-stop` watches it, and the last line of
/// output scores the final model on it (accuracy, or MSE and R²). The same
/// `--seed` gives byte-identical output. See docs/training.md.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln train --data builtin:digits --model mlp:64,32 --seed 1 -o digits.safetensors\n  \
    kiln train --data builtin:digits --model cnn --plot curve.png -o cnn.safetensors\n  \
    kiln train --data builtin:digits --model gru:32 --shape 8x8 --optimizer adam --clip 5 -o gru.safetensors\n  \
    kiln train --data builtin:sine --model lstm:32 --shape 16x1 --optimizer adam --seed 1 -o sine.safetensors\n  \
    kiln train --data xy.csv --target y --model linear --optimizer sgd -o xy.safetensors")]
pub(super) struct Args {
    /// CSV file with a header line, `builtin:digits`, or `builtin:sine`
    /// (generated from --seed; windows of T = --shape Tx1 steps).
    #[arg(long)]
    data: String,
    /// Column to predict (default: `digit` for builtin:digits, `next` for
    /// builtin:sine).
    #[arg(long)]
    target: Option<String>,
    /// Comma-separated input columns (default: all but the target).
    #[arg(long, value_delimiter = ',')]
    features: Vec<String>,
    /// `linear`, `logistic`, `softmax`, `mlp:H1,H2,…` (plain `mlp` is
    /// mlp:64,32), `cnn[:SPEC]`, or recurrent: `rnn:H`, `gru:H`, `lstm:H`
    /// with `:seq`, `:bi`, `:orig`, then `dN` (see above).
    #[arg(long, default_value = "mlp:64,32")]
    model: ModelKind,
    /// Shape of one input row: CxHxW for a cnn (default for builtin:digits:
    /// 1x8x8), TxF (time steps × features per step) for a recurrent model
    /// (defaults: 8x8 for builtin:digits, 16x1 for builtin:sine).
    #[arg(long)]
    shape: Option<String>,
    /// `classification` (cross-entropy, one score per class) or
    /// `regression` (mean squared error, one value). Default: regression
    /// for `linear` and builtin:sine, classification otherwise.
    #[arg(long, value_enum)]
    task: Option<TaskArg>,
    /// Gradient-norm clipping: before each step, when the global L2 norm of
    /// all gradients together exceeds NORM, scale them all down to NORM.
    #[arg(long, value_name = "NORM")]
    clip: Option<f32>,
    /// Activation after hidden dense and convolution layers.
    #[arg(long, value_enum, default_value = "relu")]
    activation: ActivationArg,
    /// `gd`: θ ← θ − α∇J(θ) on all training rows at once.
    /// `sgd`: θ ← θ − α(1/m)Σᵢ∇J(θ; xᵢ, yᵢ) on mini-batches of `--batch` m rows.
    /// `momentum`: v ← βv + (1−β)∇J(θ); θ ← θ − αv, on mini-batches.
    /// `adam`: Adam with β₁ = `--beta`, β₂ = 0.999, ε = 1e-8, on mini-batches.
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimizerArg,
    /// Learning rate α (default: 0.1 for gd, 0.05 for sgd and momentum,
    /// 0.01 for adam).
    #[arg(long)]
    lr: Option<f32>,
    /// Momentum's β, and Adam's β₁.
    #[arg(long, default_value_t = 0.9)]
    beta: f32,
    /// Passes over the training rows.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Mini-batch size m (sgd, momentum, adam).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// L2 penalty λ: adds λ/2·Σw² over the weights (not biases) to the loss.
    #[arg(long, default_value_t = 1e-3)]
    l2: f32,
    /// Fraction of rows held out for validation and the final score.
    #[arg(long, alias = "test-split", default_value_t = 0.2)]
    val_split: f32,
    /// Stop after N epochs without a lower validation loss, and keep the
    /// weights of the best epoch.
    #[arg(long, value_name = "N")]
    early_stop: Option<usize>,
    /// Seed for the split, the initial weights and the batch order. Without
    /// it a seed is drawn from the OS and printed, so the run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Also write the held-out rows (features and target) to this CSV file.
    #[arg(long)]
    test_out: Option<PathBuf>,
    /// Draw train and validation loss per epoch to this .png or .svg file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Model name recorded in the file (default: the output file's stem).
    #[arg(long)]
    name: Option<String>,
    /// Print one JSON line per epoch (epoch, train_loss, val_loss,
    /// val_metric, metric, seconds) instead of a progress bar.
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
enum TaskArg {
    Classification,
    Regression,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OptimizerArg {
    Gd,
    Sgd,
    Momentum,
    Adam,
}

/// Parses `1x8x8` (or `1,8,8`) into dimensions.
fn parse_shape(s: &str) -> anyhow::Result<Vec<usize>> {
    let dims: Option<Vec<usize>> = s
        .split(['x', 'X', ','])
        .map(|d| d.trim().parse().ok().filter(|&n: &usize| n > 0))
        .collect();
    match dims {
        Some(d) if !d.is_empty() => Ok(d),
        _ => bail!("--shape `{s}` is not a list of positive sizes like 1x8x8"),
    }
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    // Stage 1: every check that needs no I/O, so a bad flag fails at once.
    let mut cfg = config(&a)?;
    // Stage 2: the system — directories, the OS's randomness, the data.
    check_output_dirs(&a)?;
    cfg.seed = match a.seed {
        Some(s) => s,
        None => {
            let s = getrandom::u64().context("drawing a random seed")?;
            eprintln!("seed: {s} (pass --seed {s} to repeat this run)");
            s
        }
    };
    let table = match a.data.as_str() {
        SINE => data::sine(sine_window(&a)?, cfg.seed)?,
        spec => data::load_table(spec)?,
    };
    let trained = train_with_progress(&table, &cfg, a.log_json)?;

    trained
        .model
        .save(&a.output)
        .with_context(|| format!("writing {}", a.output.display()))?;
    if let Some(path) = &a.test_out {
        write_rows(&trained.held_out, path)?;
    }
    if let Some(path) = &a.plot {
        train::plot::loss_curves(&trained.history, path)?;
    }
    println!("{}", summary(&a.output, cfg.seed, &trained));
    Ok(())
}

/// The training settings `a` asks for, checked without I/O. The seed is
/// `--seed`, or 0 until [`execute`] draws one.
fn config(a: &Args) -> anyhow::Result<TrainConfig> {
    let target = match (&a.target, a.data.as_str()) {
        (Some(t), _) => t.clone(),
        (None, DIGITS) => "digit".into(),
        (None, SINE) => data::sine::TARGET.into(),
        (None, _) => bail!("--target COLUMN is required: name the CSV column to predict"),
    };
    // gd and sgd ignore --beta, so TrainConfig cannot check it for them.
    if !(0.0..1.0).contains(&a.beta) {
        bail!("--beta must be in [0, 1), got {}", a.beta);
    }
    let optimizer = match a.optimizer {
        OptimizerArg::Gd => Optimizer::Gd,
        OptimizerArg::Sgd => Optimizer::Sgd,
        OptimizerArg::Momentum => Optimizer::Momentum { beta: a.beta },
        OptimizerArg::Adam => Optimizer::Adam {
            beta1: a.beta,
            beta2: 0.999,
        },
    };
    let mut cfg = TrainConfig {
        model: a.model.clone(),
        activation: match a.activation {
            ActivationArg::Relu => Activation::Relu,
            ActivationArg::Tanh => Activation::Tanh,
            ActivationArg::Sigmoid => Activation::Sigmoid,
        },
        optimizer,
        lr: a.lr.unwrap_or(optimizer.default_lr()),
        epochs: a.epochs,
        batch: a.batch,
        l2: a.l2,
        val_split: a.val_split,
        early_stop: a.early_stop,
        seed: a.seed.unwrap_or(0),
        target,
        features: a.features.clone(),
        shape: None,
        name: a.name.clone().unwrap_or_else(|| {
            a.output
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned())
        }),
        task: match a.task {
            Some(TaskArg::Classification) => Task::Classification,
            Some(TaskArg::Regression) => Task::Regression,
            None if a.model == ModelKind::Linear || a.data == SINE => Task::Regression,
            None => Task::Classification,
        },
        clip: a.clip,
    };
    cfg.validate()?;
    cfg.shape = input_shape(a)?;
    if a.data == SINE {
        sine_window(a)?;
    }
    if let Some(p) = &a.plot {
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("png" | "svg")) {
            bail!("--plot {}: the file must end in .png or .svg", p.display());
        }
    }
    Ok(cfg)
}

const DIGITS: &str = "builtin:digits";
const SINE: &str = "builtin:sine";

/// The shape of one input row: `--shape` for a cnn (1×8×8 for the built-in
/// digits) or a recurrent model (8×8 for the digits, T×1 for the sine
/// windows), none (flat) for the other models.
fn input_shape(a: &Args) -> anyhow::Result<Option<Vec<usize>>> {
    let given = a.shape.as_deref().map(parse_shape).transpose()?;
    let data = a.data.as_str();
    Ok(match (&a.model, given) {
        (ModelKind::Cnn(_), Some(s)) => Some(s),
        (ModelKind::Cnn(_), None) if data == DIGITS => Some(vec![1, 8, 8]),
        (ModelKind::Cnn(_), None) => {
            bail!("a cnn needs --shape CxHxW, the image shape of one row (e.g. 1x28x28)")
        }
        (ModelKind::Recurrent(_), Some(s)) if s.len() == 2 => Some(s),
        (ModelKind::Recurrent(_), Some(s)) => bail!(
            "a recurrent model needs --shape TxF (time steps × features per step), got {} sizes",
            s.len()
        ),
        (ModelKind::Recurrent(_), None) if data == DIGITS => Some(vec![8, 8]),
        (ModelKind::Recurrent(_), None) if data == SINE => Some(vec![data::sine::DEFAULT_STEPS, 1]),
        (ModelKind::Recurrent(_), None) => bail!(
            "a recurrent model needs --shape TxF: the time steps and features per step of one \
             row (e.g. 8x8), whose columns are read time-major"
        ),
        // builtin:sine's window, for a model that reads it flat.
        (_, Some(_)) if data == SINE => None,
        (_, Some(_)) => bail!("--shape applies to cnn and recurrent models only"),
        (_, None) => None,
    })
}

/// The window T of builtin:sine: `--shape Tx1` (default 16).
fn sine_window(a: &Args) -> anyhow::Result<usize> {
    match a.shape.as_deref().map(parse_shape).transpose()? {
        None => Ok(data::sine::DEFAULT_STEPS),
        Some(s) if s.len() == 2 && s[1] == 1 => Ok(s[0]),
        Some(_) => bail!("builtin:sine has one value per step: use --shape Tx1 (e.g. 16x1)"),
    }
}

/// Fails before training, not after, when an output cannot be written.
fn check_output_dirs(a: &Args) -> anyhow::Result<()> {
    for path in [Some(&a.output), a.test_out.as_ref(), a.plot.as_ref()]
        .into_iter()
        .flatten()
    {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            bail!(
                "{}: directory {} does not exist",
                path.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Trains, reporting each epoch as a JSON line (`log_json`) or on a
/// progress bar when stderr is a terminal.
fn train_with_progress(
    table: &data::Table,
    cfg: &TrainConfig,
    log_json: bool,
) -> anyhow::Result<train::Trained> {
    let bar = (!log_json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        indicatif::ProgressBar::new(cfg.epochs as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} epoch {pos}/{len} {msg} [{elapsed}<{eta}]",
            )
            .expect("valid template"),
        )
    });
    let trained = train::train(table, cfg, |r| {
        if log_json {
            println!("{}", serde_json::to_string(r).expect("report serialises"));
        } else if let Some(bar) = &bar {
            bar.set_position(r.epoch as u64);
            let val = match (r.val_loss, r.val_metric) {
                (Some(l), Some(m)) => format!(", val loss {l:.4}, val {} {m:.4}", r.metric),
                _ => String::new(),
            };
            bar.set_message(format!("loss {:.4}{val}", r.train_loss));
        }
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(trained)
}

/// The last line `kiln train` prints: where the model went, the seed, the
/// epochs and the held-out score.
fn summary(output: &std::path::Path, seed: u64, trained: &train::Trained) -> serde_json::Value {
    let mut summary = serde_json::json!({
        "model": output,
        "seed": seed,
        "epochs_run": trained.epochs_run,
        "best_epoch": trained.best_epoch,
        "held_out_rows": trained.held_out.rows(),
    });
    match &trained.evaluation {
        Some(Evaluation::Classification { accuracy, .. }) => {
            summary["test_accuracy"] = (*accuracy).into()
        }
        Some(Evaluation::Regression { mse, r2, .. }) => {
            summary["test_mse"] = (*mse).into();
            summary["test_r2"] = (*r2).into();
        }
        None => {}
    }
    if let Some(r2) = trained.baseline_r2 {
        summary["baseline_r2"] = r2.into();
    }
    if let Some(last) = trained.history.last() {
        summary["train_loss"] = last.train_loss.into();
    }
    if let Some((coefs, intercept)) = train::linear_coefficients(&trained.model) {
        summary["coefficients"] = coefs
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect::<serde_json::Map<_, _>>()
            .into();
        summary["intercept"] = intercept.into();
    }
    summary
}

/// Writes `table` as CSV (temporary file + rename).
fn write_rows(table: &data::Table, path: &std::path::Path) -> anyhow::Result<()> {
    let mut out = Vec::new();
    writeln!(out, "{}", table.columns.join(","))?;
    for r in 0..table.rows() {
        let cells: Vec<String> = (0..table.columns.len())
            .map(|c| table.value(r, c).to_string())
            .collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    kiln::fsutil::write_atomic(path, &out).with_context(|| format!("writing {}", path.display()))
}
