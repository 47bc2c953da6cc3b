//! SIMD128 override of [`super::conv_int8::conv2d_i8`]: the blocked kernel
//! of `conv_int8_lanes` on `v128`, used by both wasm builds (the relaxed
//! one too: `i32x4.dot_i16x8_s` is exact, where the relaxed 8-bit dot
//! product is exact only for 7-bit activations). Products of two i16 values
//! of at most 128 in magnitude, and a pair's sum, fit in i32 exactly; lane
//! sums wrap like the reference's and integer addition does not depend on
//! its order, so the accumulators are the reference's bit for bit (tested in
//! wasmtime by `tests/e2e/kernels.rs`).

use core::arch::wasm32::*;

use super::conv::ConvGeom;
use super::conv_int8_lanes::{self, I32x4};

impl I32x4 for v128 {
    #[inline(always)]
    fn zero() -> Self {
        i32x4_splat(0)
    }
    #[inline(always)]
    fn splat(v: i32) -> Self {
        i32x4_splat(v)
    }
    #[inline(always)]
    fn from_array(v: [i32; 4]) -> Self {
        i32x4(v[0], v[1], v[2], v[3])
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        i32x4_add(self, o)
    }
    #[inline(always)]
    fn dot_add(self, x: Self, w: Self) -> Self {
        i32x4_add(self, i32x4_dot_i16x8(x, w))
    }
    #[inline(always)]
    fn broadcast_lanes(self) -> [Self; 4] {
        [
            i32x4_shuffle::<0, 0, 0, 0>(self, self),
            i32x4_shuffle::<1, 1, 1, 1>(self, self),
            i32x4_shuffle::<2, 2, 2, 2>(self, self),
            i32x4_shuffle::<3, 3, 3, 3>(self, self),
        ]
    }
    #[inline(always)]
    unsafe fn load(p: *const i32) -> Self {
        // SAFETY: the caller guarantees 16 readable bytes (wasm loads need
        // no alignment).
        unsafe { v128_load(p as *const v128) }
    }
    #[inline(always)]
    unsafe fn load_i8x8(p: *const i8) -> Self {
        // SAFETY: the caller guarantees 8 readable bytes.
        unsafe { i16x8_load_extend_i8x8(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut i32) {
        // SAFETY: the caller guarantees 16 writable bytes.
        unsafe { v128_store(p as *mut v128, self) }
    }
}

/// [`super::conv_int8::conv2d_i8`], blocked as `conv_int8_lanes` describes.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn conv2d_i8(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    g: &ConvGeom,
    pad: i8,
    scratch: &mut [i32],
    acc: &mut [i32],
) {
    conv_int8_lanes::conv2d_i8::<v128>(x, w, bias, g, pad, scratch, acc)
}
