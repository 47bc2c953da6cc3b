//! Host-side training with ndarray.
//!
//! [`train`] fits a model on a [`Table`]: it holds out a validation split,
//! fits the input standardisation on the training rows, trains a
//! [`Network`] with the chosen [`Optimizer`] and returns a [`ModelFile`]
//! whose graph starts with that standardisation, so the model takes raw
//! inputs. Everything random comes from one seed, so a seed gives identical
//! bytes.
//!
//! * [`prepare`] — features, truth, the validation split, standardisation;
//! * [`fit`] — the epoch loop and early stopping;
//! * [`layers`] — dense, convolution, pooling, activations, back-propagation;
//! * [`recurrent`] — RNN, GRU and LSTM layers, back-propagation through time;
//! * [`sequence`] — the recurrent models' `--model` syntax and graph layers;
//! * [`baseline`] — least squares, the linear reference for regression;
//! * [`losses`] — softmax and binary cross-entropy, mean squared error;
//! * [`optim`] — gd, sgd, momentum, adam;
//! * [`models`] — the `--model` families and the CNN spec language;
//! * [`eval`] — accuracy and confusion matrix, MSE and R²;
//! * [`plot`] — loss curves as PNG or SVG.

pub mod baseline;
pub mod eval;
mod fit;
mod layers;
mod losses;
mod models;
mod optim;
pub mod plot;
mod prepare;
mod recurrent;
mod sequence;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use eval::{EvalError, Evaluation, evaluate, linear_coefficients};
pub use layers::{Activation, Layer, Network};
pub use losses::{Loss, Targets};
pub use models::{CNN_SPEC_HELP, CnnLayer, ModelKind, default_cnn};
pub use optim::{Optimizer, Stepper, clip_global_norm};
pub use recurrent::{Cell, Recurrent};
pub use sequence::{RECURRENT_SPEC_HELP, RecurrentModel, RecurrentToken};

use crate::data::{DataError, Table};
use crate::model::{FORMAT_VERSION, Graph, InputSpec, LayerSpec, ModelFile, Task, Tensor};
use prepare::{Prepared, Truth};

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub model: ModelKind,
    pub activation: Activation,
    pub optimizer: Optimizer,
    /// Learning rate α.
    pub lr: f32,
    pub epochs: usize,
    /// Mini-batch size m (ignored by `gd`, which uses every training row).
    pub batch: usize,
    /// L2 penalty `l2/2 · Σ w²` on weights (not biases).
    pub l2: f32,
    /// Fraction of rows held out for validation and the final report.
    pub val_split: f32,
    /// Stop after this many epochs without a lower validation loss, and
    /// keep the best epoch's weights.
    pub early_stop: Option<usize>,
    pub seed: u64,
    pub target: String,
    /// Feature columns; empty means every column but the target.
    pub features: Vec<String>,
    /// The shape of one input row (`[c, h, w]` for a CNN, `[t, f]` for a
    /// recurrent model); `None` means flat.
    pub shape: Option<Vec<usize>>,
    pub name: String,
    /// Classification (cross-entropy, softmax output) or regression (mean
    /// squared error, one value); `linear` is regression, `logistic` and
    /// `softmax` classification.
    pub task: Task,
    /// Gradient-norm clipping: the global norm over all parameters' gradients
    /// is scaled down to at most this (see [`clip_global_norm`]).
    pub clip: Option<f32>,
}

