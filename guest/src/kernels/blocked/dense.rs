//! The blocked f32 dense kernel behind the SIMD overrides of
//! [`generic::dense`], written once over a 4-lane vector ([`F32x4`]) and
//! instantiated for wasm's `v128` and x86-64's SSE2 `__m128`.
//!
//! The weights come in column [`panels`]. A single row runs a whole panel —
//! 24 outputs, six accumulators, enough independent add chains to hide the
//! add latency — per pass over the inputs, reading the panel front to back;
//! a narrower last panel runs the same way with fewer vectors, the last one
//! moved back over its neighbour when the width is not a multiple of 4
//! (same bits), and below 4 outputs one by one. Batches run four rows at a
//! time, 8 outputs per pass, so each weight load serves four rows. Every
//! output's sum keeps the reference's order (`+0`, then `+ x·w` for
//! increasing inputs, the bias last), so the bits are the reference's.

use super::blocks;
use super::lanes::F32x4;
#[cfg(doc)]
use crate::kernels::generic;
use crate::kernels::packing::dense as panels;

/// [`generic::dense`] with `V` lanes; same arguments, same bits.
/// Returns `false`, having written nothing, if the lengths break
/// [`crate::Model`]'s contract (the caller decides how to fail).
#[inline(always)]
pub(crate) fn dense<V: F32x4>(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    inputs: usize,
    outputs: usize,
    y: &mut [f32],
) -> bool {
    let rows = x.len().checked_div(inputs).unwrap_or(0);
    let sizes_ok = inputs.checked_mul(outputs) == Some(w.len())
        && b.len() == outputs
        && rows.checked_mul(outputs).is_some_and(|n| n <= y.len());
    if !sizes_ok {
        return false;
    }
    if outputs == 0 || inputs == 0 {
        // Nothing to compute ([`crate::Model`] refuses a dense layer
        // without inputs; the reference writes nothing either).
        return true;
    }
    let panel = |start: usize, width: usize| &w[start * inputs..(start + width) * inputs];
    // Whole groups of 4 rows through the panels at least 8 wide…
    let blocked = rows / 4 * 4;
    for r in (0..blocked).step_by(4) {
        for (start, width) in panels::panels(outputs).filter(|&(_, width)| width >= 8) {
            for o in blocks(width, 8) {
                let (wp, at) = (panel(start, width), (r, start, o));
                rows_block::<V, 4, 2>(x, wp, b, (inputs, width, outputs), at, y);
            }
        }
    }
    // …and everything else row by row: the other rows, and a narrower last
    // panel of those rows (one inlined copy of the row kernel: a second one
    // made V8 spill accumulators in the whole function, docs/benchmarks.md).
    for (k, (xr, yr)) in x
        .chunks_exact(inputs)
        .zip(y.chunks_exact_mut(outputs))
        .enumerate()
    {
        for (start, width) in panels::panels(outputs) {
            if k < blocked && width >= 8 {
                continue;
            }
            let bp = &b[start..start + width];
            panel_row::<V>(xr, panel(start, width), bp, &mut yr[start..start + width]);
        }
    }
    true
}

/// One row of a panel: a vector per 4 outputs (see [`panel_vectors`]), or
/// output by output below 4.
#[inline(always)]
fn panel_row<V: F32x4>(xr: &[f32], wp: &[f32], bp: &[f32], yp: &mut [f32]) {
    match yp.len().div_ceil(4) {
        0 => {}
        1 if yp.len() < 4 => tail(xr, wp, bp, yp),
        1 => panel_vectors::<V, 1>(xr, wp, bp, yp),
        2 => panel_vectors::<V, 2>(xr, wp, bp, yp),
        3 => panel_vectors::<V, 3>(xr, wp, bp, yp),
        4 => panel_vectors::<V, 4>(xr, wp, bp, yp),
        5 => panel_vectors::<V, 5>(xr, wp, bp, yp),
        _ => panel_vectors::<V, 6>(xr, wp, bp, yp),
    }
}

