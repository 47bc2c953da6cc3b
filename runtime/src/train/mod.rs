//! Host-side training with ndarray.
//!
//! [`train`] fits a classifier on a [`crate::data::Table`]: it splits off a
//! held-out test set, fits the input standardisation on the training rows,
//! trains a [`Network`] by mini-batch SGD and returns a [`ModelFile`] whose
//! graph starts with that standardisation, so the model takes raw inputs.
//! Everything random comes from one seed, so a seed gives identical bytes.

mod network;

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub use network::{Activation, Dense, Network, softmax_cross_entropy};

use crate::data::{DataError, Table};
use crate::model::{FORMAT_VERSION, Graph, InputSpec, LayerSpec, ModelFile, Task, Tensor};

/// The model families `--model` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKind {
    /// Multinomial logistic regression: one dense layer and softmax.
    Softmax,
    /// Hidden layers of the given widths.
    Mlp(Vec<usize>),
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "softmax" => Ok(ModelKind::Softmax),
            "mlp" => Ok(ModelKind::Mlp(vec![64, 32])),
            _ => {
                let widths = s.strip_prefix("mlp:").ok_or_else(|| {
                    format!("unknown model `{s}` (expected softmax or mlp:H1,H2,…)")
                })?;
                widths
                    .split(',')
                    .map(|w| match w.trim().parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("`{w}` in `{s}` is not a positive layer width")),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(ModelKind::Mlp)
            }
        }
    }
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub model: ModelKind,
    pub activation: Activation,
    /// Learning rate α.
    pub lr: f32,
    pub epochs: usize,
    /// Mini-batch size m.
    pub batch: usize,
    /// L2 penalty on weights.
    pub l2: f32,
    /// Fraction of rows held out for testing.
    pub test_split: f32,
    pub seed: u64,
    pub target: String,
    /// Feature columns; empty means every column but the target.
    pub features: Vec<String>,
    pub name: String,
}

/// One epoch's numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f32,
    pub seconds: f64,
}

/// A trained model and what it scored.
#[derive(Debug, Clone)]
pub struct Trained {
    pub model: ModelFile,
    /// Held-out accuracy (the network in f32 on the host).
    pub test_accuracy: f32,
    /// Indices (into the table) of the held-out rows.
    pub test_rows: Vec<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(
        "target column `{column}` has value {value} on row {row}; classes must be whole numbers 0..=1000"
    )]
    BadClass {
        column: String,
        row: usize,
        value: f32,
    },
    #[error("the target has only one class; a classifier needs two or more")]
    OneClass,
    #[error("--test-split {0} leaves no rows to train on or none to test")]
    Split(f32),
    #[error("the model has no features to learn from")]
    NoFeatures,
    #[error("training diverged (loss is {0}); try a smaller --lr")]
    Diverged(f32),
}

