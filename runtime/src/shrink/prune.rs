//! `kiln prune`: zero weights of dense layers, and optionally fine-tune the
//! rest with the zeros held fixed.
//!
//! * magnitude: the `sparsity` fraction of weights with the smallest `|w|`
//!   become 0, ranked over all dense layers together (global) or within each
//!   layer (`per_layer`);
//! * random: the design document's rule `wᵢ ← 0 if rᵢ < τ`, with `rᵢ`
//!   uniform in [0, 1) from a seeded ChaCha8 stream, drawn per weight in
//!   layer order.
//!
//! Biases are never pruned. Fine-tuning ([`finetune`]) rebuilds the
//! training network from the model file, runs mini-batch SGD and multiplies
//! every weight update by the mask, so pruned weights stay exactly 0.

use ndarray::{Array2, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{LayerSpec, ModelFile, Tensor};
use crate::train::{self, Network};

use super::{LabelledData, ShrinkError};

/// Which weights to zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PruneMethod {
    Magnitude { sparsity: f32, per_layer: bool },
    Random { tau: f32, seed: u64 },
}

/// What pruning did, per dense layer and overall.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PruneReport {
    /// (weight tensor, zeros, weights) per dense layer.
    pub layers: Vec<(String, usize, usize)>,
    pub sparsity: f64,
}

/// Zeroes weights of `model`'s dense layers by `method`.
pub fn prune(
    model: &ModelFile,
    method: PruneMethod,
) -> Result<(ModelFile, PruneReport), ShrinkError> {
    model.to_kernel()?;
    let dense = super::dense_layers(model);
    if dense.is_empty() {
        return Err(ShrinkError::NoDense("prune"));
    }
    let mut out = model.clone();
    match method {
        PruneMethod::Magnitude {
            sparsity,
            per_layer,
        } => {
            if !(0.0..=1.0).contains(&sparsity) {
                return Err(ShrinkError::Config(format!(
                    "--sparsity must be in [0, 1], got {sparsity}"
                )));
            }
            let groups: Vec<Vec<&String>> = if per_layer {
                dense.iter().map(|(_, w, _)| vec![w]).collect()
            } else {
                vec![dense.iter().map(|(_, w, _)| w).collect()]
            };
            for group in groups {
                // (|w|, tensor, index), smallest first; ties by position so the
                // result does not depend on the sort.
                let mut all: Vec<(f32, usize, usize)> = Vec::new();
                for (t, name) in group.iter().enumerate() {
                    let w = out.tensors[*name].as_f32().expect("dense weights are f32");
                    all.extend(w.iter().enumerate().map(|(i, v)| (v.abs(), t, i)));
                }
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
                let k = ((all.len() as f64) * f64::from(sparsity)).round() as usize;
                for &(_, t, i) in &all[..k.min(all.len())] {
                    let w = out.tensors.get_mut(group[t]).and_then(Tensor::as_f32_mut);
                    w.expect("f32")[i] = 0.0;
                }
            }
        }
        PruneMethod::Random { tau, seed } => {
            if !(0.0..=1.0).contains(&tau) {
                return Err(ShrinkError::Config(format!(
                    "--tau must be in [0, 1], got {tau}"
                )));
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for (_, name, _) in &dense {
                let w = out
                    .tensors
                    .get_mut(name)
                    .and_then(Tensor::as_f32_mut)
                    .expect("f32");
                for v in w.iter_mut() {
                    if rng.random::<f32>() < tau {
                        *v = 0.0;
                    }
                }
            }
        }
    }
    let report = report(&out);
    Ok((out, report))
}

/// Sparsity of `model`'s dense weights.
pub fn report(model: &ModelFile) -> PruneReport {
    let layers: Vec<(String, usize, usize)> = super::dense_layers(model)
        .into_iter()
        .map(|(_, w, _)| {
            let t = &model.tensors[&w];
            (w, t.data.zeros(), t.data.len())
        })
        .collect();
    let (z, n) = layers.iter().fold((0, 0), |(z, n), l| (z + l.1, n + l.2));
    PruneReport {
        layers,
        sparsity: z as f64 / n.max(1) as f64,
    }
}

/// Fine-tuning settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinetuneConfig {
    pub epochs: usize,
    pub lr: f32,
    pub batch: usize,
    pub l2: f32,
    pub seed: u64,
}

/// The training network that mirrors a model file's layers, weights
/// included, and the names of its standardisation's tensors, if any.
struct Mirror<'m> {
    net: Network,
    standardize: Option<(&'m String, &'m String)>,
}

/// The f32 values of a tensor [`ModelFile::to_kernel`] has checked.
fn f32_of(model: &ModelFile, name: &String) -> Vec<f32> {
    model.tensors[name].as_f32().expect("checked f32").to_vec()
}