impl TrainConfig {
    /// Checks the settings that need no data: every number in its range.
    /// [`train`] calls it first; a front end may call it before any I/O.
    pub fn validate(&self) -> Result<(), TrainError> {
        let unit = |v: f32| (0.0..1.0).contains(&v);
        if !unit(self.val_split) {
            return Err(TrainError::OutOfRange {
                setting: "--val-split",
                rule: "in [0, 1)",
                value: self.val_split,
            });
        }
        let beta = match self.optimizer {
            Optimizer::Momentum { beta } | Optimizer::Adam { beta1: beta, .. } => beta,
            Optimizer::Gd | Optimizer::Sgd => 0.0,
        };
        if !unit(beta) {
            return Err(TrainError::OutOfRange {
                setting: "--beta",
                rule: "in [0, 1)",
                value: beta,
            });
        }
        if !(self.l2 >= 0.0 && self.l2.is_finite()) {
            return Err(TrainError::OutOfRange {
                setting: "--l2",
                rule: "a non-negative number",
                value: self.l2,
            });
        }
        for (setting, value, min) in [
            ("--epochs", Some(self.epochs), "1"),
            ("--batch", Some(self.batch), "1"),
            ("--early-stop", self.early_stop, "1 epoch"),
        ] {
            if value == Some(0) {
                return Err(TrainError::Zero { setting, min });
            }
        }
        if let Some(c) = self.clip
            && !(c > 0.0 && c.is_finite())
        {
            return Err(TrainError::OutOfRange {
                setting: "--clip",
                rule: "a positive number",
                value: c,
            });
        }
        let fixed = match self.model {
            ModelKind::Linear => Some(("linear", Task::Regression, "regression")),
            ModelKind::Logistic => Some(("logistic", Task::Classification, "classification")),
            ModelKind::Softmax => Some(("softmax", Task::Classification, "classification")),
            _ => None,
        };
        if let Some((model, task, name)) = fixed
            && task != self.task
        {
            return Err(TrainError::Task { model, task: name });
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(TrainError::OutOfRange {
                setting: "--lr",
                rule: "a positive number",
                value: self.lr,
            });
        }
        Ok(())
    }
}

/// One epoch's numbers. Losses are means over rows; for regression they
/// are in squared target units, and `val_metric` is the validation MSE.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    /// Mean loss over the epoch's batches, including the L2 penalty.
    pub train_loss: f32,
    pub val_loss: Option<f32>,
    /// Validation accuracy (classification) or MSE (regression).
    pub val_metric: Option<f32>,
    pub metric: &'static str,
    pub seconds: f64,
}

