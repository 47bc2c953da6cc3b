//! Scalar references of the per-channel and per-group ops that imported
//! models need: `leaky_relu`, `prelu`, `scale_shift`, grouped
//! (log-)softmax and global average pooling.
//!
//! Like the rest of [`super`], each function *defines* its op's arithmetic,
//! including the order of every sum; the overrides must match these bit for
//! bit. Rows are channel-major (`channels × inner`, the NCHW layout without
//! the batch).

use crate::math;

/// `if x < 0 { alpha · x } else { x }` in place (NaN and `-0.0` pass through).
pub fn leaky_relu(x: &mut [f32], alpha: f32) {
    for v in x {
        if *v < 0.0 {
            *v *= alpha;
        }
    }
}

/// Per-channel leaky ReLU (ONNX `PRelu`): `if x < 0 { x · slope[c] } else
/// { x }` in place, for rows of `slope.len() × inner` values.
pub fn prelu(x: &mut [f32], slope: &[f32], inner: usize) {
    let width = slope.len() * inner;
    for row in x.chunks_exact_mut(width.max(1)) {
        for (ch, &s) in row.chunks_exact_mut(inner.max(1)).zip(slope) {
            leaky_relu(ch, s);
        }
    }
}

/// `y = x · scale[c] + shift[c]` in place, for rows of `scale.len() × inner`
/// values: one rounding for the product, one for the sum (no FMA).
pub fn scale_shift(x: &mut [f32], scale: &[f32], shift: &[f32], inner: usize) {
    let width = scale.len() * inner;
    for row in x.chunks_exact_mut(width.max(1)) {
        for ((ch, &s), &t) in row.chunks_exact_mut(inner.max(1)).zip(scale).zip(shift) {
            for v in ch {
                *v = *v * s + t;
            }
        }
    }
}

/// Softmax — or, with `log`, log-softmax — over each run of `group`
/// consecutive values, in place.
///
/// Per run: `m` = the maximum (first wins; NaN never replaces it); the sum
/// of `e^(x − m)` accumulates left to right from `+0.0`. Softmax writes
/// `e^(x − m) / sum`; log-softmax writes `(x − m) − ln(sum)`.
pub fn group_softmax(x: &mut [f32], group: usize, log: bool) {
    for run in x.chunks_exact_mut(group.max(1)) {
        let mut max = f32::NEG_INFINITY;
        for &v in run.iter() {
            if v > max {
                max = v;
            }
        }
        if log {
            let mut sum = 0.0f32;
            for &v in run.iter() {
                sum += math::exp(v - max);
            }
            let l = math::ln(sum);
            for v in run.iter_mut() {
                *v = (*v - max) - l;
            }
        } else {
            let mut sum = 0.0f32;
            for v in run.iter_mut() {
                *v = math::exp(*v - max);
                sum += *v;
            }
            for v in run.iter_mut() {
                *v /= sum;
            }
        }
    }
}

/// Mean over each channel: rows of `channels × inner` values in `x` become
/// rows of `channels` in `y`. The sum accumulates left to right from `+0.0`
/// and is divided by `inner` (converted to f32) once.
pub fn global_avg_pool(x: &[f32], channels: usize, inner: usize, y: &mut [f32]) {
    let n = inner as f32;
    let width = channels * inner;
    for (xr, yr) in x
        .chunks_exact(width.max(1))
        .zip(y.chunks_exact_mut(channels.max(1)))
    {
        for (ch, out) in xr.chunks_exact(inner.max(1)).zip(yr.iter_mut()) {
            let mut sum = 0.0f32;
            for &v in ch {
                sum += v;
            }
            *out = sum / n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaky_relu_scales_negatives_only() {
        let mut x = [-2.0, -0.0, 3.0, f32::NAN];
        leaky_relu(&mut x, 0.5);
        assert_eq!(&x[..3], &[-1.0, -0.0, 3.0]);
        assert_eq!(x[1].to_bits(), (-0.0f32).to_bits());
        assert!(x[3].is_nan());
    }

    #[test]
    fn scale_shift_is_per_channel() {
        // Two rows of 2 channels × 3 values.
        let mut x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        scale_shift(&mut x, &[2.0, -1.0], &[1.0, 0.5], 3);
        assert_eq!(
            x,
            [
                3.0, 5.0, 7.0, -3.5, -4.5, -5.5, 1.0, 1.0, 1.0, -0.5, -0.5, -0.5
            ]
        );
    }

    #[test]
    fn group_softmax_matches_definition() {
        let mut x = [1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        group_softmax(&mut x, 3, false);
        assert!((x[0] + x[1] + x[2] - 1.0).abs() < 1e-6);
        assert!((x[3] - 1.0 / 3.0).abs() < 1e-7);
        let mut l = [1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        group_softmax(&mut l, 3, true);
        for (a, b) in l.iter().zip(&x) {
            assert!((a.exp() - b).abs() < 1e-6, "{a} vs ln {b}");
        }
    }

    #[test]
    fn global_avg_pool_means_each_channel() {
        let x = [1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
        let mut y = [0.0; 2];
        global_avg_pool(&x, 2, 4, &mut y);
        assert_eq!(y, [2.5, 25.0]);
    }
}
