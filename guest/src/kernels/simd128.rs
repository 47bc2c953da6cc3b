//! SIMD128 overrides of the reference kernels, for wasm modules built with
//! `-C target-feature=+simd128`.
//!
//! Each function performs, per output element, exactly the IEEE operations of
//! its twin in [`super::reference`] in the same order — only several outputs
//! at a time — so results are bit-identical. The host tests this in wasmtime
//! (`runtime/tests/kernels.rs`, feature `kernel-tests`).
//!
//! Loads and stores use raw pointers; every function checks the slice lengths
//! it relies on before the first access, and the dense kernels trap if they
//! do not hold (which [`crate::Model::new`] rules out); the others fall back
//! to the reference.

use core::arch::wasm32::*;

use super::reference;
use super::{blocks, panels};

/// [`reference::dense`], four output lanes per vector, over the column
/// [`panels`]. A single row runs a whole panel — 32 or 24 outputs, eight or
/// six accumulators, enough independent add chains to hide the add latency
/// — per pass over the inputs, reading the panel front to back; batches run
/// four rows at a time, 8 outputs per pass, so each weight load serves four
/// rows. A row narrower than 24 is a single panel, run in one pass too, a
/// vector per 4 outputs (the last moved back over its neighbour); below 4
/// outputs, one by one. Every output's sum keeps the reference's order, and
/// panels are written in order, as the reference does.
#[inline(never)]
pub fn dense(x: &[f32], w: &[f32], b: &[f32], inputs: usize, outputs: usize, y: &mut [f32]) {
    let rows = x.len().checked_div(inputs).unwrap_or(0);
    let sizes_ok = panels::packed_len(inputs, outputs) == Some(w.len())
        && b.len() == outputs
        && rows.checked_mul(outputs).is_some_and(|n| n <= y.len());
    if outputs == 0 {
        return;
    }
    if !sizes_ok {
        // Broken contract ([`crate::Model::new`] checks every size): trap
        // rather than carry a vectorised reference copy in the kernel.
        core::arch::wasm32::unreachable();
    }
    let width = panels::width(outputs);
    let panel = |p: usize| &w[p * inputs * width..(p + 1) * inputs * width];
    let mut r = 0;
    if width >= 8 {
        while r + 4 <= rows {
            for (p, start) in panels::starts(outputs).enumerate() {
                for o in blocks(width, 8) {
                    rows_block::<4, 2>(x, panel(p), b, inputs, width, outputs, r, (start, o), y);
                }
            }
            r += 4;
        }
    }
    for (xr, yr) in x[r * inputs..]
        .chunks_exact(inputs)
        .zip(y[r * outputs..].chunks_exact_mut(outputs))
    {
        for (p, start) in panels::starts(outputs).enumerate() {
            let (wp, bp) = (panel(p), &b[start..start + width]);
            let yp = &mut yr[start..start + width];
            let at = (0, width.saturating_sub(4));
            match width.div_ceil(4) {
                0 => {}
                1 if width < 4 => tail(xr, wp, bp, width, yp),
                1 => dense_block::<1>(xr, wp, bp, width, at, yp),
                2 => dense_block::<2>(xr, wp, bp, width, at, yp),
                3 => dense_block::<3>(xr, wp, bp, width, at, yp),
                4 => dense_block::<4>(xr, wp, bp, width, at, yp),
                5 => dense_block::<5>(xr, wp, bp, width, at, yp),
                6 => dense_block::<6>(xr, wp, bp, width, at, yp),
                _ => dense_block::<8>(xr, wp, bp, width, at, yp),
            }
        }
    }
}

/// Every output of one row, one by one (rows narrower than a vector).
#[inline(always)]
fn tail(xr: &[f32], w: &[f32], b: &[f32], outputs: usize, yr: &mut [f32]) {
    for (oo, yo) in yr.iter_mut().enumerate() {
        let mut acc = 0.0f32;
        for (&xi, wr) in xr.iter().zip(w.chunks_exact(outputs)) {
            acc += xi * wr[oo];
        }
        *yo = acc + b[oo];
    }
}

