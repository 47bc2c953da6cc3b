//! The x86-64 kernels, so `kiln predict --native`, calibration, evaluation
//! and the native benchmark runner run at SIMD speed on the host: the
//! vector traits on SSE2 (the architecture's baseline) `__m128` and
//! `__m128i`, the blocked f32 dense layer, f32 convolution and int8
//! convolution on them, an int8 dense kernel of its own ([`dense_i8()`])
//! and the clamping activations of MobileNets ([`clip()`],
//! [`hard_swish()`], [`hard_sigmoid()`]). Every other op is the generic one.
//!
//! `mulps`/`addps` round each lane like the scalar `f32` ops and
//! `pmaddwd` is `i32x4.dot_i16x8_s`, so every override equals its generic
//! definition bit for bit (checked over the shared case table by this
//! crate's tests).

use core::arch::x86_64::*;

use super::blocked::{self, lanes::F32x4, lanes::I32x4};
use super::generic as reference;
use super::geometry::ConvGeom;

mod clip;
mod dense_i8;

pub use super::generic::*;
pub use blocked::recurrent_i8::product_i8;
pub use clip::{clip, hard_sigmoid, hard_swish};
pub use dense_i8::dense_i8;

/// [`reference::conv2d`], blocked as `blocked::conv` and
/// `blocked::depthwise` describe.
pub fn conv2d(x: &[f32], w: &[f32], b: &[f32], g: &ConvGeom, y: &mut [f32]) {
    blocked::conv2d::<__m128>(x, w, b, g, y)
}

/// [`reference::dense`], blocked as `blocked::dense` describes (lengths
/// that break the model's contract take the reference, which reads only
/// what is there).
pub fn dense(x: &[f32], w: &[f32], b: &[f32], inputs: usize, outputs: usize, y: &mut [f32]) {
    if !blocked::dense::dense::<__m128>(x, w, b, inputs, outputs, y) {
        reference::dense(x, w, b, inputs, outputs, y)
    }
}

/// [`reference::conv2d_i8`], blocked as `blocked::conv_i8` describes.
pub fn conv2d_i8(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    g: &ConvGeom,
    pad: i8,
    scratch: &mut [i32],
    acc: &mut [i32],
) {
    blocked::conv_i8::conv2d_i8::<__m128i>(x, w, bias, g, pad, scratch, acc)
}

impl F32x4 for __m128 {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
        unsafe { _mm_set1_ps(v) }
    }
    #[inline(always)]
    fn from_array(v: [f32; 4]) -> Self {
        // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
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
        // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
        unsafe { _mm_add_ps(self, o) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
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

impl I32x4 for __m128i {
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
        unsafe { _mm_setzero_si128() }
    }
    #[inline(always)]
    fn splat(v: i32) -> Self {
        // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
        unsafe { _mm_set1_epi32(v) }
    }
    #[inline(always)]
    fn from_array(v: [i32; 4]) -> Self {
        // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
        unsafe { _mm_setr_epi32(v[0], v[1], v[2], v[3]) }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
        unsafe { _mm_add_epi32(self, o) }
    }
    #[inline(always)]
    fn dot_add(self, x: Self, w: Self) -> Self {
        // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
        unsafe { _mm_add_epi32(self, _mm_madd_epi16(x, w)) }
    }
    #[inline(always)]
    fn broadcast_lanes(self) -> [Self; 4] {
        // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
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
