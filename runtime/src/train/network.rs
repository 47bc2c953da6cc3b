//! A feed-forward network of dense layers for training, with back-propagation.
//!
//! Weights are `[outputs, inputs]` (the model file's layout). The last layer
//! produces logits; the loss ([`softmax_cross_entropy`]) supplies the
//! gradient of the output activation.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::Rng;

use crate::model::LayerSpec;

/// Hidden-layer activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
}

impl Activation {
    pub fn spec(self) -> LayerSpec {
        match self {
            Activation::Relu => LayerSpec::Relu,
            Activation::Tanh => LayerSpec::Tanh,
            Activation::Sigmoid => LayerSpec::Sigmoid,
        }
    }

    fn apply(self, z: &mut Array2<f32>) {
        match self {
            Activation::Relu => z.mapv_inplace(|v| v.max(0.0)),
            Activation::Tanh => z.mapv_inplace(f32::tanh),
            Activation::Sigmoid => z.mapv_inplace(|v| 1.0 / (1.0 + (-v).exp())),
        }
    }

    /// d(activation)/dz expressed through the activation's output `a`.
    fn derivative(self, a: &Array2<f32>) -> Array2<f32> {
        match self {
            Activation::Relu => a.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 }),
            Activation::Tanh => a.mapv(|v| 1.0 - v * v),
            Activation::Sigmoid => a.mapv(|v| v * (1.0 - v)),
        }
    }
}

/// One fully connected layer's parameters.
#[derive(Debug, Clone)]
pub struct Dense {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

/// Gradients of one [`Dense`] layer.
#[derive(Debug, Clone)]
pub struct DenseGrad {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

/// Dense layers with an activation between them (none after the last).
#[derive(Debug, Clone)]
pub struct Network {
    pub layers: Vec<Dense>,
    pub activation: Activation,
}

impl Network {
    /// Widths `[inputs, hidden…, outputs]`, uniform Glorot (tanh, sigmoid)
    /// or He (relu) initialisation, zero biases.
    pub fn new(widths: &[usize], activation: Activation, rng: &mut impl Rng) -> Self {
        let layers = widths
            .windows(2)
            .map(|w| {
                let (fan_in, fan_out) = (w[0], w[1]);
                let limit = match activation {
                    Activation::Relu => (6.0 / fan_in as f32).sqrt(),
                    _ => (6.0 / (fan_in + fan_out) as f32).sqrt(),
                };
                Dense {
                    w: Array2::from_shape_fn((fan_out, fan_in), |_| {
                        rng.random_range(-limit..limit)
                    }),
                    b: Array1::zeros(fan_out),
                }
            })
            .collect();
        Network { layers, activation }
    }

    /// Logits for `x` (`rows × inputs`).
    pub fn logits(&self, x: ArrayView2<f32>) -> Array2<f32> {
        self.forward(x).pop().expect("at least the input")
    }

    /// Every layer's output, input first: `acts[0] = x`, `acts[last]` = logits.
    fn forward(&self, x: ArrayView2<f32>) -> Vec<Array2<f32>> {
        let mut acts = vec![x.to_owned()];
        for (i, layer) in self.layers.iter().enumerate() {
            let mut z = acts[i].dot(&layer.w.t()) + &layer.b;
            if i + 1 < self.layers.len() {
                self.activation.apply(&mut z);
            }
            acts.push(z);
        }
        acts
    }

    /// Mean softmax cross-entropy of the batch and its gradients (plus
    /// `l2 / 2 · Σ w²` and its gradient).
    pub fn loss_and_grad(&self, x: ArrayView2<f32>, y: &[usize], l2: f32) -> (f32, Vec<DenseGrad>) {
        let acts = self.forward(x);
        let (mut loss, mut delta) = softmax_cross_entropy(acts.last().expect("logits"), y);
        let mut grads = Vec::with_capacity(self.layers.len());
        for i in (0..self.layers.len()).rev() {
            let layer = &self.layers[i];
            let gw = delta.t().dot(&acts[i]) + &(&layer.w * l2);
            let gb = delta.sum_axis(Axis(0));
            loss += 0.5 * l2 * layer.w.iter().map(|v| v * v).sum::<f32>();
            if i > 0 {
                delta = delta.dot(&layer.w) * self.activation.derivative(&acts[i]);
            }
            grads.push(DenseGrad { w: gw, b: gb });
        }
        grads.reverse();
        (loss, grads)
    }
}

/// Mean cross-entropy of softmax(`logits`) against class indices `y`, and
/// its gradient with respect to the logits (already divided by the batch).
pub fn softmax_cross_entropy(logits: &Array2<f32>, y: &[usize]) -> (f32, Array2<f32>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Every parameter's gradient agrees with a central finite difference.
    #[test]
    fn gradients_match_finite_differences() {
        for activation in [Activation::Relu, Activation::Tanh, Activation::Sigmoid] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let net = Network::new(&[3, 4, 3], activation, &mut rng);
            let x = Array2::from_shape_fn((5, 3), |(i, j)| ((i * 3 + j) as f32 * 0.37).sin());
            let y = [0, 1, 2, 1, 0];
            let (_, grads) = net.loss_and_grad(x.view(), &y, 0.01);
            let eps = 1e-2f32;
            for (l, g) in grads.iter().enumerate() {
                for ((r, c), &analytic) in g.w.indexed_iter() {
                    let mut plus = net.clone();
                    plus.layers[l].w[(r, c)] += eps;
                    let mut minus = net.clone();
                    minus.layers[l].w[(r, c)] -= eps;
                    let numeric = (plus.loss_and_grad(x.view(), &y, 0.01).0
                        - minus.loss_and_grad(x.view(), &y, 0.01).0)
                        / (2.0 * eps);
                    assert!(
                        (numeric - analytic).abs() < 2e-3,
                        "{activation:?} layer {l} w[{r},{c}]: numeric {numeric} vs analytic {analytic}"
                    );
                }
            }
        }
    }
}
