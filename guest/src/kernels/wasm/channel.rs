//! SIMD128 overrides of the per-channel ops (leaky ReLU, PReLU, scale and
//! shift): the same IEEE operations per element, four elements at a time,
//! so results are bit-identical.

use core::arch::wasm32::*;

use crate::kernels::generic as channel;

/// [`channel::leaky_relu`]: `bitselect(alpha · x, x, x < 0)`.
pub fn leaky_relu(x: &mut [f32], alpha: f32) {
    let zero = f32x4_splat(0.0);
    let a = f32x4_splat(alpha);
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: c has exactly 4 elements.
        unsafe {
            let p = c.as_mut_ptr() as *mut v128;
            let v = v128_load(p);
            let neg = f32x4_lt(v, zero);
            v128_store(p, v128_bitselect(f32x4_mul(v, a), v, neg));
        }
    }
    channel::leaky_relu(chunks.into_remainder(), alpha);
}

/// [`channel::prelu`]: [`leaky_relu`] per channel.
pub fn prelu(x: &mut [f32], slope: &[f32], inner: usize) {
    if slope.is_empty() || inner == 0 {
        return channel::prelu(x, slope, inner);
    }
    for row in x.chunks_exact_mut(slope.len() * inner) {
        for (ch, &s) in row.chunks_exact_mut(inner).zip(slope) {
            leaky_relu(ch, s);
        }
    }
}

/// [`channel::scale_shift`]: per channel, `scale` and `shift` splatted over
/// its `inner` values; with `inner == 1`, four channels per vector.
pub fn scale_shift(x: &mut [f32], scale: &[f32], shift: &[f32], inner: usize) {
    let channels = scale.len();
    if channels == 0 || inner == 0 || shift.len() != channels {
        return channel::scale_shift(x, scale, shift, inner);
    }
    for row in x.chunks_exact_mut(channels * inner) {
        if inner == 1 {
            let mut j = 0;
            while j + 4 <= channels {
                // SAFETY: j + 4 <= channels == row.len() == scale.len() == shift.len().
                unsafe {
                    let p = row.as_mut_ptr().add(j) as *mut v128;
                    let s = v128_load(scale.as_ptr().add(j) as *const v128);
                    let t = v128_load(shift.as_ptr().add(j) as *const v128);
                    v128_store(p, f32x4_add(f32x4_mul(v128_load(p), s), t));
                }
                j += 4;
            }
            channel::scale_shift(&mut row[j..], &scale[j..], &shift[j..], 1);
            continue;
        }
        for ((ch, &s), &t) in row.chunks_exact_mut(inner).zip(scale).zip(shift) {
            let (sv, tv) = (f32x4_splat(s), f32x4_splat(t));
            let mut chunks = ch.chunks_exact_mut(4);
            for c in &mut chunks {
                // SAFETY: c has exactly 4 elements.
                unsafe {
                    let p = c.as_mut_ptr() as *mut v128;
                    v128_store(p, f32x4_add(f32x4_mul(v128_load(p), sv), tv));
                }
            }
            for v in chunks.into_remainder() {
                *v = *v * s + t;
            }
        }
    }
}
