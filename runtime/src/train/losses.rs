//! The losses training minimises, each returning its mean over the batch
//! and the gradient with respect to the network's output (already divided
//! by the number of rows).

use ndarray::Array2;

/// What the network's last layer feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Softmax over the logits, cross-entropy against class indices
    /// (multiclass: `softmax`, `mlp`, `cnn`).
    SoftmaxCrossEntropy,
    /// Sigmoid of one logit, binary cross-entropy against 0/1 (`logistic`).
    BinaryCrossEntropy,
    /// Mean squared error against real targets (`linear`).
    MeanSquaredError,
}

/// Targets of a batch: class indices or real values.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    Classes(&'a [usize]),
    Values(&'a [f32]),
}

impl Loss {
    /// Mean loss of `out` (`rows × outputs`) against `y`, and its gradient.
    pub fn eval(self, out: &Array2<f32>, y: Targets<'_>) -> (f32, Array2<f32>) {
        match (self, y) {
            (Loss::SoftmaxCrossEntropy, Targets::Classes(c)) => softmax_cross_entropy(out, c),
            (Loss::BinaryCrossEntropy, Targets::Classes(c)) => binary_cross_entropy(out, c),
            (Loss::MeanSquaredError, Targets::Values(v)) => mean_squared_error(out, v),
            _ => unreachable!("the trainer pairs each loss with its kind of target"),
        }
    }
}

/// `−(1/n) Σ log softmax(z)[yᵢ]`; gradient `(softmax(z) − onehot(y)) / n`.
pub(super) fn softmax_cross_entropy(logits: &Array2<f32>, y: &[usize]) -> (f32, Array2<f32>) {
    let n = logits.nrows().max(1) as f32;
    let mut grad = logits.clone();
    let mut loss = 0.0;
    for (mut row, &label) in grad.rows_mut().into_iter().zip(y) {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
        loss -= row[label].max(1e-12).ln();
        row[label] -= 1.0;
    }
    grad /= n;
    (loss / n, grad)
}

/// `(1/n) Σ [log(1 + e^z) − y·z]` on one logit per row (computed as
/// `max(z, 0) − y·z + log(1 + e^−|z|)`, which never overflows); gradient
/// `(σ(z) − y) / n`.
pub(super) fn binary_cross_entropy(logits: &Array2<f32>, y: &[usize]) -> (f32, Array2<f32>) {
    let n = logits.nrows().max(1) as f32;
    let mut grad = logits.clone();
    let mut loss = 0.0;
    for (mut row, &label) in grad.rows_mut().into_iter().zip(y) {
        let (z, t) = (row[0], label as f32);
        loss += z.max(0.0) - t * z + (-z.abs()).exp().ln_1p();
        row[0] = (1.0 / (1.0 + (-z).exp()) - t) / n;
    }
    (loss / n, grad)
}

/// `(1/n) Σ (ŷᵢ − yᵢ)²` on one output per row; gradient `2 (ŷ − y) / n`.
pub(super) fn mean_squared_error(out: &Array2<f32>, y: &[f32]) -> (f32, Array2<f32>) {
    let n = out.nrows().max(1) as f32;
    let mut grad = out.clone();
    let mut loss = 0.0;
    for (mut row, &target) in grad.rows_mut().into_iter().zip(y) {
        let e = row[0] - target;
        loss += e * e;
        row[0] = 2.0 * e / n;
    }
    (loss / n, grad)
}

#[cfg(test)]
mod tests {
    //! Finite-difference checks: every layer's and every loss's analytic
    //! gradient against a central difference of the loss, in f32 with a
    //! step of 1e-2 (the losses are smooth at that scale; inputs avoid the
    //! kinks of ReLU and max pooling by construction of random data).
    use super::*;
    use crate::train::layers::{Activation, Layer, Network};
    use crate::train::recurrent::{Cell, Recurrent};
    use kiln_guest::{ConvGeom, PoolGeom, PoolKind};
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Checks ∂loss/∂θ for every parameter and ∂loss/∂x for every input.
    fn check(net: &Network, x: &Array2<f32>, loss: Loss, y: Targets<'_>, eps: f32, what: &str) {
        check_within(net, x, loss, y, eps, (2e-3, 2e-2), what);
    }

