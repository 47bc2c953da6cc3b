//! SIMD128 overrides of the recurrent cells' gate updates
//! ([`reference::rnn_cell`] and its siblings), four hidden values at a
//! time. `σ` and `tanh` are [`crate::math`]'s, vectorised: the same
//! constants and operations in the same order per lane, each early return
//! a lane select, `as i32` the saturating `i32x4.trunc_sat_f32x4_s` — so
//! every lane gives its scalar definition's bits (checked in wasmtime over
//! the shared case table, `kernels/check/f32.rs`). A row's last values,
//! fewer than four, run in a zero-padded vector whose extra lanes are
//! dropped.

use core::arch::wasm32::*;

#[cfg(doc)]
use crate::kernels::generic as reference;
use crate::math::exp_consts::{HI, LN2_HI, LN2_LO, LO, LOG2E, POLY};
use crate::math::{TANH_LINEAR, TANH_SATURATES};

fn splat(v: f32) -> v128 {
    f32x4_splat(v)
}

/// [`crate::math::exp`] on four lanes, inlined into each gate update (a
/// shared copy cost the LSTM 6-11 %: docs/benchmarks.md, "Where the LSTM's
/// time goes").
#[inline(always)]
fn exp(x: v128) -> v128 {
    let v = f32x4_mul(x, splat(LOG2E));
    // Round half away from zero, then truncate (`as i32`).
    let half = f32x4_splat(0.5);
    let away = v128_bitselect(
        f32x4_add(v, half),
        f32x4_sub(v, half),
        f32x4_ge(v, splat(0.0)),
    );
    let n = i32x4_trunc_sat_f32x4(away);
    let nf = f32x4_convert_i32x4(n);
    let r = f32x4_sub(x, f32x4_mul(nf, splat(LN2_HI)));
    let r = f32x4_sub(r, f32x4_mul(nf, splat(LN2_LO)));
    let z = f32x4_mul(r, r);
    let mut p = splat(POLY[0]);
    for &c in &POLY[1..] {
        p = f32x4_add(f32x4_mul(p, r), splat(c));
    }
    let y = f32x4_add(f32x4_add(f32x4_mul(p, z), r), splat(1.0));
    let scale = i32x4_shl(i32x4_add(n, i32x4_splat(127)), 23);
    let e = f32x4_mul(y, scale);
    // The early returns, last first: below LO 0, above HI +inf, NaN as is.
    let e = v128_bitselect(splat(0.0), e, f32x4_lt(x, splat(LO)));
    let e = v128_bitselect(splat(f32::INFINITY), e, f32x4_gt(x, splat(HI)));
    v128_bitselect(x, e, f32x4_ne(x, x))
}

/// [`crate::math::sigmoid`] on four lanes.
#[inline(always)]
fn sigmoid(x: v128) -> v128 {
    f32x4_div(splat(1.0), f32x4_add(splat(1.0), exp(f32x4_neg(x))))
}

/// [`crate::math::tanh`] on four lanes.
#[inline(always)]
fn tanh(x: v128) -> v128 {
    let e = exp(f32x4_mul(splat(2.0), x));
    let t = f32x4_div(f32x4_sub(e, splat(1.0)), f32x4_add(e, splat(1.0)));
    let linear = v128_and(
        f32x4_gt(x, splat(-TANH_LINEAR)),
        f32x4_lt(x, splat(TANH_LINEAR)),
    );
    let t = v128_bitselect(x, t, linear);
    let t = v128_bitselect(splat(-1.0), t, f32x4_lt(x, splat(-TANH_SATURATES)));
    v128_bitselect(splat(1.0), t, f32x4_gt(x, splat(TANH_SATURATES)))
}

/// Values `j .. j + 4` of `s`, zero past its end.
#[inline(always)]
fn load(s: &[f32], j: usize) -> v128 {
    match s.get(j..j + 4) {
        // SAFETY: c holds 4 floats; v128_load needs no alignment.
        Some(c) => unsafe { v128_load(c.as_ptr() as *const v128) },
        None => {
            let mut a = [0.0f32; 4];
            for (d, &v) in a.iter_mut().zip(s.get(j..).unwrap_or(&[])) {
                *d = v;
            }
            f32x4(a[0], a[1], a[2], a[3])
        }
    }
}

