//! x86-64 (SSE2, the architecture's baseline) override of
//! [`super::conv::conv2d`], so `kiln predict --native`, evaluation and the
//! native benchmark runner convolve at SIMD speed on the host: the shared
//! blocked kernel of `conv_lanes` on `__m128`. `mulps`/`addps` round each
//! lane like the scalar `f32` ops, so the result equals the reference bit
//! for bit (tested below; the wasm twin is tested in `tests/e2e/kernels.rs`).

use core::arch::x86_64::*;

use super::conv::ConvGeom;
use super::conv_lanes::{self, F32x4};

impl F32x4 for __m128 {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: SSE2 is part of x86-64 (here and below).
        unsafe { _mm_set1_ps(v) }
    }
    #[inline(always)]
    fn from_array(v: [f32; 4]) -> Self {
        unsafe { _mm_setr_ps(v[0], v[1], v[2], v[3]) }
    }
    #[inline(always)]
    fn to_array(self) -> [f32; 4] {
        let mut out = [0.0; 4];
        // SAFETY: out holds 4 floats.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), self) };
        out
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { _mm_add_ps(self, o) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        unsafe { _mm_mul_ps(self, o) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 4 readable floats (unaligned load).
        unsafe { _mm_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 4 writable floats.
        unsafe { _mm_storeu_ps(p, self) }
    }
}

/// [`super::conv::conv2d`], blocked as `conv_lanes` describes.
pub fn conv2d(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    conv_lanes::conv2d::<__m128>(x, w, b, g, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv;

    /// Equal bits to the reference on padding, strides, odd sizes, channel
    /// counts around the 4-wide blocks (remainders 1, 2 and 3 after whole
    /// 4-channel tiles) and widths around the 8-column tiles (stride 1 and
    /// 2), with signed zeros and infinities in the input.
    #[test]
    fn matches_reference() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
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
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{g:?}");
        }
    }
}