    /// [`check`] with `|numeric − analytic| < abs + rel·|analytic|`.
    fn check_within(
        net: &Network,
        x: &Array2<f32>,
        loss: Loss,
        y: Targets<'_>,
        eps: f32,
        (abs, rel): (f32, f32),
        what: &str,
    ) {
        let l2 = 0.01;
        let f = |out: &Array2<f32>| loss.eval(out, y);
        let (_, grads) = net.loss_and_grad(x.view(), &f, l2);
        let value = |n: &Network, x: &Array2<f32>| n.loss_and_grad(x.view(), &f, l2).0;
        let close =
            |numeric: f32, analytic: f32| (numeric - analytic).abs() < abs + rel * analytic.abs();
        let mut checked = 0;
        for (p, g) in grads.iter().enumerate() {
            for (i, &analytic) in g.iter().enumerate() {
                let mut plus = net.clone();
                plus.params_mut()[p].0[i] += eps;
                let mut minus = net.clone();
                minus.params_mut()[p].0[i] -= eps;
                let numeric = (value(&plus, x) - value(&minus, x)) / (2.0 * eps);
                assert!(
                    close(numeric, analytic),
                    "{what}: param {p}[{i}]: numeric {numeric} vs analytic {analytic}"
                );
                checked += 1;
            }
        }
        assert!(checked > 0, "{what}: no parameters checked");
        // The input gradient exercises every layer's backward pass (pooling
        // and activations have no parameters of their own).
        let acts_grad = {
            let mut delta = f(&net.predict(x.view())).1;
            let mut acts = vec![x.clone()];
            for l in &net.layers {
                let next = l.forward(acts.last().unwrap().view());
                acts.push(next);
            }
            for (i, l) in net.layers.iter().enumerate().rev() {
                delta = l.backward(acts[i].view(), &acts[i + 1], &delta).0;
            }
            delta
        };
        for ((r, c), &analytic) in acts_grad.indexed_iter() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[(r, c)] += eps;
            xm[(r, c)] -= eps;
            let numeric = (value(net, &xp) - value(net, &xm)) / (2.0 * eps);
            assert!(
                close(numeric, analytic),
                "{what}: input [{r},{c}]: numeric {numeric} vs analytic {analytic}"
            );
        }
    }

    fn inputs(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((rows, cols), |_| {
            rand::Rng::random_range(&mut rng, -1.0..1.0)
        })
    }

    #[test]
    fn dense_and_activations_with_every_loss() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let x = inputs(5, 3, 1);
        let classes = [0, 1, 2, 1, 0];
        let binary = [0, 1, 1, 0, 1];
        let values = [0.5, -1.0, 2.0, 0.0, 1.5];
        for act in [Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
            let hidden = |rng: &mut ChaCha8Rng, outputs| Network {
                layers: vec![
                    Layer::dense(3, 4, act, rng),
                    Layer::Act(act),
                    Layer::dense(4, outputs, act, rng),
                ],
            };
            let net = hidden(&mut rng, 3);
            check(
                &net,
                &x,
                Loss::SoftmaxCrossEntropy,
                Targets::Classes(&classes),
                1e-2,
                &format!("{act:?} softmax CE"),
            );
            let net = hidden(&mut rng, 1);
            check(
                &net,
                &x,
                Loss::BinaryCrossEntropy,
                Targets::Classes(&binary),
                1e-2,
                &format!("{act:?} BCE"),
            );
            check(
                &net,
                &x,
                Loss::MeanSquaredError,
                Targets::Values(&values),
                1e-2,
                &format!("{act:?} MSE"),
            );
        }
    }

    #[test]
    fn conv_and_pooling() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let x = inputs(3, 2 * 6 * 6, 2);
        let y = [0, 2, 1];
        for (stride, pad) in [(1, 1), (2, 0), (1, 0)] {
            let conv = ConvGeom::new([2, 6, 6, 3, 3, 3, stride, pad]);
            for kind in [PoolKind::Max, PoolKind::Avg] {
                let (oh, ow) = (conv.out_h(), conv.out_w());
                let pool = PoolGeom::new([3, oh, ow, 2, 1]);
                let flat = 3 * pool.out_h() * pool.out_w();
                let net = Network {
                    layers: vec![
                        Layer::conv(conv, Activation::Tanh, &mut rng),
                        Layer::Act(Activation::Tanh),
                        Layer::Pool(kind, pool),
                        Layer::dense(flat, 3, Activation::Tanh, &mut rng),
                    ],
                };
                check(
                    &net,
                    &x,
                    Loss::SoftmaxCrossEntropy,
                    Targets::Classes(&y),
                    1e-3,
                    &format!("conv s{stride} p{pad} {kind:?} pool"),
                );
            }
        }
    }

    /// Back-propagation through time for every cell (GRU in both
    /// formulations), one direction and both, last state and sequence
    /// output. f32 central differences with ε = 1e-2: the truncation error
    /// ε²/6·|f'''| is ~1e-5 on these tanh/sigmoid compositions and the
    /// rounding error ~|loss|·1e-7/ε ≈ 1e-5; the largest difference measured
    /// over these cases is 1.1e-4 (on 2,093 gradients). The tolerance
    /// 2e-4 + 2 %·|analytic| keeps a margin and fails on any wrong term,
    /// since most gradients here are above 1e-3 (checked).
    #[test]
    fn recurrent_cells_through_time() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (steps, features) = (4, 3);
        let x = inputs(3, steps * features, 3);
        let y = [0, 2, 1];
        for cell in Cell::ALL {
            for (bi, seq) in [(false, false), (true, false), (true, true)] {
                let mut r = Recurrent::new(cell, steps, features, 3, bi, seq, &mut rng);
                r.b.mapv_inplace(|_| rand::Rng::random_range(&mut rng, -0.5..0.5));
                let width = r.output_len();
                let net = Network {
                    layers: vec![
                        Layer::Recurrent(r),
                        Layer::dense(width, 3, Activation::Tanh, &mut rng),
                    ],
                };
                check_recurrent(
                    &net,
                    &x,
                    Loss::SoftmaxCrossEntropy,
                    Targets::Classes(&y),
                    &format!("{cell:?} bi {bi} seq {seq}"),
                );
            }
        }
    }

    /// A stacked sequence model as `--model lstm:3:seq:bi,gru:4:orig:seq,rnn:2,d3`
    /// builds it, on a regression loss.
    #[test]
    fn stacked_sequence_model() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let (steps, features) = (3, 2);
        let (mut net, loss) = crate::train::models::build(
            &"lstm:3:seq:bi,gru:4:orig:seq,rnn:2,d3".parse().unwrap(),
            &[steps, features],
            1,
            true,
            Activation::Tanh,
            &mut rng,
        )
        .unwrap();
        assert_eq!(loss, Loss::MeanSquaredError);
        assert_eq!(net.layers.len(), 6, "3 recurrent, dense, tanh, output");
        for l in &mut net.layers {
            if let Layer::Recurrent(r) = l {
                r.b.mapv_inplace(|_| rand::Rng::random_range(&mut rng, -0.5..0.5));
            }
        }
        let x = inputs(4, steps * features, 4);
        check_recurrent(
            &net,
            &x,
            loss,
            Targets::Values(&[0.5, -1.0, 1.5, 0.0]),
            "stacked",
        );
    }

    /// [`check_within`] at the tolerance justified above, after making
    /// sure most gradients are large enough (> 5× its absolute part) for it
    /// to mean something.
    fn check_recurrent(net: &Network, x: &Array2<f32>, loss: Loss, y: Targets<'_>, what: &str) {
        let f = |out: &Array2<f32>| loss.eval(out, y);
        let (_, grads) = net.loss_and_grad(x.view(), &f, 0.01);
        let all = grads.iter().flatten().count();
        let big = grads.iter().flatten().filter(|v| v.abs() > 1e-3).count();
        assert!(
            2 * big >= all,
            "{what}: only {big} of {all} gradients above 1e-3"
        );
        check_within(net, x, loss, y, 1e-2, (2e-4, 2e-2), what);
    }

    #[test]
    fn losses_have_known_values() {
        let z = Array2::from_shape_vec((2, 1), vec![0.0, 2.0]).unwrap();
        let (bce, _) = binary_cross_entropy(&z, &[1, 0]);
        let want = (2f32.ln() + (1.0 + 2f32.exp()).ln()) / 2.0;
        assert!((bce - want).abs() < 1e-6, "{bce} vs {want}");
        let (mse, g) = mean_squared_error(&z, &[1.0, 2.0]);
        assert_eq!(mse, 0.5);
        assert_eq!(g[(0, 0)], -1.0);
    }
}
