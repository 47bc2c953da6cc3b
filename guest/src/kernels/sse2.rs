//! x86-64 (SSE2, the architecture's baseline) overrides of the f32
//! convolution and dense layer, so `kiln predict --native`, evaluation and
//! the native benchmark runner run them at SIMD speed on the host: the
//! shared blocked kernels of `conv_lanes` and `dense_lanes` on `__m128`.
//! `mulps`/`addps` round each lane like the scalar `f32` ops, so the results
//! equal the reference's bit for bit (tested below; the wasm twins are
//! tested in `tests/e2e/kernels.rs`).

use core::arch::x86_64::*;

use super::conv::ConvGeom;
use super::{conv_lanes, dense_lanes, reference};

/// [`super::conv::conv2d`], blocked as `conv_lanes` describes.
pub fn conv2d(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    conv_lanes::conv2d::<__m128>(x, w, b, g, y)
}

/// [`reference::dense`], blocked as `dense_lanes` describes (lengths that
/// break the model's contract take the reference, which reads only what is
/// there).
pub fn dense(x: &[f32], w: &[f32], b: &[f32], inputs: usize, outputs: usize, y: &mut [f32]) {
    if !dense_lanes::dense::<__m128>(x, w, b, inputs, outputs, y) {
        reference::dense(x, w, b, inputs, outputs, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// Values in [−1, 1) from a xorshift generator seeded with `seed`.
    fn values(mut seed: u64) -> impl FnMut() -> f32 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// Equal bits to the reference around the 24-wide panels (narrower last
    /// panels of every width class), the 8- and 4-wide blocks, the 4-row
    /// blocks and the benchmark models' widths.
    #[test]
    fn dense_matches_reference() {
        let mut next = values(0x2545_f491_4f6c_dd1d);
        for (batch, inputs, outputs) in [
            (1, 784, 256),
            (5, 256, 120),
            (6, 120, 84),
            (1, 84, 10),
            (2, 6, 26),
            (3, 33, 37),
            (4, 17, 50),
            (9, 13, 23),
            (8, 20, 8),
            (5, 3, 4),
            (2, 7, 3),
            (1, 1, 1),
            (4, 5, 26),
            (6, 9, 30),
            (4, 3, 45),
            (5, 11, 29),
        ] {
            let mut x: Vec<f32> = (0..batch * inputs).map(|_| next()).collect();
            x[0] = -0.0;
            let w: Vec<f32> = (0..inputs * outputs).map(|_| next()).collect();
            let b: Vec<f32> = (0..outputs).map(|_| next()).collect();
            let (mut want, mut got) = (vec![0.0; batch * outputs], vec![0.0; batch * outputs]);
            reference::dense(&x, &w, &b, inputs, outputs, &mut want);
            dense(&x, &w, &b, inputs, outputs, &mut got);
            assert_eq!(bits(&got), bits(&want), "{batch}x{inputs}x{outputs}");
        }
    }

    /// Equal bits to the reference on padding, strides, odd sizes, channel
    /// counts around the 4-wide blocks (remainders 1, 2 and 3 after whole
    /// 4-channel tiles) and widths around the 8-column tiles (stride 1 and
    /// 2), with signed zeros and infinities in the input.
    #[test]
    fn matches_reference() {
        let mut next = values(0x9e37_79b9_7f4a_7c15);
        // (in_c, in_h, in_w, out_c, kh, kw, stride, pad)
        let cases = [
            (1, 28, 28, 6, 5, 5, 1, 0),
            (6, 12, 12, 16, 5, 5, 1, 0),
            (1, 8, 8, 16, 3, 3, 1, 1),
            (16, 4, 4, 32, 3, 3, 1, 1),
            (3, 7, 5, 21, 3, 2, 2, 1),
            (2, 5, 6, 3, 1, 1, 1, 0),
            (4, 9, 9, 5, 5, 5, 3, 2),
            (2, 11, 19, 7, 3, 3, 1, 2),
            (3, 13, 29, 2, 4, 3, 2, 1),
            (3, 13, 29, 5, 4, 3, 2, 1),
            (2, 6, 40, 9, 3, 3, 2, 1),
            (1, 6, 13, 1, 2, 2, 1, 1),
            (2, 9, 20, 10, 3, 3, 1, 1),
            (2, 7, 19, 9, 3, 3, 1, 0),
            (1, 10, 30, 13, 3, 3, 2, 0),
            (2, 10, 21, 14, 3, 3, 2, 1),
        ];
        for (in_c, in_h, in_w, out_c, kh, kw, stride, pad) in cases {
            let g = ConvGeom {
                in_c,
                in_h,
                in_w,
                out_c,
                kh,
                kw,
                stride,
                pad,
            };
            g.check().expect("valid test geometry");
            let batch = 2;
            let mut x: Vec<f32> = (0..batch * g.input_len().unwrap())
                .map(|_| next())
                .collect();
            x[0] = -0.0;
            x[3] = f32::INFINITY;
            let w: Vec<f32> = (0..g.weight_len().unwrap()).map(|_| next()).collect();
            let b: Vec<f32> = (0..out_c).map(|_| next()).collect();
            let out = batch * g.output_len().unwrap();
            let (mut want, mut got) = (vec![0.0f32; out], vec![0.0f32; out]);
            conv::conv2d(&x, &w, &b, &g, &mut want);
            conv2d(&x, &w, &b, &g, &mut got);
            assert_eq!(bits(&got), bits(&want), "{g:?}");
        }
    }
}
