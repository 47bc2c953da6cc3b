//! Optimizers, exactly as the design document (§3.1) writes them, plus Adam.
//!
//! Each step receives `∇J(θ)`, the gradient of the *mean* loss over the
//! batch, so the `(1/m) Σᵢ` of mini-batch SGD is already inside it. Which
//! rows form a batch is the trainer's business: `gd` uses every training
//! row at once, the others `--batch m` rows.

/// The update rule `--optimizer` picks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// Gradient descent on the full batch: `θ ← θ − α ∇J(θ)`.
    Gd,
    /// Mini-batch stochastic gradient descent:
    /// `θ ← θ − α (1/m) Σᵢ ∇J(θ; xᵢ, yᵢ)` over batches of `m` rows.
    Sgd,
    /// Momentum: `v ← β v + (1 − β) ∇J(θ)`, `θ ← θ − α v` (`v₀ = 0`).
    Momentum { beta: f32 },
    /// Adam (Kingma & Ba, 2015): `m ← β₁ m + (1 − β₁) g`,
    /// `v ← β₂ v + (1 − β₂) g²`, `m̂ = m / (1 − β₁ᵗ)`, `v̂ = v / (1 − β₂ᵗ)`,
    /// `θ ← θ − α m̂ / (√v̂ + ε)` with `ε = 1e-8`.
    Adam { beta1: f32, beta2: f32 },
}

impl Optimizer {
    /// Whether every step sees the whole training set.
    pub fn full_batch(self) -> bool {
        self == Optimizer::Gd
    }

    /// The learning rate α used when `--lr` is not given.
    pub fn default_lr(self) -> f32 {
        match self {
            Optimizer::Gd => 0.1,
            Optimizer::Sgd | Optimizer::Momentum { .. } => 0.05,
            Optimizer::Adam { .. } => 0.01,
        }
    }
}

/// An optimizer with its per-parameter state.
#[derive(Debug, Clone)]
pub struct Stepper {
    rule: Optimizer,
    lr: f32,
    /// Momentum's `v`, Adam's first moment `m`.
    first: Vec<Vec<f32>>,
    /// Adam's second moment `v`.
    second: Vec<Vec<f32>>,
    t: i32,
}

impl Stepper {
    pub fn new(rule: Optimizer, lr: f32) -> Self {
        Stepper {
            rule,
            lr,
            first: Vec::new(),
            second: Vec::new(),
            t: 0,
        }
    }

    /// One update of every parameter tensor `params[k]` by `grads[k]`.
    pub fn step(&mut self, params: Vec<(&mut [f32], bool)>, grads: &[Vec<f32>]) {
        let lr = self.lr;
        self.t += 1;
        if self.first.is_empty() {
            self.first = grads.iter().map(|g| vec![0.0; g.len()]).collect();
            self.second = self.first.clone();
        }
        for (k, ((theta, _), g)) in params.into_iter().zip(grads).enumerate() {
            match self.rule {
                Optimizer::Gd | Optimizer::Sgd => {
                    for (p, &d) in theta.iter_mut().zip(g) {
                        *p -= lr * d;
                    }
                }
                Optimizer::Momentum { beta } => {
                    for ((p, v), &d) in theta.iter_mut().zip(&mut self.first[k]).zip(g) {
                        *v = beta * *v + (1.0 - beta) * d;
                        *p -= lr * *v;
                    }
                }
                Optimizer::Adam { beta1, beta2 } => {
                    let c1 = 1.0 - beta1.powi(self.t);
                    let c2 = 1.0 - beta2.powi(self.t);
                    let moments = self.first[k].iter_mut().zip(&mut self.second[k]);
                    for ((p, (m, v)), &d) in theta.iter_mut().zip(moments).zip(g) {
                        *m = beta1 * *m + (1.0 - beta1) * d;
                        *v = beta2 * *v + (1.0 - beta2) * d * d;
                        *p -= lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
                    }
                }
            }
        }
    }
}

/// Gradient-norm clipping (`--clip`): when the global L2 norm of every
/// gradient together, `‖g‖ = √(Σ_tensors Σ g²)`, exceeds `max`, scales
/// every gradient by `max / ‖g‖`, keeping its direction. Returns the norm
/// before clipping.
pub fn clip_global_norm(grads: &mut [Vec<f32>], max: f32) -> f32 {
    let norm = grads
        .iter()
        .flatten()
        .map(|&g| g as f64 * g as f64)
        .sum::<f64>()
        .sqrt() as f32;
    if norm > max {
        let scale = max / norm;
        grads.iter_mut().flatten().for_each(|g| *g *= scale);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_scales_to_the_global_norm() {
        let mut g = vec![vec![3.0, 0.0], vec![4.0]];
        assert_eq!(clip_global_norm(&mut g, 10.0), 5.0);
        assert_eq!(g, [vec![3.0, 0.0], vec![4.0]]);
        assert_eq!(clip_global_norm(&mut g, 1.0), 5.0);
        assert_eq!(g, [vec![0.6, 0.0], vec![0.8]]);
    }

    /// On f(θ) = ½ θ², the updates follow the formulas above exactly.
    #[test]
    fn steps_follow_the_formulas() {
        let run = |rule, steps| {
            let mut s = Stepper::new(rule, 0.1);
            let mut theta = [1.0f32];
            for _ in 0..steps {
                let g = vec![vec![theta[0]]];
                s.step(vec![(&mut theta[..], true)], &g);
            }
            theta[0]
        };
        assert_eq!(run(Optimizer::Sgd, 1), 1.0 - 0.1 * 1.0);
        assert_eq!(run(Optimizer::Gd, 2), 0.9 - 0.1 * 0.9);
        // v₁ = 0.1·1 = 0.1, θ₁ = 1 − 0.01 = 0.99; v₂ = 0.9·0.1 + 0.1·0.99.
        let v2 = 0.9f32 * 0.1 + 0.1 * 0.99;
        assert!((run(Optimizer::Momentum { beta: 0.9 }, 2) - (0.99 - 0.1 * v2)).abs() < 1e-7);
        // Adam's first step moves θ by α·sign(g), whatever the gradient's size.
        let adam = Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
        };
        assert!((run(adam, 1) - 0.9).abs() < 1e-6);
    }
}
