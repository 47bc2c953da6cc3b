//! The f32 element-wise and row ops — input standardization, ReLU,
//! sigmoid, tanh, softmax: the definition of their arithmetic.
//!
//! Buffers are row-major `batch × width` slices, changed in place.

use crate::math;

/// `y = (x − mean) · inv_std`, per feature, in place.
pub fn standardize(x: &mut [f32], mean: &[f32], inv_std: &[f32]) {
    for row in x.chunks_exact_mut(mean.len().max(1)) {
        for ((v, &m), &s) in row.iter_mut().zip(mean).zip(inv_std) {
            *v = (*v - m) * s;
        }
    }
}

/// `max(x, 0)` in place, defined as `if x < 0 { 0 } else { x }` (so `-0.0`
/// and NaN pass through, as wasm's `f32x4.pmax` does).
pub fn relu(x: &mut [f32]) {
    for v in x {
        if *v < 0.0 {
            *v = 0.0;
        }
    }
}

/// The logistic function in place ([`math::sigmoid`]).
pub fn sigmoid(x: &mut [f32]) {
    for v in x {
        *v = math::sigmoid(*v);
    }
}

/// `tanh` in place ([`math::tanh`]).
pub fn tanh(x: &mut [f32]) {
    for v in x {
        *v = math::tanh(*v);
    }
}

/// Softmax over each row of `len` values, in place: subtract the row's
/// maximum, exponentiate, sum left to right, divide.
pub fn softmax(x: &mut [f32], len: usize) {
    for row in x.chunks_exact_mut(len.max(1)) {
        let mut max = f32::NEG_INFINITY;
        for &v in row.iter() {
            if v > max {
                max = v;
            }
        }
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = math::exp(*v - max);
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one() {
        let mut x = [1.0, 2.0, 3.0, -1.0, 0.0, 1000.0];
        softmax(&mut x, 3);
        assert!((x[0] + x[1] + x[2] - 1.0).abs() < 1e-6);
        assert!(x[2] > x[1] && x[1] > x[0]);
        assert_eq!(x[5], 1.0);
    }

    #[test]
    fn relu_keeps_negative_zero_and_nan() {
        let mut x = [-1.0, -0.0, 2.0, f32::NAN];
        relu(&mut x);
        assert_eq!(x[0].to_bits(), 0.0f32.to_bits());
        assert_eq!(x[1].to_bits(), (-0.0f32).to_bits());
        assert_eq!(x[2], 2.0);
        assert!(x[3].is_nan());
    }
}
