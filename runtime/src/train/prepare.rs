//! The data side of training: which columns are features, what the target
//! means (classes or values), the validation split and the standardisation
//! fitted on the training rows — everything [`super::train`] needs before it
//! builds a network.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::losses::Targets;
use super::{ModelKind, TrainConfig, TrainError};
use crate::data::Table;
use crate::model::Task;

/// The truth for every row.
pub(super) enum Truth {
    /// Class indices and the class values they stand for.
    Classes(Vec<usize>, Vec<usize>),
    /// Values, with the mean and standard deviation used to standardise them.
    Values(Vec<f32>, f32, f32),
}

impl Truth {
    /// The network's output width.
    pub(super) fn outputs(&self) -> usize {
        match self {
            Truth::Classes(_, distinct) => distinct.len(),
            Truth::Values(..) => 1,
        }
    }

    /// Regression trains on standardised targets; reports multiply losses by
    /// this to undo the scaling. Also names the validation metric.
    pub(super) fn loss_scale_and_metric(&self) -> (f32, &'static str) {
        match self {
            Truth::Classes(..) => (1.0, "accuracy"),
            Truth::Values(_, _, s) => (s * s, "mse"),
        }
    }

    /// The standardised targets of `rows`.
    fn targets(&self, rows: &[usize]) -> TargetBuf {
        match self {
            Truth::Classes(c, _) => TargetBuf::Classes(rows.iter().map(|&i| c[i]).collect()),
            Truth::Values(v, m, s) => {
                TargetBuf::Values(rows.iter().map(|&i| (v[i] - m) / s).collect())
            }
        }
    }
}

/// Owned targets of a set of rows.
pub(super) enum TargetBuf {
    Classes(Vec<usize>),
    Values(Vec<f32>),
}

impl TargetBuf {
    pub(super) fn select(&self, rows: &[usize]) -> TargetBuf {
        match self {
            TargetBuf::Classes(c) => TargetBuf::Classes(rows.iter().map(|&i| c[i]).collect()),
            TargetBuf::Values(v) => TargetBuf::Values(rows.iter().map(|&i| v[i]).collect()),
        }
    }

    pub(super) fn as_targets(&self) -> Targets<'_> {
        match self {
            TargetBuf::Classes(c) => Targets::Classes(c),
            TargetBuf::Values(v) => Targets::Values(v),
        }
    }
}

/// A table made ready to train on.
pub(super) struct Prepared {
    /// The feature columns' indices in the table.
    pub(super) features: Vec<usize>,
    /// The shape of one input row.
    pub(super) shape: Vec<usize>,
    pub(super) truth: Truth,
    /// The held-out rows' indices in the table (the validation split), and
    /// the training rows', in the order of `x_val` and `x_train`.
    pub(super) val_rows: Vec<usize>,
    pub(super) train_rows: Vec<usize>,
    /// The standardisation fitted on the training rows.
    pub(super) mean: Array1<f32>,
    pub(super) std: Array1<f32>,
    /// Standardised inputs and targets of the training and validation rows.
    pub(super) x_train: Array2<f32>,
    pub(super) y_train: TargetBuf,
    pub(super) x_val: Array2<f32>,
    pub(super) y_val: TargetBuf,
}

/// Picks the features, reads the truth, shuffles the rows with `rng` and
/// splits off the validation rows, and standardises the inputs.
pub(super) fn prepare(
    table: &Table,
    cfg: &TrainConfig,
    rng: &mut ChaCha8Rng,
) -> Result<Prepared, TrainError> {
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

    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
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
    Ok(Prepared {
        y_train: truth.targets(train_rows),
        y_val: truth.targets(val_rows),
        features,
        shape,
        truth,
        val_rows: val_rows.to_vec(),
        train_rows: train_rows.to_vec(),
        mean,
        std,
        x_train,
        x_val,
    })
}

/// Reads the target column as classes (classifiers) or values (regression).
fn truth(table: &Table, target: usize, cfg: &TrainConfig) -> Result<Truth, TrainError> {
    let n = table.rows();
    let values: Vec<f32> = (0..n).map(|r| table.value(r, target)).collect();
    if cfg.task == Task::Regression {
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