/// Trains a classifier on `table`; `on_epoch` sees each epoch's report.
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
    let n = table.rows();
    let mut classes = Vec::with_capacity(n);
    for r in 0..n {
        let v = table.value(r, target);
        if v.fract() != 0.0 || !(0.0..=1000.0).contains(&v) {
            return Err(TrainError::BadClass {
                column: cfg.target.clone(),
                row: r + 1,
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
    // Classes are indices 0..k, labelled by the value they had in the data.
    let y_all: Vec<usize> = classes
        .iter()
        .map(|c| distinct.binary_search(c).expect("present"))
        .collect();
    let x_all = Array2::from_shape_fn((n, features.len()), |(r, c)| table.value(r, features[c]));

    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let n_test = (n as f32 * cfg.test_split).round() as usize;
    if n_test >= n || (cfg.test_split > 0.0 && n_test == 0) {
        return Err(TrainError::Split(cfg.test_split));
    }
    let (test_rows, train_rows) = order.split_at(n_test);

    let x_train = x_all.select(Axis(0), train_rows);
    let mean = x_train.mean_axis(Axis(0)).expect("rows");
    let std = x_train
        .std_axis(Axis(0), 0.0)
        .mapv(|s| if s > 1e-6 { s } else { 1.0 });
    let standardize = |x: ArrayView2<f32>| (&x - &mean) / &std;
    let x_train = standardize(x_train.view());
    let y_train: Vec<usize> = train_rows.iter().map(|&r| y_all[r]).collect();

    let mut widths = vec![features.len()];
    if let ModelKind::Mlp(hidden) = &cfg.model {
        widths.extend(hidden);
    }
    widths.push(distinct.len());
    let mut net = Network::new(&widths, cfg.activation, &mut rng);

    let batch = cfg.batch.max(1);
    let mut idx: Vec<usize> = (0..train_rows.len()).collect();
    for epoch in 1..=cfg.epochs {
        let start = std::time::Instant::now();
        idx.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in idx.chunks(batch) {
            let xb = x_train.select(Axis(0), chunk);
            let yb: Vec<usize> = chunk.iter().map(|&i| y_train[i]).collect();
            let (loss, grads) = net.loss_and_grad(xb.view(), &yb, cfg.l2);
            if !loss.is_finite() {
                return Err(TrainError::Diverged(loss));
            }
            total += loss * chunk.len() as f32;
            // Mini-batch SGD: θ ← θ − α (1/m) Σᵢ ∇J(θ; xᵢ, yᵢ); the loss is
            // already the batch mean, so its gradient carries the 1/m.
            for (layer, g) in net.layers.iter_mut().zip(&grads) {
                layer.w.scaled_add(-cfg.lr, &g.w);
                layer.b.scaled_add(-cfg.lr, &g.b);
            }
        }
        on_epoch(&EpochReport {
            epoch,
            train_loss: total / train_rows.len() as f32,
            seconds: start.elapsed().as_secs_f64(),
        });
    }

    let test_accuracy = if test_rows.is_empty() {
        f32::NAN
    } else {
        let x_test = standardize(x_all.select(Axis(0), test_rows).view());
        let logits = net.logits(x_test.view());
        let correct = logits
            .rows()
            .into_iter()
            .zip(test_rows)
            .filter(|(row, r)| argmax(row.as_slice().expect("contiguous")) == y_all[**r])
            .count();
        correct as f32 / test_rows.len() as f32
    };

    let model = to_model_file(
        cfg,
        table,
        &features,
        &distinct,
        &mean.to_vec(),
        &std.to_vec(),
        &net,
    );
    Ok(Trained {
        model,
        test_accuracy,
        test_rows: test_rows.to_vec(),
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

fn to_model_file(
    cfg: &TrainConfig,
    table: &Table,
    features: &[usize],
    classes: &[usize],
    mean: &[f32],
    std: &[f32],
    net: &Network,
) -> ModelFile {
    let mut tensors = std::collections::BTreeMap::new();
    let mut layers = vec![LayerSpec::Standardize {
        mean: "input.mean".into(),
        std: "input.std".into(),
    }];
    tensors.insert(
        "input.mean".into(),
        Tensor::new(vec![mean.len()], mean.to_vec()),
    );
    tensors.insert(
        "input.std".into(),
        Tensor::new(vec![std.len()], std.to_vec()),
    );
    for (i, layer) in net.layers.iter().enumerate() {
        let (w, b) = (format!("dense{i}.weight"), format!("dense{i}.bias"));
        tensors.insert(
            w.clone(),
            Tensor::new(layer.w.shape().to_vec(), layer.w.iter().copied().collect()),
        );
        tensors.insert(
            b.clone(),
            Tensor::new(vec![layer.b.len()], layer.b.to_vec()),
        );
        layers.push(LayerSpec::Dense { weight: w, bias: b });
        if i + 1 < net.layers.len() {
            layers.push(net.activation.spec());
        }
    }
    layers.push(LayerSpec::Softmax);
    ModelFile {
        graph: Graph {
            format: FORMAT_VERSION,
            name: cfg.name.clone(),
            version: "1".into(),
            task: Task::Classification,
            input: InputSpec {
                name: "input".into(),
                shape: vec![features.len()],
                features: features.iter().map(|&c| table.columns[c].clone()).collect(),
            },
            target: Some(cfg.target.clone()),
            labels: classes.iter().map(|c| c.to_string()).collect(),
            layers,
        },
        tensors,
    }
}
