//! The wasm SIMD128 kernels, for modules built with
//! `-C target-feature=+simd128` (every model module, both kernel builds):
//! the vector traits on `v128`, and the ops where vectors pay. Every other
//! op is the generic one.
//!
//! The relaxed twin (cargo feature `relaxed-simd`, `kernel-relaxed.wasm`)
//! replaces one more kernel, the int8 dense layer ([`relaxed`]); the rest
//! of the build is this folder's plain SIMD128 code.
//!
//! Each override performs, per output, its generic definition's operations
//! in the same order, so the bits are the definition's; the shared case
//! table checks this inside wasmtime (`tests/e2e/kernels.rs`).

use core::arch::wasm32::*;

use super::blocked::lanes::{F32x4, I32x4};

mod channel;
mod clip;
mod conv;
mod conv_i8;
mod dense;
mod dense_i8;
mod recurrent;
#[cfg(feature = "relaxed-simd")]
mod relaxed;

pub use super::generic::*;
pub use channel::{leaky_relu, prelu, scale_shift};
pub use clip::{clip, hard_sigmoid, hard_swish};
pub use conv::{conv2d, pool};
pub use conv_i8::{conv2d_i8, pool_i8, requantize_planes};
pub use dense::{dense, relu, standardize};
pub use dense_i8::quantize;
pub use super::blocked::recurrent_i8::product_i8;
pub use recurrent::{gru_cell, gru_reset, lstm_cell, rnn_cell};
cfg_select! {
    feature = "relaxed-simd" => {
        pub use relaxed::dense_i8;
    }
    _ => {
        pub use dense_i8::dense_i8;
    }
}

impl F32x4 for v128 {
    #[inline(always)]
    fn splat(v: f32) -> Self {
        f32x4_splat(v)
    }
    #[inline(always)]
    fn from_array(v: [f32; 4]) -> Self {
        f32x4(v[0], v[1], v[2], v[3])
    }
    #[inline(always)]
    fn to_array(self) -> [f32; 4] {
        [
            f32x4_extract_lane::<0>(self),
            f32x4_extract_lane::<1>(self),
            f32x4_extract_lane::<2>(self),
            f32x4_extract_lane::<3>(self),
        ]
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        f32x4_add(self, o)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        f32x4_mul(self, o)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 4 readable floats; v128_load
        // accepts any alignment.
        unsafe { v128_load(p as *const v128) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 4 writable floats.
        unsafe { v128_store(p as *mut v128, self) }
    }
}

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