/// Outputs `start + o .. start + o + 4N` of rows `r .. r + R`, from the
/// panel `wp` (`inputs × width`) that begins at output `start`. Callers
/// guarantee `r + R <= rows`, `o + 4N <= width`, `start + width <=
/// outputs == b.len()` and `wp.len() == inputs * width`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
// `n` picks the same column of each row's accumulators.
#[allow(clippy::needless_range_loop)]
fn rows_block<const R: usize, const N: usize>(
    x: &[f32],
    wp: &[f32],
    b: &[f32],
    inputs: usize,
    width: usize,
    outputs: usize,
    r: usize,
    (start, o): (usize, usize),
    y: &mut [f32],
) {
    let mut acc = [[f32x4_splat(0.0); N]; R];
    for i in 0..inputs {
        // SAFETY: i < inputs and o + 4N <= width, so the 4N floats at
        // i * width + o lie inside wp; row r + k < rows, so x[(r + k) *
        // inputs + i] lies inside x.
        unsafe {
            let p = wp.as_ptr().add(i * width + o) as *const v128;
            let mut xv = [f32x4_splat(0.0); R];
            for (k, v) in xv.iter_mut().enumerate() {
                *v = v128_load32_splat(x.as_ptr().add((r + k) * inputs + i) as *const u32);
            }
            for n in 0..N {
                let wv = v128_load(p.add(n));
                for k in 0..R {
                    acc[k][n] = f32x4_add(acc[k][n], f32x4_mul(xv[k], wv));
                }
            }
        }
    }
    // SAFETY: start + o + 4N <= outputs == b.len(), and row r + k < rows,
    // so its outputs lie inside y (checked by the caller).
    unsafe {
        let bp = b.as_ptr().add(start + o) as *const v128;
        for (k, a) in acc.iter().enumerate() {
            let yp = y.as_mut_ptr().add((r + k) * outputs + start + o) as *mut v128;
            for (n, a) in a.iter().enumerate() {
                v128_store(yp.add(n), f32x4_add(*a, v128_load(bp.add(n))));
            }
        }
    }
}

/// Outputs `o .. o + 4(N − 1)` and `last .. last + 4` of one row, a vector
/// each: `last = o + 4(N − 1)` for a contiguous block, or a narrow row's
/// last vector moved back over its neighbour. Callers guarantee
/// `o + 4(N − 1) <= outputs`, `last + 4 <= outputs`,
/// `w.len() == xr.len() * outputs` and `b.len() == yr.len() == outputs`.
#[inline(always)]
fn dense_block<const N: usize>(
    xr: &[f32],
    w: &[f32],
    b: &[f32],
    outputs: usize,
    (o, last): (usize, usize),
    yr: &mut [f32],
) {
    let at = |k: usize| if k + 1 == N { last } else { o + 4 * k };
    let mut acc = [f32x4_splat(0.0); N];
    for (i, &xi) in xr.iter().enumerate() {
        let xv = f32x4_splat(xi);
        // SAFETY: i < inputs and every vector's 4 outputs lie below
        // `outputs`, so its 4 floats at i * outputs + at(k) lie inside w.
        unsafe {
            let p = w.as_ptr().add(i * outputs);
            for (k, a) in acc.iter_mut().enumerate() {
                let wv = v128_load(p.add(at(k)) as *const v128);
                *a = f32x4_add(*a, f32x4_mul(xv, wv));
            }
        }
    }
    // SAFETY: every vector's outputs lie below outputs == b.len() == yr.len().
    unsafe {
        for (k, a) in acc.iter().enumerate() {
            let bias = v128_load(b.as_ptr().add(at(k)) as *const v128);
            v128_store(yr.as_mut_ptr().add(at(k)) as *mut v128, f32x4_add(*a, bias));
        }
    }
}

/// [`reference::relu`] with `f32x4.pmax(x, 0)`, which is `if x < 0 { 0 } else { x }`.
pub fn relu(x: &mut [f32]) {
    let zero = f32x4_splat(0.0);
    let mut chunks = x.chunks_exact_mut(4);
    for c in &mut chunks {
        // SAFETY: c has exactly 4 elements.
        unsafe {
            let p = c.as_mut_ptr() as *mut v128;
            v128_store(p, f32x4_pmax(v128_load(p), zero));
        }
    }
    reference::relu(chunks.into_remainder());
}

/// [`reference::standardize`], four features at a time.
pub fn standardize(x: &mut [f32], mean: &[f32], inv_std: &[f32]) {
    let n = mean.len();
    if n == 0 || inv_std.len() != n {
        return reference::standardize(x, mean, inv_std);
    }
    for row in x.chunks_exact_mut(n) {
        let mut j = 0;
        while j + 4 <= n {
            // SAFETY: j + 4 <= n == row.len() == mean.len() == inv_std.len().
            unsafe {
                let p = row.as_mut_ptr().add(j) as *mut v128;
                let m = v128_load(mean.as_ptr().add(j) as *const v128);
                let s = v128_load(inv_std.as_ptr().add(j) as *const v128);
                v128_store(p, f32x4_mul(f32x4_sub(v128_load(p), m), s));
            }
            j += 4;
        }
        reference::standardize(&mut row[j..], &mean[j..], &inv_std[j..]);
    }
}
