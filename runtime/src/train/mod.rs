//! Host-side training with ndarray.
//!
//! [`train`] fits a model on a [`Table`]: it holds out a validation split,
//! fits the input standardisation on the training rows, trains a
//! [`Network`] with the chosen [`Optimizer`] and returns a [`ModelFile`]
//! whose graph starts with that standardisation, so the model takes raw
//! inputs. Everything random comes from one seed, so a seed gives identical
//! bytes.
//!
//! * [`layers`] — dense, convolution, pooling, activations, back-propagation;
//! * [`losses`] — softmax and binary cross-entropy, mean squared error;
//! * [`optim`] — gd, sgd, momentum, adam;
//! * [`models`] — the `--model` families and the CNN spec language;
//! * [`eval`] — accuracy and confusion matrix, MSE and R²;
//! * [`plot`] — loss curves as PNG or SVG.

pub mod eval;
mod layers;
mod losses;
mod models;
mod optim;
pub mod plot;

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub use eval::{EvalError, Evaluation, evaluate, linear_coefficients};
pub use layers::{Activation, Layer, Network};
pub use losses::{Loss, Targets};
pub use models::{CNN_SPEC_HELP, CnnLayer, ModelKind, default_cnn};
pub use optim::{Optimizer, Stepper};

use crate::data::{DataError, Table};
use crate::model::{FORMAT_VERSION, Graph, InputSpec, LayerSpec, ModelFile, Task, Tensor};

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
    /// The shape of one input row (`[c, h, w]` for a CNN); `None` means flat.
    pub shape: Option<Vec<usize>>,
    pub name: String,
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
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(
        "target column `{column}` has value {value} on line {line}; classes must be whole numbers 0..=1000 (use --model linear for a real-valued target)"
    )]
    BadClass {
        column: String,
        line: usize,
        value: f32,
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

/// The truth for every row.
enum Truth {
    /// Class indices and the class values they stand for.
    Classes(Vec<usize>, Vec<usize>),
    /// Values, with the mean and standard deviation used to standardise them.
    Values(Vec<f32>, f32, f32),
}

/// Trains a model on `table`; `on_epoch` sees each epoch's report.
pub fn train(
    table: &Table,
    cfg: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<Trained, TrainError> {
    let target = table.column(&cfg.target)?;
    let features: Vec<usize> = if cfg.features.is_empty() {
        (0..table.columns.len()).filter(|&c| c != target).collect()
    } else {
        cfg.features
            .iter()
            .map(|f| table.column(f))
            .collect::<Result<_, _>>()?
    };
    if features.is_empty() {
        return Err(TrainError::NoFeatures);
    }
    let shape = cfg.shape.clone().unwrap_or_else(|| vec![features.len()]);
    let product: usize = shape.iter().product();
    if product != features.len() {
        return Err(TrainError::ShapeMismatch {
            shape,
            product,
            features: features.len(),
        });
    }
    let n = table.rows();
    let truth = truth(table, target, cfg)?;

    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let n_val = (n as f32 * cfg.val_split).round() as usize;
    if n_val >= n || (cfg.val_split > 0.0 && n_val == 0) {
        return Err(TrainError::Split(cfg.val_split));
    }
    if cfg.early_stop.is_some() && n_val == 0 {
        return Err(TrainError::EarlyStopWithoutValidation);
    }
    let (val_rows, train_rows) = order.split_at(n_val);

    let x_all = Array2::from_shape_fn((n, features.len()), |(r, c)| table.value(r, features[c]));
    let x_train = x_all.select(Axis(0), train_rows);
    let mean = x_train.mean_axis(Axis(0)).expect("rows");
    let std = x_train
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-6 { s } else { 1.0 });
    let standardize = |x: ArrayView2<f32>| (&x - &mean) / &std;
    let x_train = standardize(x_train.view());
    let x_val = standardize(x_all.select(Axis(0), val_rows).view());

    let outputs = match &truth {
        Truth::Classes(_, distinct) => distinct.len(),
        Truth::Values(..) => 1,
    };
    let (mut net, loss) = models::build(&cfg.model, &shape, outputs, cfg.activation, &mut rng)?;
    // Regression trains on standardised targets; reports undo the scaling.
    let (loss_scale, metric) = match &truth {
        Truth::Classes(..) => (1.0, "accuracy"),
        Truth::Values(_, _, s) => (s * s, "mse"),
    };
    let targets = |rows: &[usize], pick: &dyn Fn(usize) -> usize| -> TargetBuf {
        match &truth {
            Truth::Classes(c, _) => TargetBuf::Classes(rows.iter().map(|&i| c[pick(i)]).collect()),
            Truth::Values(v, m, s) => {
                TargetBuf::Values(rows.iter().map(|&i| (v[pick(i)] - m) / s).collect())
            }
        }
    };
    let y_train = targets(train_rows, &|i| i);
    let y_val = targets(val_rows, &|i| i);

    let batch = if cfg.optimizer.full_batch() {
        train_rows.len()
    } else {
        cfg.batch.max(1)
    };
    let mut stepper = Stepper::new(cfg.optimizer, cfg.lr);
    let mut idx: Vec<usize> = (0..train_rows.len()).collect();
    let mut history = Vec::new();
    let mut best = (f32::INFINITY, 0, net.clone());
    for epoch in 1..=cfg.epochs {
        let start = std::time::Instant::now();
        idx.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in idx.chunks(batch) {
            let xb = x_train.select(Axis(0), chunk);
            let yb = y_train.select(chunk);
            let f = |out: &Array2<f32>| loss.eval(out, yb.as_targets());
            let (value, grads) = net.loss_and_grad(xb.view(), &f, cfg.l2);
            if !value.is_finite() {
                return Err(TrainError::Diverged { epoch, loss: value });
            }
            total += value * chunk.len() as f32;
            stepper.step(net.params_mut(), &grads);
        }
        let (val_loss, val_metric) = if val_rows.is_empty() {
            (None, None)
        } else {
            let out = net.predict(x_val.view());
            let (l, _) = loss.eval(&out, y_val.as_targets());
            let m = match (&y_val, loss) {
                (TargetBuf::Values(_), _) => l * loss_scale,
                (TargetBuf::Classes(c), Loss::BinaryCrossEntropy) => {
                    out.rows()
                        .into_iter()
                        .zip(c)
                        .filter(|(r, c)| (r[0] > 0.0) == (**c == 1))
                        .count() as f32
                        / c.len() as f32
                }
                (TargetBuf::Classes(c), _) => {
                    out.rows()
                        .into_iter()
                        .zip(c)
                        .filter(|(r, c)| argmax(r.as_slice().expect("row")) == **c)
                        .count() as f32
                        / c.len() as f32
                }
            };
            (Some(l * loss_scale), Some(m))
        };
        let report = EpochReport {
            epoch,
            train_loss: total / train_rows.len() as f32 * loss_scale,
            val_loss,
            val_metric,
            metric,
            seconds: start.elapsed().as_secs_f64(),
        };
        on_epoch(&report);
        history.push(report);
        if let Some(patience) = cfg.early_stop {
            let v = val_loss.expect("validation rows");
            if v < best.0 {
                best = (v, epoch, net.clone());
            } else if epoch - best.1 >= patience {
                break;
            }
        }
    }
    let epochs_run = history.len();
    let best_epoch = if cfg.early_stop.is_some() && best.1 > 0 {
        net = best.2;
        best.1
    } else {
        epochs_run
    };

    let target_scale = match &truth {
        Truth::Values(_, m, s) => Some((*s, *m)),
        Truth::Classes(..) => None,
    };
    let model = to_model_file(
        cfg,
        table,
        &features,
        &shape,
        &truth,
        &mean.to_vec(),
        &std.to_vec(),
        &net,
        loss,
        target_scale,
    );
    let held_out = Table {
        path: table.path.clone(),
        columns: table.columns.clone(),
        values: val_rows
            .iter()
            .flat_map(|&r| (0..table.columns.len()).map(move |c| (r, c)))
            .map(|(r, c)| table.value(r, c))
            .collect(),
    };
    let evaluation = if val_rows.is_empty() {
        None
    } else {
        Some(evaluate(&model, &held_out, &cfg.target)?)
    };
    Ok(Trained {
        model,
        held_out,
        evaluation,
        epochs_run,
        best_epoch,
        history,
    })
}

/// Owned targets of a set of rows.
enum TargetBuf {
    Classes(Vec<usize>),
    Values(Vec<f32>),
}

impl TargetBuf {
    fn select(&self, rows: &[usize]) -> TargetBuf {
        match self {
            TargetBuf::Classes(c) => TargetBuf::Classes(rows.iter().map(|&i| c[i]).collect()),
            TargetBuf::Values(v) => TargetBuf::Values(rows.iter().map(|&i| v[i]).collect()),
        }
    }

    fn as_targets(&self) -> Targets<'_> {
        match self {
            TargetBuf::Classes(c) => Targets::Classes(c),
            TargetBuf::Values(v) => Targets::Values(v),
        }
    }
}

