//! x86-64 (SSE2, the architecture's baseline) override of
//! [`super::conv_int8::conv2d_i8`], so `kiln predict --native`, evaluation
//! and the native benchmark runner convolve int8 at SIMD speed: the blocked
//! kernel of `conv_int8_lanes` on `__m128i`, `pmaddwd` standing for
//! `i32x4.dot_i16x8_s`. Integer sums are exact, so it equals the reference
//! bit for bit (tested below; the wasm twin in `tests/e2e/kernels.rs`).

use core::arch::x86_64::*;

use super::conv::ConvGeom;
use super::conv_int8_lanes::{self, I32x4};

impl I32x4 for __m128i {
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: SSE2 is part of x86-64 (here and below).
        unsafe { _mm_setzero_si128() }
    }
    #[inline(always)]
    fn splat(v: i32) -> Self {
        unsafe { _mm_set1_epi32(v) }
    }
    #[inline(always)]
    fn from_array(v: [i32; 4]) -> Self {
        unsafe { _mm_setr_epi32(v[0], v[1], v[2], v[3]) }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { _mm_add_epi32(self, o) }
    }
    #[inline(always)]
    fn dot_add(self, x: Self, w: Self) -> Self {
        unsafe { _mm_add_epi32(self, _mm_madd_epi16(x, w)) }
    }
    #[inline(always)]
    fn broadcast_lanes(self) -> [Self; 4] {
        unsafe {
            [
                _mm_shuffle_epi32::<0x00>(self),
                _mm_shuffle_epi32::<0x55>(self),
                _mm_shuffle_epi32::<0xaa>(self),
                _mm_shuffle_epi32::<0xff>(self),
            ]
        }
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        // SAFETY: the caller guarantees 16 readable bytes (unaligned load).
        unsafe { _mm_loadu_si128(p as *const __m128i) }
    }
    #[inline(always)]
    unsafe fn load_i8x8(p: *const i8) -> Self {
        // SAFETY: the caller guarantees 8 readable bytes. Each byte lands in
        // the high half of its i16 lane; the arithmetic shift sign-extends.
        unsafe {
            let b = _mm_loadl_epi64(p as *const __m128i);
            _mm_srai_epi16::<8>(_mm_unpacklo_epi8(b, b))
        }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        // SAFETY: the caller guarantees 16 writable bytes.
        unsafe { _mm_storeu_si128(p as *mut __m128i, self) }
    }
}

/// [`super::conv_int8::conv2d_i8`], blocked as `conv_int8_lanes` describes.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_i8(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    g: &ConvGeom,
    pad: i8,
    scratch: &mut [i32],
    acc: &mut [i32],
) {
    conv_int8_lanes::conv2d_i8::<__m128i>(x, w, bias, g, pad, scratch, acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv_int8 as reference;

    /// Equal accumulators to the reference over odd widths, rows narrower
    /// than a tile, channel counts around the group of 4, odd and even
    /// kernel widths, strides, padding, extreme values and zero points.
    #[test]
    fn matches_reference() {
        let mut seed = 0x9e37_79b9_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let cases = [
            (1, 28, 28, 6, 5, 5, 1, 0),
            (6, 12, 12, 16, 5, 5, 1, 0),
            (3, 7, 5, 21, 3, 2, 2, 1),
            (2, 5, 6, 3, 1, 1, 1, 0),
            (4, 9, 9, 5, 5, 5, 3, 2),
            (1, 3, 3, 1, 3, 3, 1, 2),
            (5, 6, 13, 7, 2, 4, 1, 1),
            (2, 11, 19, 9, 3, 3, 2, 1),
            (3, 4, 30, 4, 1, 7, 3, 3),
        ];
        for (case, (in_c, in_h, in_w, out_c, kh, kw, stride, pad)) in cases.into_iter().enumerate()
        {
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
            let mut i8s = |n: usize| -> alloc::vec::Vec<i8> {
                (0..n)
                    .map(|_| match next() % 8 {
                        0 => -128,
                        1 => 127,
                        _ => next() as i8,
                    })
                    .collect()
            };
            let batch = 2;
            let x = i8s(batch * g.input_len().unwrap());
            let filters = i8s(g.weight_len().unwrap());
            let mut w = alloc::vec![0i8; reference::packed_len(&g).unwrap()];
            reference::pack_filters(&filters, &g, &mut w);
            let bias: alloc::vec::Vec<i32> = (0..out_c).map(|_| next() as i32 >> 7).collect();
            let zp = [-128i8, 0, 17, 127][case % 4];
            let out = batch * g.output_len().unwrap();
            let mut want = alloc::vec![0i32; out];
            reference::conv2d_i8(&x, &w, &bias, &g, zp, &mut [], &mut want);
            let mut got = alloc::vec![i32::MIN; out];
            let mut scratch = alloc::vec![0i32; reference::scratch_len(&g).unwrap()];
            conv2d_i8(&x, &w, &bias, &g, zp, &mut scratch, &mut got);
            assert_eq!(got, want, "{g:?}");
        }
    }
}
