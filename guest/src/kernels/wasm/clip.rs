//! SIMD128 overrides of the clamping activations: the definition's
//! `pmax`/`pmin` selects and single-rounding products and sums, four
//! values at a time, so bit-identical.

use core::arch::wasm32::*;

use crate::kernels::generic as reference;

/// Runs `f` on every whole vector of `x`, then `tail` on the rest.
#[inline(always)]
fn each_vector(x: &mut [f32], f: impl Fn(v128) -> v128, tail: impl FnOnce(&mut [f32])) {
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: c has exactly 4 elements (wasm loads need no alignment).
        unsafe {
            let p = c.as_mut_ptr() as *mut v128;
            v128_store(p, f(v128_load(p)));
        }
    }
    tail(chunks.into_remainder());
}

/// `f32x4.pmin(f32x4.pmax(v, lo), hi)`: `pmax(v, lo)` is `if v < lo { lo }
/// else { v }` and `pmin(v, hi)` is `if hi < v { hi } else { v }`.
#[inline(always)]
fn clamp(v: v128, lo: v128, hi: v128) -> v128 {
    f32x4_pmin(f32x4_pmax(v, lo), hi)
}

/// [`reference::clip`].
pub fn clip(x: &mut [f32], lo: f32, hi: f32) {
    let (l, h) = (f32x4_splat(lo), f32x4_splat(hi));
    each_vector(x, |v| clamp(v, l, h), |t| reference::clip(t, lo, hi));
}

/// [`reference::hard_sigmoid`].
pub fn hard_sigmoid(x: &mut [f32], alpha: f32, beta: f32) {
    let (a, b) = (f32x4_splat(alpha), f32x4_splat(beta));
    let (zero, one) = (f32x4_splat(0.0), f32x4_splat(1.0));
    each_vector(
        x,
        |v| clamp(f32x4_add(f32x4_mul(v, a), b), zero, one),
        |t| reference::hard_sigmoid(t, alpha, beta),
    );
}

/// [`reference::hard_swish`].
pub fn hard_swish(x: &mut [f32]) {
    let (a, half) = (f32x4_splat(reference::HARD_SWISH_ALPHA), f32x4_splat(0.5));
    let (zero, one) = (f32x4_splat(0.0), f32x4_splat(1.0));
    each_vector(
        x,
        |v| f32x4_mul(v, clamp(f32x4_add(f32x4_mul(v, a), half), zero, one)),
        reference::hard_swish,
    );
}