/// Rebuilds the layout `kiln train` writes for an MLP (standardize?, then
/// dense layers with activations between them, then softmax) as a training
/// network; softmax becomes the loss.
fn mirror<'m>(model: &'m ModelFile, rng: &mut ChaCha8Rng) -> Result<Mirror<'m>, ShrinkError> {
    let layers = &model.graph.layers;
    let mut standardize = None;
    let mut net_layers = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        match l {
            LayerSpec::Standardize { mean, std } if i == 0 => standardize = Some((mean, std)),
            LayerSpec::Flatten => {}
            LayerSpec::Softmax if i + 1 == layers.len() => {}
            LayerSpec::Dense { weight, .. } => {
                let shape = &model.tensors[weight].shape;
                // Weights are set from the model below.
                net_layers.push(train::Layer::dense(
                    shape[1],
                    shape[0],
                    train::Activation::Relu,
                    rng,
                ));
            }
            LayerSpec::Relu => net_layers.push(train::Layer::Act(train::Activation::Relu)),
            LayerSpec::Tanh => net_layers.push(train::Layer::Act(train::Activation::Tanh)),
            LayerSpec::Sigmoid => net_layers.push(train::Layer::Act(train::Activation::Sigmoid)),
            _ => {
                return Err(ShrinkError::Layout {
                    layer: i,
                    op: l.op(),
                });
            }
        }
    }
    let mut net = Network { layers: net_layers };
    // params_mut: per dense layer, its weights then its bias.
    let values = super::dense_layers(model)
        .into_iter()
        .flat_map(|(_, w, b)| [f32_of(model, &w), f32_of(model, &b)]);
    for ((param, _), value) in net.params_mut().into_iter().zip(values) {
        param.copy_from_slice(&value);
    }
    Ok(Mirror { net, standardize })
}

/// Retrains the dense weights of a pruned `model` on `data`, keeping every
/// zero weight at zero. `on_epoch` sees (epoch, mean loss).
pub fn finetune(
    model: &ModelFile,
    data: &LabelledData,
    cfg: &FinetuneConfig,
    mut on_epoch: impl FnMut(usize, f32),
) -> Result<ModelFile, ShrinkError> {
    if !model.graph.wiring.is_empty() {
        return Err(ShrinkError::Graph("fine-tuning"));
    }
    model.to_kernel()?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let Mirror {
        mut net,
        standardize,
    } = mirror(model, &mut rng)?;
    let dense = super::dense_layers(model);
    // 1 where a weight is kept, 0 where it was pruned; biases are all kept.
    let masks: Vec<Vec<f32>> = net
        .params_mut()
        .into_iter()
        .map(|(p, is_weight)| {
            p.iter()
                .map(|&v| if is_weight && v == 0.0 { 0.0 } else { 1.0 })
                .collect()
        })
        .collect();
    let width = model.input_len()?;
    let n = data.labels.len();
    let mut x = Array2::from_shape_vec((n, width), data.rows.clone()).expect("rows × width");
    if let Some((mean, std)) = standardize {
        let (m, s) = (f32_of(model, mean), f32_of(model, std));
        for mut row in x.rows_mut() {
            for ((v, m), s) in row.iter_mut().zip(&m).zip(&s) {
                *v = (*v - m) * (1.0 / s);
            }
        }
    }
    let mut idx: Vec<usize> = (0..n).collect();
    for epoch in 1..=cfg.epochs {
        idx.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in idx.chunks(cfg.batch.max(1)) {
            let xb = x.select(Axis(0), chunk);
            let yb: Vec<usize> = chunk.iter().map(|&i| data.labels[i]).collect();
            let loss = |out: &Array2<f32>| {
                train::Loss::SoftmaxCrossEntropy.eval(out, train::Targets::Classes(&yb))
            };
            let (value, grads) = net.loss_and_grad(xb.view(), &loss, cfg.l2);
            if !value.is_finite() {
                return Err(ShrinkError::Diverged(value));
            }
            total += value * chunk.len() as f32;
            // SGD with the gradient masked: pruned weights stay exactly 0.
            for (((param, _), g), mask) in net.params_mut().into_iter().zip(&grads).zip(&masks) {
                for ((p, g), m) in param.iter_mut().zip(g).zip(mask) {
                    *p -= cfg.lr * g * m;
                }
            }
        }
        on_epoch(epoch, total / n.max(1) as f32);
    }
    let mut out = model.clone();
    let values: Vec<Vec<f32>> = net
        .params_mut()
        .into_iter()
        .map(|(p, _)| p.to_vec())
        .collect();
    for ((_, w, b), pair) in dense.iter().zip(values.chunks_exact(2)) {
        let shape = out.tensors[w].shape.clone();
        out.tensors
            .insert(w.clone(), Tensor::new(shape, pair[0].clone()));
        out.tensors
            .insert(b.clone(), Tensor::new(vec![pair[1].len()], pair[1].clone()));
    }
    out.to_kernel()?;
    Ok(out)
}
