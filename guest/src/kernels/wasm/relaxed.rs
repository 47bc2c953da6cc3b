//! Relaxed-SIMD override of the int8 dense kernel, for the second kernel
//! build (cargo feature `relaxed-simd`, `kernel-relaxed.wasm`). The
//! functions here that issue the instruction enable the `relaxed-simd`
//! target feature; LLVM extends it to the whole module (wasm has no
//! per-function features) and then turns some `pmin`/`pmax` selects into
//! `f32x4.relaxed_min/max`, which `runtime/build.rs` pins back.
//!
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c)` adds to each i32 lane of
//! `c` the four products of that lane's bytes of `a` (signed) and `b`. Its
//! result is *relaxed*: engines may treat `b` as signed or unsigned, and may
//! saturate the pairwise i16 sums (x86 `pmaddubsw`). Both are exact, and so
//! every engine agrees with the reference, whenever every byte of `b` lies in
//! `0..=127`: then signed and unsigned readings coincide and a pair sum is at
//! most 2·128·127 = 32,512 < 2¹⁵.
//!
//! So `b` is always the activation row, and the kernel *checks* each row
//! ([`reference::is_7bit`], a vector OR of its bytes) before using the
//! instruction; a row with a negative value runs the plain SIMD128 kernel.
//! Determinism therefore never depends on the model: a quantizer that keeps
//! activations in 0..=127 (`kiln quantize` does for non-negative ranges —
//! ReLU outputs, pixel inputs) gets the fast path, any other model the plain
//! one, both with the reference's bits.
//!
//! A packed unit is four outputs × four inputs (`packing::dense_i8`), exactly one
//! lane per output: one load and one instruction per 16 multiply-adds, where
//! the plain kernel needs two sign-extending loads, two dots and two adds.

use core::arch::wasm32::*;

use super::dense_i8::{
    self as plain, block_passes, rows_or_trap, splat_last_quads, splat_quads, store_rows,
};
use crate::kernels::generic as reference;
use crate::kernels::packing::dense_i8::QUAD;

/// [`reference::dense_i8`]: 32 outputs per pass over a row, or 8 outputs of
/// 4 rows; rows with a negative value go to the plain SIMD128 kernel.
#[inline(never)]
pub fn dense_i8(x: &[i8], w: &[i8], bias: &[i32], inputs: usize, outputs: usize, acc: &mut [i32]) {
    let rows = rows_or_trap(x, w, bias, inputs, outputs, acc);
    let row = |r: usize| &x[r * inputs..(r + 1) * inputs];
    let mut r = 0;
    while r < rows {
        if r + 4 <= rows && (r..r + 4).all(|r| is_7bit(row(r))) {
            dense_rows::<4, 2>(x, w, bias, inputs, outputs, r, acc);
            r += 4;
        } else if is_7bit(row(r)) {
            dense_rows::<1, 8>(x, w, bias, inputs, outputs, r, acc);
            r += 1;
        } else {
            let ar = &mut acc[r * outputs..(r + 1) * outputs];
            plain::dense_i8(row(r), w, bias, inputs, outputs, ar);
            r += 1;
        }
    }
}

/// [`reference::is_7bit`], sixteen bytes at a time.
fn is_7bit(x: &[i8]) -> bool {
    let mut any = i8x16_splat(0);
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        // SAFETY: c has exactly 16 bytes.
        any = v128_or(any, unsafe { v128_load(c.as_ptr() as *const v128) });
    }
    i8x16_bitmask(any) == 0 && reference::is_7bit(chunks.remainder())
}

/// Rows `r0 .. r0 + R` (each checked 7-bit), `G` blocks per pass.
#[target_feature(enable = "relaxed-simd")]
fn dense_rows<const R: usize, const G: usize>(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    inputs: usize,
    outputs: usize,
    r0: usize,
    acc: &mut [i32],
) {
    block_passes!(pass::<R, G>(x, w, bias, inputs, outputs, r0, acc));
}

/// Blocks `b0 .. b0 + G` of rows `r0 .. r0 + R` over the whole input row:
/// `sums[r][k]` holds the four outputs of block `b0 + k`.
#[target_feature(enable = "relaxed-simd")]
#[allow(
    clippy::too_many_arguments,
    reason = "`dense_i8`'s five operands, then the first row and block: the arguments of one inlined step"
)]
// `k` picks the same block in each row's accumulators.
#[allow(clippy::needless_range_loop)]
fn pass<const R: usize, const G: usize>(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    inputs: usize,
    outputs: usize,
    r0: usize,
    b0: usize,
    acc: &mut [i32],
) {
    let quads = inputs.div_ceil(QUAD);
    let full = inputs / QUAD;
    let wp = w.as_ptr();
    let mut sums = [[i32x4_splat(0); 8]; R];
    let step = |xv: &[v128; R], q: usize, sums: &mut [[v128; 8]; R]| {
        for k in 0..G {
            // SAFETY: b0 + k < blocks and q < quads, so the 16 bytes lie
            // inside w (length blocks · quads · 16, checked by `sizes_ok`).
            let wv = unsafe { v128_load(wp.add(((b0 + k) * quads + q) * 16) as *const v128) };
            for r in 0..R {
                // xv[r] is in 0..=127 (checked by the caller): exact.
                sums[r][k] = i32x4_relaxed_dot_i8x16_i7x16_add(wv, xv[r], sums[r][k]);
            }
        }
    };
    for q in 0..full {
        // SAFETY: q < inputs / 4 and row r0 + R - 1 < rows.
        step(&unsafe { splat_quads(x, inputs, r0, q) }, q, &mut sums);
    }
    if full < quads {
        step(&splat_last_quads(x, inputs, r0, full), full, &mut sums);
    }
    store_rows::<R, G>(&sums, |s, k| s[k], bias, outputs, r0, b0, acc);
}