/// One row of a panel narrower than a vector, output by output.
#[inline(always)]
fn tail(xr: &[f32], wp: &[f32], bp: &[f32], yp: &mut [f32]) {
    let width = yp.len();
    for (oo, yo) in yp.iter_mut().enumerate() {
        let mut acc = 0.0f32;
        for (&xi, wr) in xr.iter().zip(wp.chunks_exact(width)) {
            acc += xi * wr[oo];
        }
        *yo = acc + bp[oo];
    }
}

/// One row of a panel `4(N − 1) < width <= 4N` wide, a vector per 4
/// outputs, the last one ending at the panel's last output (overlapping
/// its neighbour when `width` is not `4N`; same bits). Callers guarantee
/// `width >= 4`, `wp.len() == xr.len() * width` and `bp.len() == yp.len()
/// == width`.
#[inline(always)]
fn panel_vectors<V: F32x4, const N: usize>(xr: &[f32], wp: &[f32], bp: &[f32], yp: &mut [f32]) {
    let width = yp.len();
    let at = |k: usize| if k + 1 == N { width - 4 } else { 4 * k };
    let mut acc = [V::splat(0.0); N];
    let mut p = wp.as_ptr();
    for &xi in xr {
        let xv = V::splat(xi);
        // SAFETY: row i of the panel is the `width` floats at p = wp + i ·
        // width, i < inputs, and every vector's 4 floats end by `width`.
        unsafe {
            for (k, a) in acc.iter_mut().enumerate() {
                *a = a.add(xv.mul(V::load(p.add(at(k)))));
            }
            p = p.add(width);
        }
    }
    // SAFETY: every vector's outputs lie below width == bp.len() == yp.len().
    unsafe {
        for (k, a) in acc.iter().enumerate() {
            a.add(V::load(bp.as_ptr().add(at(k))))
                .store(yp.as_mut_ptr().add(at(k)));
        }
    }
}

/// Outputs `start + o .. start + o + 4N` of rows `r .. r + R`, from the
/// panel `wp` (`inputs × width`) that begins at output `start`. Callers
/// guarantee `r + R <= rows`, `o + 4N <= width`, `start + width <=
/// outputs == b.len()` and `wp.len() == inputs * width`.
#[inline(always)]
// `n` picks the same column of each row's accumulators.
#[allow(clippy::needless_range_loop)]
fn rows_block<V: F32x4, const R: usize, const N: usize>(
    x: &[f32],
    wp: &[f32],
    b: &[f32],
    (inputs, width, outputs): (usize, usize, usize),
    (r, start, o): (usize, usize, usize),
    y: &mut [f32],
) {
    let mut acc = [[V::splat(0.0); N]; R];
    for i in 0..inputs {
        // SAFETY: i < inputs and o + 4N <= width, so the 4N floats at
        // i * width + o lie inside wp; row r + k < rows, so x[(r + k) *
        // inputs + i] lies inside x.
        unsafe {
            let p = wp.as_ptr().add(i * width + o);
            let mut xv = [V::splat(0.0); R];
            for (k, v) in xv.iter_mut().enumerate() {
                *v = V::splat(*x.as_ptr().add((r + k) * inputs + i));
            }
            for n in 0..N {
                let wv = V::load(p.add(4 * n));
                for k in 0..R {
                    acc[k][n] = acc[k][n].add(xv[k].mul(wv));
                }
            }
        }
    }
    // SAFETY: start + o + 4N <= outputs == b.len(), and row r + k < rows,
    // so its outputs lie inside y (checked by the caller).
    unsafe {
        let bp = b.as_ptr().add(start + o);
        for (k, a) in acc.iter().enumerate() {
            let yp = y.as_mut_ptr().add((r + k) * outputs + start + o);
            for (n, a) in a.iter().enumerate() {
                a.add(V::load(bp.add(4 * n))).store(yp.add(4 * n));
            }
        }
    }
}