/// Reads the target column as classes (classifiers) or values (`linear`).
fn truth(table: &Table, target: usize, cfg: &TrainConfig) -> Result<Truth, TrainError> {
    let n = table.rows();
    let values: Vec<f32> = (0..n).map(|r| table.value(r, target)).collect();
    if cfg.model == ModelKind::Linear {
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let std = if var.sqrt() > 1e-6 {
            var.sqrt() as f32
        } else {
            1.0
        };
        return Ok(Truth::Values(values, mean as f32, std));
    }
    let mut classes = Vec::with_capacity(n);
    for (r, &v) in values.iter().enumerate() {
        if v.fract() != 0.0 || !(0.0..=1000.0).contains(&v) {
            return Err(TrainError::BadClass {
                column: cfg.target.clone(),
                line: r + 2,
                value: v,
            });
        }
        classes.push(v as usize);
    }
    let mut distinct = classes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        return Err(TrainError::OneClass);
    }
    if cfg.model == ModelKind::Logistic && distinct.len() != 2 {
        return Err(TrainError::NotBinary {
            column: cfg.target.clone(),
            found: distinct.len(),
        });
    }
    // Classes are indices 0..k, labelled by the value they had in the data.
    let idx = classes
        .iter()
        .map(|c| distinct.binary_search(c).expect("present"))
        .collect();
    Ok(Truth::Classes(idx, distinct))
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

#[allow(clippy::too_many_arguments)]
fn to_model_file(
    cfg: &TrainConfig,
    table: &Table,
    features: &[usize],
    shape: &[usize],
    truth: &Truth,
    mean: &[f32],
    std: &[f32],
    net: &Network,
    loss: Loss,
    target_scale: Option<(f32, f32)>,
) -> ModelFile {
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
        },
        tensors,
    }
}
