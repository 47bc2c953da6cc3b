//! x86-64 (SSE2) override of the int8 dense kernel, shaped like the
//! SIMD128 one: each packed 16-byte unit (four outputs × four inputs) is
//! sign-extended to two i16 halves and multiplied with `pmaddwd` by the
//! four inputs repeated, two partial sums per output, added when the pass
//! ends. Integer sums are exact and order-independent, so this equals
//! [`reference::dense_i8`].

use core::arch::x86_64::*;

use crate::kernels::generic as reference;
use crate::kernels::packing::dense_i8::{self as packing, BLOCK, QUAD};

/// Output blocks (of four) per pass over a row.
const GROUP: usize = 4;

/// [`reference::dense_i8`], 16 outputs per pass.
pub fn dense_i8(x: &[i8], w: &[i8], bias: &[i32], inputs: usize, outputs: usize, acc: &mut [i32]) {
    let rows = x.len().checked_div(inputs).unwrap_or(0);
    let sizes_ok = packing::packed_len(inputs, outputs) == Some(w.len())
        && bias.len() == outputs
        && rows.checked_mul(outputs).is_some_and(|n| n <= acc.len());
    if !sizes_ok || outputs == 0 || inputs == 0 {
        return reference::dense_i8(x, w, bias, inputs, outputs, acc);
    }
    let quads = inputs.div_ceil(QUAD);
    let blocks = outputs.div_ceil(BLOCK);
    for (xr, ar) in x.chunks_exact(inputs).zip(acc.chunks_exact_mut(outputs)) {
        let mut b0 = 0;
        while b0 < blocks {
            let n = (blocks - b0).min(GROUP);
            let mut sums = [[0i32; 8]; GROUP];
            // SAFETY: SSE2 is part of x86-64; block b0 + k < blocks and
            // q < quads, so each 16-byte load lies inside w, whose length is
            // blocks · quads · 16 (checked above).
            unsafe {
                let mut lo = [_mm_setzero_si128(); GROUP];
                let mut hi = [_mm_setzero_si128(); GROUP];
                for q in 0..quads {
                    // [x0, x1, x2, x3, x0, x1, x2, x3] as i16.
                    let v = _mm_cvtsi32_si128(quad(xr, q));
                    let t = _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
                    let xv = _mm_unpacklo_epi64(t, t);
                    for k in 0..n {
                        let at = ((b0 + k) * quads + q) * 16;
                        let v = _mm_loadu_si128(w.as_ptr().add(at) as *const __m128i);
                        let wl = _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
                        let wh = _mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8);
                        lo[k] = _mm_add_epi32(lo[k], _mm_madd_epi16(wl, xv));
                        hi[k] = _mm_add_epi32(hi[k], _mm_madd_epi16(wh, xv));
                    }
                }
                for k in 0..n {
                    _mm_storeu_si128(sums[k].as_mut_ptr() as *mut __m128i, lo[k]);
                    _mm_storeu_si128(sums[k].as_mut_ptr().add(4) as *mut __m128i, hi[k]);
                }
            }
            for (k, s) in sums.iter().enumerate().take(n) {
                for j in 0..BLOCK {
                    let o = BLOCK * (b0 + k) + j;
                    if let (Some(a), Some(&bo)) = (ar.get_mut(o), bias.get(o)) {
                        *a = s[2 * j].wrapping_add(s[2 * j + 1]).wrapping_add(bo);
                    }
                }
            }
            b0 += n;
        }
    }
}

/// The four inputs `x[4q .. 4q + 4]` as one little-endian i32, zero beyond
/// the row.
#[inline(always)]
fn quad(xr: &[i8], q: usize) -> i32 {
    match xr.get(QUAD * q..QUAD * q + QUAD) {
        Some(&[a, b, c, d]) => i32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]),
        _ => {
            let mut b = [0u8; QUAD];
            for (t, v) in b.iter_mut().enumerate() {
                *v = xr.get(QUAD * q + t).map_or(0, |&v| v as u8);
            }
            i32::from_le_bytes(b)
        }
    }
}
