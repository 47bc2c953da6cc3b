//! SIMD128 overrides of the int8 dense layer and the input quantize.
//!
//! [`dense_i8`] multiplies with `i32x4.dot_i16x8_s`. A packed 16-byte unit
//! holds four outputs × four inputs; each half is sign-extended while loading
//! (`i16x8.load8x8_s`: two outputs × four inputs) and dotted with the four
//! inputs repeated, `[x0, x1, x2, x3, x0, x1, x2, x3]`, giving two partial
//! sums per output; they are added when the pass ends. Products of int8
//! values fit in i16 and a pair's sum in i32, so every step is exact; the
//! i32 sums wrap exactly like the reference's, and integer addition does not
//! depend on its order. Several rows share each weight load when the batch
//! allows ([`dense_rows`]).
//!
//! [`quantize`] performs the reference's f32 operations four lanes at a time
//! (`f32x4.nearest` is the reference's ties-to-even rounding, `pmin`/`pmax`
//! its clamp, `i32x4.trunc_sat_f32x4_s` its saturating conversion).

use core::arch::wasm32::*;

use crate::kernels::generic as reference;
use crate::kernels::packing::dense_i8::{self as packing, BLOCK, QUAD};

/// [`reference::dense_i8`]: 16 outputs per pass over a row, or 4 outputs of
/// 4 rows, so each weight load serves four rows.
#[inline(never)]
#[cfg_attr(
    feature = "relaxed-simd",
    allow(unreachable_pub, reason = "the relaxed kernel's fallback there")
)]
pub fn dense_i8(x: &[i8], w: &[i8], bias: &[i32], inputs: usize, outputs: usize, acc: &mut [i32]) {
    let rows = rows_or_trap(x, w, bias, inputs, outputs, acc);
    let mut r = 0;
    while r + 4 <= rows {
        dense_rows::<4, 1>(x, w, bias, inputs, outputs, r, acc);
        r += 4;
    }
    while r < rows {
        dense_rows::<1, 4>(x, w, bias, inputs, outputs, r, acc);
        r += 1;
    }
}

/// The number of rows in `x` — 0 if there are no outputs — after checking
/// the size contract the SIMD kernels rely on ([`sizes_ok`]). A broken
/// contract ([`crate::Model::new`] checks every size) traps rather than
/// carry a copy of the reference in the kernel.
#[inline(always)]
pub(crate) fn rows_or_trap(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    inputs: usize,
    outputs: usize,
    acc: &[i32],
) -> usize {
    if outputs == 0 {
        return 0;
    }
    if !sizes_ok(x, w, bias, inputs, outputs, acc) {
        core::arch::wasm32::unreachable();
    }
    x.len() / inputs
}

/// The size contract the SIMD kernels rely on.
#[inline(always)]
pub(crate) fn sizes_ok(
    x: &[i8],
    w: &[i8],
    bias: &[i32],
    inputs: usize,
    outputs: usize,
    acc: &[i32],
) -> bool {
    let rows = x.len().checked_div(inputs).unwrap_or(0);
    outputs > 0
        && inputs > 0
        && packing::packed_len(inputs, outputs) == Some(w.len())
        && bias.len() == outputs
        && rows.checked_mul(outputs).is_some_and(|n| n <= acc.len())
}

/// The four inputs `4q .. 4q + 4` of each of the rows `r0 .. r0 + R`, as
/// one i32 splatted to all four lanes.
///
/// # Safety
/// `4q + 4 <= inputs` and `(r0 + R) · inputs <= x.len()`.
#[inline(always)]
pub(crate) unsafe fn splat_quads<const R: usize>(
    x: &[i8],
    inputs: usize,
    r0: usize,
    q: usize,
) -> [v128; R] {
    let mut v = [i32x4_splat(0); R];
    for (r, v) in v.iter_mut().enumerate() {
        // SAFETY: the four bytes at 4q of row r0 + r lie inside x (the
        // caller's contract).
        *v = unsafe {
            v128_load32_splat(x.as_ptr().add((r0 + r) * inputs + QUAD * q) as *const u32)
        };
    }
    v
}

/// [`splat_quads`] for the last, partial quad `q` (`4q < inputs < 4q + 4`):
/// zero beyond the row.
#[inline(always)]
pub(crate) fn splat_last_quads<const R: usize>(
    x: &[i8],
    inputs: usize,
    r0: usize,
    q: usize,
) -> [v128; R] {
    let mut v = [i32x4_splat(0); R];
    for (r, v) in v.iter_mut().enumerate() {
        let xr = &x[(r0 + r) * inputs..(r0 + r + 1) * inputs];
        let mut b = [0u8; QUAD];
        for (t, byte) in b.iter_mut().enumerate() {
            *byte = xr.get(QUAD * q + t).map_or(0, |&v| v as u8);
        }
        *v = i32x4_splat(i32::from_le_bytes(b));
    }
    v
}

/// Adds the bias to and stores the `G` blocks `b0 .. b0 + G` of rows
/// `r0 .. r0 + R`, whose four sums `block(&sums[r], k)` gives.
#[inline(always)]
pub(crate) fn store_rows<const R: usize, const G: usize>(
    sums: &[[v128; 8]; R],
    block: impl Fn(&[v128; 8], usize) -> v128,
    bias: &[i32],
    outputs: usize,
    r0: usize,
    b0: usize,
    acc: &mut [i32],
) {
    for (r, s) in sums.iter().enumerate() {
        let ar = &mut acc[(r0 + r) * outputs..(r0 + r + 1) * outputs];
        for k in 0..G {
            store_block(block(s, k), b0 + k, bias, ar);
        }
    }
}

