//! `builtin:sine`: next-value prediction on noisy multi-frequency sines,
//! generated from a seed.
//!
//! Each row is its own sequence: `s(t) = sin(ω₁t + φ₁) + a·sin(ω₂t + φ₂)`
//! with ω₁ ∈ [0.1, 0.8), ω₂ ∈ [0.8, 2.0) radians per step, a ∈ [0.3, 0.8)
//! and phases in [0, 2π) drawn per row, plus Gaussian noise (σ = 0.05) on
//! every value. Columns `x0 … x{T−1}` hold `s(0) … s(T−1)` and `next` holds
//! `s(T)`. Because the frequencies change from row to row, the best
//! predictor must infer them from the window: a fixed linear filter of the
//! T lags (the AR(T) baseline) cannot, a recurrent network can learn to.

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{DataError, Table};

/// Sequences (rows) generated.
pub const ROWS: usize = 2000;
/// The longest window `--shape Tx1` may ask for.
pub const MAX_STEPS: usize = 1024;
/// The window when no `--shape` is given.
pub const DEFAULT_STEPS: usize = 16;
/// The name of the target column.
pub const TARGET: &str = "next";

/// The table for windows of `steps` values, drawn from `seed`.
pub fn sine(steps: usize, seed: u64) -> Result<Table, DataError> {
    if !(1..=MAX_STEPS).contains(&steps) {
        return Err(DataError::Generate {
            name: "sine",
            message: format!(
                "the window must be 1 to {MAX_STEPS} steps (--shape Tx1), got {steps}"
            ),
        });
    }
    // Decorrelated from the training generator, which uses the same seed.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5133_u64.rotate_left(40));
    let mut columns: Vec<String> = (0..steps).map(|t| format!("x{t}")).collect();
    columns.push(TARGET.into());
    let mut values = Vec::with_capacity(ROWS * (steps + 1));
    let tau = std::f32::consts::TAU;
    for _ in 0..ROWS {
        let w1 = rng.random_range(0.1f32..0.8);
        let w2 = rng.random_range(0.8f32..2.0);
        let a = rng.random_range(0.3f32..0.8);
        let (p1, p2) = (rng.random_range(0.0..tau), rng.random_range(0.0..tau));
        for t in 0..=steps {
            let t = t as f32;
            let clean = (w1 * t + p1).sin() + a * (w2 * t + p2).sin();
            values.push(clean + 0.05 * gaussian(&mut rng));
        }
    }
    Ok(Table {
        path: PathBuf::from("builtin:sine"),
        columns,
        values,
    })
}

/// A standard normal draw (Box–Muller).
fn gaussian(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows() {
        let a = sine(4, 7).unwrap();
        assert_eq!(a.columns, ["x0", "x1", "x2", "x3", "next"]);
        assert_eq!(a.rows(), ROWS);
        assert_eq!(a, sine(4, 7).unwrap());
        assert_ne!(a.values, sine(4, 8).unwrap().values);
        assert!(a.values.iter().all(|v| v.is_finite() && v.abs() < 2.0));
        assert!(sine(0, 1).is_err() && sine(MAX_STEPS + 1, 1).is_err());
    }
}