/// Writes the lanes of `v` that fall inside `s` at `j ..`.
#[inline(always)]
fn store(s: &mut [f32], j: usize, v: v128) {
    match s.get_mut(j..j + 4) {
        // SAFETY: c holds 4 floats.
        Some(c) => unsafe { v128_store(c.as_mut_ptr() as *mut v128, v) },
        None => {
            let a = [
                f32x4_extract_lane::<0>(v),
                f32x4_extract_lane::<1>(v),
                f32x4_extract_lane::<2>(v),
                f32x4_extract_lane::<3>(v),
            ];
            for (d, &v) in s.get_mut(j..).unwrap_or(&mut []).iter_mut().zip(&a) {
                *d = v;
            }
        }
    }
}

/// [`reference::rnn_cell`], four values at a time.
#[inline(never)]
pub fn rnn_cell(p: &[f32], q: &[f32], h: &mut [f32]) {
    let n = h.len().min(p.len()).min(q.len());
    let h = &mut h[..n];
    for j in (0..n).step_by(4) {
        store(h, j, tanh(f32x4_add(load(p, j), load(q, j))));
    }
}

/// [`reference::gru_reset`], four values at a time.
#[inline(never)]
pub fn gru_reset(p_r: &[f32], q_r: &[f32], h: &[f32], rh: &mut [f32]) {
    let n = rh.len().min(p_r.len()).min(q_r.len()).min(h.len());
    let rh = &mut rh[..n];
    for j in (0..n).step_by(4) {
        let r = sigmoid(f32x4_add(load(p_r, j), load(q_r, j)));
        store(rh, j, f32x4_mul(r, load(h, j)));
    }
}

/// [`reference::gru_cell`], four values at a time.
#[inline(never)]
pub fn gru_cell(p: &[f32], q_zr: &[f32], q_h: &[f32], h: &mut [f32], linear_before_reset: bool) {
    let n = h.len();
    let (Some(p_z), Some(p_r), Some(p_h), Some(q_z), Some(q_r)) = (
        p.get(..n),
        p.get(n..2 * n),
        p.get(2 * n..3 * n),
        q_zr.get(..n),
        q_zr.get(n..2 * n),
    ) else {
        return;
    };
    let m = n.min(q_h.len());
    let h = &mut h[..m];
    for j in (0..m).step_by(4) {
        let z = sigmoid(f32x4_add(load(p_z, j), load(q_z, j)));
        let qh = load(&q_h[..m], j);
        let a = if linear_before_reset {
            let r = sigmoid(f32x4_add(load(p_r, j), load(q_r, j)));
            f32x4_add(load(p_h, j), f32x4_mul(r, qh))
        } else {
            f32x4_add(load(p_h, j), qh)
        };
        let c = tanh(a);
        let keep = f32x4_mul(z, load(h, j));
        let new = f32x4_add(f32x4_mul(f32x4_sub(splat(1.0), z), c), keep);
        store(h, j, new);
    }
}

/// [`reference::lstm_cell`], four values at a time.
#[inline(never)]
pub fn lstm_cell(p: &[f32], q: &[f32], h: &mut [f32], c: &mut [f32]) {
    let n = h.len();
    if p.len() < 4 * n || q.len() < 4 * n || c.len() < n {
        return;
    }
    let c = &mut c[..n];
    let gate = |g: usize, j: usize| {
        f32x4_add(load(&p[g * n..(g + 1) * n], j), load(&q[g * n..(g + 1) * n], j))
    };
    for j in (0..n).step_by(4) {
        let (i, o, f) = (sigmoid(gate(0, j)), sigmoid(gate(1, j)), sigmoid(gate(2, j)));
        let g = tanh(gate(3, j));
        let cj = f32x4_add(f32x4_mul(f, load(c, j)), f32x4_mul(i, g));
        store(c, j, cj);
        store(h, j, f32x4_mul(o, tanh(cj)));
    }
}
