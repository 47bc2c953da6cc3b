//! Scalar reference kernels: the definition of every op's arithmetic.
//!
//! Buffers are row-major `batch × width` slices. Callers ([`crate::Model`])
//! guarantee the lengths; the kernels iterate with `chunks_exact`/`zip`, so a
//! wrong length computes less, never reads out of bounds.

use super::panels;
use crate::math;

/// Fully connected layer: `y[r][o] = (Σ_i x[r][i] · W[o][i]) + b[o]`.
///
/// `w` is stored in column [`panels`]. The sum for each output starts at
/// `+0.0` and adds the products in increasing `i`, one rounding per multiply
/// and per add (no FMA); the bias is added last. Outputs are independent,
/// so vectorising across `o` keeps this order exactly.
pub fn dense(x: &[f32], w: &[f32], b: &[f32], inputs: usize, outputs: usize, y: &mut [f32]) {
    for (start, width) in panels::panels(outputs) {
        let (Some(wp), Some(bp)) = (
            w.get(start * inputs..(start + width) * inputs),
            b.get(start..start + width),
        ) else {
            return;
        };
        for (xr, yr) in x
            .chunks_exact(inputs.max(1))
            .zip(y.chunks_exact_mut(outputs))
        {
            let yp = &mut yr[start..start + width];
            yp.fill(0.0);
            for (&xi, wr) in xr.iter().zip(wp.chunks_exact(width)) {
                for (yo, &wo) in yp.iter_mut().zip(wr) {
                    *yo += xi * wo;
                }
            }
            for (yo, &bo) in yp.iter_mut().zip(bp) {
                *yo += bo;
            }
        }
    }
}

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
    fn dense_matches_definition() {
        // x = [1, 2], w (2 inputs × 3 outputs) input-major, b = [0.5, 0, -1]
        let x = [1.0, 2.0];
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [0.5, 0.0, -1.0];
        let mut y = [0.0; 3];
        dense(&x, &w, &b, 2, 3, &mut y);
        assert_eq!(y, [9.5, 12.0, 14.0]);
    }

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