/// Rows `r0 .. r0 + R`, all outputs, `G` blocks of four outputs per pass.
#[inline(always)]
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

/// `pass::<R, G>(x, w, bias, inputs, outputs, r0, acc)`: runs `pass` over
/// each whole group of `G` output blocks of rows `r0 .. r0 + R`, then
/// `pass::<R, 1>` over the blocks left — the block loop of both the plain
/// and the relaxed kernel. A macro, so each expands it around its own
/// `pass`: the relaxed one needs its caller's `relaxed-simd` target
/// feature, and a function taking the passes as closures changed the plain
/// kernel's generated code.
macro_rules! block_passes {
    ($pass:ident::<$r:ident, $g:ident>($x:ident, $w:ident, $bias:ident, $inputs:ident, $outputs:ident, $r0:ident, $acc:ident)) => {{
        let blocks = $outputs.div_ceil($crate::kernels::packing::dense_i8::BLOCK);
        let mut b = 0;
        while b + $g <= blocks {
            $pass::<$r, $g>($x, $w, $bias, $inputs, $outputs, $r0, b, $acc);
            b += $g;
        }
        while b < blocks {
            $pass::<$r, 1>($x, $w, $bias, $inputs, $outputs, $r0, b, $acc);
            b += 1;
        }
    }};
}
pub(crate) use block_passes;

/// Blocks `b0 .. b0 + G` of rows `r0 .. r0 + R` over the whole input row.
/// `sums[r][2k]` holds outputs 0–1 of block k (two partial sums each),
/// `sums[r][2k + 1]` outputs 2–3.
#[inline(always)]
#[allow(
    clippy::too_many_arguments,
    reason = "`dense_i8`'s five operands, then the first row and block: the arguments of one inlined step"
)]
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
            // SAFETY: b0 + k < blocks and q < quads, so the 16 bytes at
            // ((b0 + k)·quads + q)·16 lie inside w, whose length is
            // blocks · quads · 16 (checked by `sizes_ok`).
            let (lo, hi) = unsafe {
                let at = wp.add(((b0 + k) * quads + q) * 16);
                (
                    i16x8_load_extend_i8x8(at),
                    i16x8_load_extend_i8x8(at.add(8)),
                )
            };
            for r in 0..R {
                sums[r][2 * k] = i32x4_add(sums[r][2 * k], i32x4_dot_i16x8(lo, xv[r]));
                sums[r][2 * k + 1] = i32x4_add(sums[r][2 * k + 1], i32x4_dot_i16x8(hi, xv[r]));
            }
        }
    };
    // Widening the low eight bytes of a splatted quad gives
    // [x0, x1, x2, x3, x0, x1, x2, x3] as i16.
    let widen = |v: [v128; R]| v.map(|q| i16x8_extend_low_i8x16(q));
    for q in 0..full {
        // SAFETY: q < inputs / 4 and row r0 + R - 1 < rows.
        step(
            &widen(unsafe { splat_quads(x, inputs, r0, q) }),
            q,
            &mut sums,
        );
    }
    if full < quads {
        step(
            &widen(splat_last_quads(x, inputs, r0, full)),
            full,
            &mut sums,
        );
    }
    let block = |s: &[v128; 8], k: usize| {
        let (lo, hi) = (s[2 * k], s[2 * k + 1]);
        i32x4_add(
            i32x4_shuffle::<0, 2, 4, 6>(lo, hi),
            i32x4_shuffle::<1, 3, 5, 7>(lo, hi),
        )
    };
    store_rows::<R, G>(&sums, block, bias, outputs, r0, b0, acc);
}

/// Adds the bias to the four sums of block `b` and stores those inside the
/// row (the last block may be partial).
#[inline(always)]
pub(crate) fn store_block(v: v128, b: usize, bias: &[i32], ar: &mut [i32]) {
    let mut out = [0i32; BLOCK];
    // SAFETY: out holds exactly one v128.
    unsafe { v128_store(out.as_mut_ptr() as *mut v128, v) };
    let first = BLOCK * b;
    for (j, s) in out.iter().enumerate() {
        if let (Some(a), Some(&bo)) = (ar.get_mut(first + j), bias.get(first + j)) {
            *a = s.wrapping_add(bo);
        }
    }
}

/// [`reference::quantize`], four values per vector.
pub fn quantize(x: &[f32], inv_scale: f32, zero_point: i32, q: &mut [i8]) {
    let n = x.len().min(q.len());
    let (inv, zp) = (f32x4_splat(inv_scale), f32x4_splat(zero_point as f32));
    let (lo, hi) = (f32x4_splat(-128.0), f32x4_splat(127.0));
    let mut j = 0;
    while j + 4 <= n {
        // SAFETY: j + 4 <= n <= x.len().
        let v = unsafe { v128_load(x.as_ptr().add(j) as *const v128) };
        let v = f32x4_add(f32x4_nearest(f32x4_mul(v, inv)), zp);
        // pmax(v, lo) is `if v < lo { lo } else { v }` and pmin(v, hi) is
        // `if hi < v { hi } else { v }`: the reference's clamp, NaN kept.
        let v = f32x4_pmin(f32x4_pmax(v, lo), hi);
        let i = i32x4_trunc_sat_f32x4(v);
        let t = i16x8_narrow_i32x4(i, i);
        let b = i8x16_narrow_i16x8(t, t);
        let word = i32x4_extract_lane::<0>(b) as u32;
        q[j..j + 4].copy_from_slice(&word.to_le_bytes().map(|v| v as i8));
        j += 4;
    }
    reference::quantize(&x[j..n], inv_scale, zero_point, &mut q[j..n]);
}
