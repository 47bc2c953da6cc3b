//! The training loop: epochs of shuffled mini-batches, a validation pass
//! after each, and early stopping that keeps the best epoch's weights.

use ndarray::{Array2, Axis};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::prepare::{Prepared, TargetBuf};
use super::{
    EpochReport, Loss, Network, Stepper, TrainConfig, TrainError, argmax, clip_global_norm,
};

/// A fitted network and its epochs.
pub(super) struct Fit {
    pub(super) net: Network,
    pub(super) history: Vec<EpochReport>,
    /// The epoch whose weights `net` holds.
    pub(super) best_epoch: usize,
}

/// Trains `net` on `data` for `cfg.epochs` epochs (fewer with early
/// stopping), shuffling the batches with `rng`; `on_epoch` sees each report.
pub(super) fn fit(
    mut net: Network,
    loss: Loss,
    data: &Prepared,
    cfg: &TrainConfig,
    rng: &mut ChaCha8Rng,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<Fit, TrainError> {
    let (loss_scale, metric) = data.truth.loss_scale_and_metric();
    let train_len = data.x_train.nrows();
    let batch = if cfg.optimizer.full_batch() {
        train_len
    } else {
        cfg.batch.max(1)
    };
    let mut stepper = Stepper::new(cfg.optimizer, cfg.lr);
    let mut idx: Vec<usize> = (0..train_len).collect();
    let mut history = Vec::new();
    let mut best = (f32::INFINITY, 0, net.clone());
    for epoch in 1..=cfg.epochs {
        let start = std::time::Instant::now();
        idx.shuffle(rng);
        let mut total = 0.0;
        for chunk in idx.chunks(batch) {
            let xb = data.x_train.select(Axis(0), chunk);
            let yb = data.y_train.select(chunk);
            let f = |out: &Array2<f32>| loss.eval(out, yb.as_targets());
            let (value, mut grads) = net.loss_and_grad(xb.view(), &f, cfg.l2);
            if !value.is_finite() {
                return Err(TrainError::Diverged { epoch, loss: value });
            }
            if let Some(max) = cfg.clip {
                clip_global_norm(&mut grads, max);
            }
            total += value * chunk.len() as f32;
            stepper.step(net.params_mut(), &grads);
        }
        let (val_loss, val_metric) = match validation(&net, loss, data, loss_scale) {
            Some((l, m)) => (Some(l), Some(m)),
            None => (None, None),
        };
        let report = EpochReport {
            epoch,
            train_loss: total / train_len as f32 * loss_scale,
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
    let best_epoch = if cfg.early_stop.is_some() && best.1 > 0 {
        net = best.2;
        best.1
    } else {
        history.len()
    };
    Ok(Fit {
        net,
        history,
        best_epoch,
    })
}

/// The validation loss and metric (accuracy, or the loss again for
/// regression), losses times `loss_scale`; `None` without validation rows.
fn validation(net: &Network, loss: Loss, data: &Prepared, loss_scale: f32) -> Option<(f32, f32)> {
    if data.x_val.nrows() == 0 {
        return None;
    }
    let out = net.predict(data.x_val.view());
    let (l, _) = loss.eval(&out, data.y_val.as_targets());
    let metric = match (&data.y_val, loss) {
        (TargetBuf::Values(_), _) => l * loss_scale,
        (TargetBuf::Classes(c), Loss::BinaryCrossEntropy) => {
            accuracy(&out, c, |r, c| (r[0] > 0.0) == (c == 1))
        }
        (TargetBuf::Classes(c), _) => accuracy(&out, c, |r, c| argmax(r) == c),
    };
    Some((l * loss_scale, metric))
}

/// The fraction of rows of `out` that `hit` their class.
fn accuracy(out: &Array2<f32>, classes: &[usize], hit: impl Fn(&[f32], usize) -> bool) -> f32 {
    out.rows()
        .into_iter()
        .zip(classes)
        .filter(|(r, c)| hit(r.as_slice().expect("row"), **c))
        .count() as f32
        / classes.len() as f32
}