/// A trained model and how it did.
#[derive(Debug, Clone)]
pub struct Trained {
    pub model: ModelFile,
    /// The held-out rows (the validation split) as a table.
    pub held_out: Table,
    /// The model (its kernel) scored on `held_out`; `None` without one.
    pub evaluation: Option<Evaluation>,
    pub epochs_run: usize,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    pub history: Vec<EpochReport>,
    /// For a regression model other than `linear`: the R² on the held-out
    /// rows of least squares on the same inputs and training rows
    /// ([`baseline::least_squares_r2`]).
    pub baseline_r2: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    /// A setting outside its range, named by its `kiln train` flag.
    #[error("{setting} must be {rule}, got {value}")]
    OutOfRange {
        setting: &'static str,
        rule: &'static str,
        value: f32,
    },
    /// A count that must be at least 1, named by its `kiln train` flag.
    #[error("{setting} must be at least {min}")]
    Zero {
        setting: &'static str,
        min: &'static str,
    },
    #[error(
        "target column `{column}` has value {value} on line {line}; classes must be whole numbers 0..=1000 (for a real-valued target use --task regression, or --model linear)"
    )]
    BadClass {
        column: String,
        line: usize,
        value: f32,
    },
    #[error("--model {model} is only for {task} (drop --task, or pick another model)")]
    Task {
        model: &'static str,
        task: &'static str,
    },
    #[error("the target has only one class; a classifier needs two or more")]
    OneClass,
    #[error(
        "--model logistic is binary, but the target `{column}` has {found} classes; use --model softmax"
    )]
    NotBinary { column: String, found: usize },
    #[error("--val-split {0} leaves no rows to train on, or none to validate on")]
    Split(f32),
    #[error("--early-stop needs validation rows: set --val-split above 0")]
    EarlyStopWithoutValidation,
    #[error("the model has no features to learn from")]
    NoFeatures,
    #[error("--shape {shape:?} holds {product} values, but there are {features} feature columns")]
    ShapeMismatch {
        shape: Vec<usize>,
        product: usize,
        features: usize,
    },
    #[error("{0}")]
    Model(#[from] models::ShapeError),
    #[error("training diverged at epoch {epoch} (loss is {loss}); try a smaller --lr")]
    Diverged { epoch: usize, loss: f32 },
    #[error("scoring the held-out rows: {0}")]
    Eval(#[from] EvalError),
}

/// Trains a model on `table`; `on_epoch` sees each epoch's report.
pub fn train(
    table: &Table,
    cfg: &TrainConfig,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<Trained, TrainError> {
    cfg.validate()?;
    // One generator, drawn from in a fixed order (split, initial weights,
    // batch order), so a seed gives identical bytes.
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let data = prepare::prepare(table, cfg, &mut rng)?;
    let (net, loss) = models::build(
        &cfg.model,
        &data.shape,
        data.truth.outputs(),
        cfg.task == Task::Regression,
        cfg.activation,
        &mut rng,
    )?;
    let fit = fit::fit(net, loss, &data, cfg, &mut rng, on_epoch)?;
    let baseline_r2 = match &data.truth {
        Truth::Values(v, ..) if cfg.model != ModelKind::Linear => {
            let y = |rows: &[usize]| rows.iter().map(|&r| v[r]).collect::<ndarray::Array1<f32>>();
            baseline::least_squares_r2(
                data.x_train.view(),
                y(&data.train_rows).view(),
                data.x_val.view(),
                y(&data.val_rows).view(),
            )
        }
        _ => None,
    };
    let model = to_model_file(cfg, table, &data, &fit.net, loss);
    let held_out = table.select_rows(&data.val_rows);
    let evaluation = if data.val_rows.is_empty() {
        None
    } else {
        Some(evaluate(&model, &held_out, &cfg.target)?)
    };
    Ok(Trained {
        model,
        held_out,
        evaluation,
        epochs_run: fit.history.len(),
        best_epoch: fit.best_epoch,
        history: fit.history,
        baseline_r2,
    })
}

/// Index of the largest value (the first, on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// The model file: the standardisation fitted in `data`, then `net`.
fn to_model_file(
    cfg: &TrainConfig,
    table: &Table,
    data: &Prepared,
    net: &Network,
    loss: Loss,
) -> ModelFile {
    let Prepared {
        features,
        shape,
        truth,
        mean,
        std,
        ..
    } = data;
    let target_scale = match truth {
        Truth::Values(_, m, s) => Some((*s, *m)),
        Truth::Classes(..) => None,
    };
    let mut tensors = std::collections::BTreeMap::new();
    tensors.insert(
        "input.mean".into(),
        Tensor::new(vec![mean.len()], mean.to_vec()),
    );
    tensors.insert(
        "input.std".into(),
        Tensor::new(vec![std.len()], std.to_vec()),
    );
    let mut layers = vec![LayerSpec::Standardize {
        mean: "input.mean".into(),
        std: "input.std".into(),
    }];
    layers.extend(models::export(net, loss, target_scale, &mut tensors));
    let (task, labels) = match truth {
        Truth::Classes(_, distinct) => (
            Task::Classification,
            distinct.iter().map(|c| c.to_string()).collect(),
        ),
        Truth::Values(..) => (Task::Regression, Vec::new()),
    };
    ModelFile {
        graph: Graph {
            format: FORMAT_VERSION,
            name: cfg.name.clone(),
            version: "1".into(),
            task,
            input: InputSpec {
                name: "input".into(),
                shape: shape.to_vec(),
                features: features.iter().map(|&c| table.columns[c].clone()).collect(),
            },
            target: Some(cfg.target.clone()),
            labels,
            layers,
            wiring: Vec::new(),
        },
        tensors,
    }
}
