//! SSE2 overrides of the clamping activations, four values at a time.
//!
//! The definition's clamps are wasm's `pmax`/`pmin` selects, and SSE's
//! `maxps(a, b)` is `if a > b { a } else { b }` (`b` on NaN or equal
//! zeros), so `maxps(lo, v)` is `if v < lo { lo } else { v }` and
//! `minps(hi, v)` is `if hi < v { hi } else { v }`: the same selects, NaN
//! and `-0.0` included. Products and sums round once, as in the definition.

use core::arch::x86_64::*;

use crate::kernels::generic as reference;

/// Runs `f` on every whole vector of `x`, then `tail` on the rest.
#[inline(always)]
fn each_vector(x: &mut [f32], f: impl Fn(__m128) -> __m128, tail: impl FnOnce(&mut [f32])) {
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: c has exactly 4 elements (unaligned load and store).
        unsafe {
            let p = c.as_mut_ptr();
            _mm_storeu_ps(p, f(_mm_loadu_ps(p)));
        }
    }
    tail(chunks.into_remainder());
}

/// The definition's `clamp(v, lo, hi)` (see the module note).
#[inline(always)]
fn clamp(v: __m128, lo: __m128, hi: __m128) -> __m128 {
    // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
    unsafe { _mm_min_ps(hi, _mm_max_ps(lo, v)) }
}

/// [`reference::clip`].
pub fn clip(x: &mut [f32], lo: f32, hi: f32) {
    // SAFETY: SSE2 is in the x86-64 baseline; no memory is accessed.
    let (l, h) = unsafe { (_mm_set1_ps(lo), _mm_set1_ps(hi)) };
    each_vector(x, |v| clamp(v, l, h), |t| reference::clip(t, lo, hi));
}

/// [`reference::hard_sigmoid`].
pub fn hard_sigmoid(x: &mut [f32], alpha: f32, beta: f32) {
    // SAFETY (both blocks): SSE2 is in the x86-64 baseline; no memory is accessed.
    let (a, b, zero, one) = unsafe {
        (_mm_set1_ps(alpha), _mm_set1_ps(beta), _mm_set1_ps(0.0), _mm_set1_ps(1.0))
    };
    each_vector(
        x,
        |v| clamp(unsafe { _mm_add_ps(_mm_mul_ps(v, a), b) }, zero, one),
        |t| reference::hard_sigmoid(t, alpha, beta),
    );
}

/// [`reference::hard_swish`].
pub fn hard_swish(x: &mut [f32]) {
    // SAFETY (both blocks): SSE2 is in the x86-64 baseline; no memory is accessed.
    let (a, half, zero, one) = unsafe {
        (
            _mm_set1_ps(reference::HARD_SWISH_ALPHA),
            _mm_set1_ps(0.5),
            _mm_set1_ps(0.0),
            _mm_set1_ps(1.0),
        )
    };
    each_vector(
        x,
        |v| unsafe { _mm_mul_ps(v, clamp(_mm_add_ps(_mm_mul_ps(v, a), half), zero, one)) },
        reference::hard_swish,
    );
}
