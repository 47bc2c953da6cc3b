//! The f32 ops' checks.

use alloc::vec::Vec;

use super::{Failure, Run, cases, define};
use crate::kernels::geometry::{ConvGeom, PoolGeom, PoolKind};
use crate::kernels::{self, generic};
use crate::math;

pub(super) fn dense(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::DENSE, |case, [batch, inputs, outputs], rng, d| {
        let mut x = rng.f32s(batch * inputs);
        x[0] = -0.0;
        let (w, b) = (rng.f32s(inputs * outputs), rng.f32s(outputs));
        let y = alloc::vec![0.0; batch * outputs];
        let want = define(&y, |y| generic::dense(&x, &w, &b, inputs, outputs, y));
        let got = r.run(&y, |y| kernels::dense(&x, &w, &b, inputs, outputs, y));
        d.same(case, &got, &want)
    })
}

pub(super) fn relu(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::WIDTHS, |case, n, rng, d| {
        let mut x = rng.f32s(n);
        x[0] = f32::NAN;
        d.same(case, &r.run(&x, kernels::relu), &define(&x, generic::relu))
    })
}

/// Clip (ReLU6, and one-sided with infinite bounds), hard-sigmoid and
/// hard-swish around their clamps' corners (±3, where the gates saturate),
/// with signed zeros and infinities; NaN for clip only (the others' NaN
/// payload is the engine's).
pub(super) fn clamps(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::WIDTHS, |case, n, rng, d| {
        let mut x = rng.f32s(n + 8);
        let corners = [-3.0, 3.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 6.0, 2.5];
        for (v, c) in x.iter_mut().step_by(2).zip(corners) {
            *v = c;
        }
        let bounds = [(0.0, 6.0), (-1.5, f32::INFINITY), (f32::MIN, f32::MAX)];
        for (lo, hi) in bounds {
            let mut x = x.clone();
            x[1] = f32::NAN;
            let want = define(&x, |x| generic::clip(x, lo, hi));
            d.same(case, &r.run(&x, |x| kernels::clip(x, lo, hi)), &want)?;
        }
        for (a, b) in [(0.2, 0.5), (1.0 / 6.0, 0.5), (-0.75, 0.125)] {
            let want = define(&x, |x| generic::hard_sigmoid(x, a, b));
            d.same(case, &r.run(&x, |x| kernels::hard_sigmoid(x, a, b)), &want)?;
        }
        let want = define(&x, generic::hard_swish);
        d.same(case, &r.run(&x, kernels::hard_swish), &want)
    })
}

pub(super) fn standardize(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::WIDTHS, |case, n, rng, d| {
        let (x, mean, inv) = (rng.f32s(3 * n), rng.f32s(n), rng.f32s(n));
        let want = define(&x, |x| generic::standardize(x, &mean, &inv));
        d.same(
            case,
            &r.run(&x, |x| kernels::standardize(x, &mean, &inv)),
            &want,
        )
    })
}

/// `exp`, sigmoid, tanh and softmax over −100..100 in steps of 0.01, and
/// `ln` over the positive floats from subnormals to the maximum: no
/// override yet, so what this checks is their bits in wasm against the
/// native ones (the digest).
pub(super) fn math(r: &Run) -> Result<u64, Failure> {
    let exp = |x: &mut [f32]| x.iter_mut().for_each(|v| *v = math::exp(*v));
    let ln = |x: &mut [f32]| x.iter_mut().for_each(|v| *v = math::ln(*v));
    type InPlace = fn(&mut [f32]);
    let ops: [(InPlace, InPlace); 5] = [
        (exp, exp),
        (kernels::sigmoid, generic::sigmoid),
        (kernels::tanh, generic::tanh),
        (|x| kernels::softmax(x, 10), |x| generic::softmax(x, 10)),
        (ln, ln),
    ];
    r.cases(&ops, |case, (kernel, definition), _, d| {
        let x: Vec<f32> = if case < 4 {
            (0..20_000).map(|i| -100.0 + i as f32 * 0.01).collect()
        } else {
            let specials = [0.0, -1.0, f32::INFINITY, f32::MAX, f32::MIN_POSITIVE, 1.0];
            let tiny_to_max = (0..30_000).map(|i| f32::from_bits(1 + i * 71_000));
            tiny_to_max.chain(specials).collect()
        };
        d.same(case, &r.run(&x, kernel), &define(&x, definition))
    })
}

pub(super) fn conv2d(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CONV, |case, dims, rng, d| {
        conv_case(r, case, ConvGeom::new(dims), rng, d)
    })
}

/// [`conv2d`]'s check over the geometries only the f32 convolution runs:
/// groups (depthwise included), dilation, uneven padding.
pub(super) fn conv2d_full(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CONV_FULL, |case, dims, rng, d| {
        conv_case(r, case, ConvGeom::from_full(dims), rng, d)
    })
}

fn conv_case(
    r: &Run,
    case: usize,
    g: ConvGeom,
    rng: &mut super::Rng,
    d: &mut super::Digest,
) -> Result<(), Failure> {
    let (Some(()), Some(inl), Some(outl), Some(wl)) =
        (g.check(), g.input_len(), g.output_len(), g.weight_len())
    else {
        return Err(Failure::Trivial { case });
    };
    let batch = 3;
    let mut x = rng.f32s(batch * inl);
    x[0] = -0.0;
    x[3] = f32::INFINITY;
    let (w, b) = (rng.f32s(wl), rng.f32s(g.out_c));
    let y = alloc::vec![0.0; batch * outl];
    let want = define(&y, |y| generic::conv2d(&x, &w, &b, &g, y));
    d.same(
        case,
        &r.run(&y, |y| kernels::conv2d(&x, &w, &b, &g, y)),
        &want,
    )
}

pub(super) fn pool(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::POOL, |case, dims, rng, d| {
        let g = PoolGeom::new(dims);
        let Some(inl) = g.check().and(g.input_len()) else {
            return Err(Failure::Trivial { case });
        };
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let mut x = rng.f32s(2 * inl);
            // Max never picks a NaN (an average would give a NaN whose
            // payload wasm leaves unspecified, so averages get none). Ties
            // of signed zeros as the maximum: the first in the definition's
            // order (ky, then kx) wins, so a kernel folding a window in
            // another order gives other bits.
            if kind == PoolKind::Max {
                x[1] = f32::NAN;
                let w = g.w;
                let ties = [(0, -0.0), (w, 0.0), (w + 1, -1.0), (2, 0.0), (3, -0.0)];
                for (i, v) in ties.into_iter().chain([(w + 2, -1.0), (w + 3, -1.0)]) {
                    x[i] = v;
                }
            }
            x[7] = f32::NEG_INFINITY;
            let y = alloc::vec![0.0; 2 * g.output_len()];
            let want = define(&y, |y| generic::pool(kind, &x, &g, y));
            d.same(case, &r.run(&y, |y| kernels::pool(kind, &x, &g, y)), &want)?;
        }
        Ok(())
    })
}

pub(super) fn leaky_relu(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::WIDTHS, |case, n, rng, d| {
        let mut x = rng.f32s(n);
        x[0] = f32::NAN;
        let want = define(&x, |x| generic::leaky_relu(x, 0.01));
        d.same(case, &r.run(&x, |x| kernels::leaky_relu(x, 0.01)), &want)
    })
}

pub(super) fn scale_shift(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CHANNELS, |case, [batch, channels, inner], rng, d| {
        let x = rng.f32s(batch * channels * inner);
        let (s, t) = (rng.f32s(channels), rng.f32s(channels));
        let want = define(&x, |x| generic::scale_shift(x, &s, &t, inner));
        d.same(
            case,
            &r.run(&x, |x| kernels::scale_shift(x, &s, &t, inner)),
            &want,
        )
    })
}

pub(super) fn prelu(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CHANNELS, |case, [batch, channels, inner], rng, d| {
        let (x, slope) = (rng.f32s(batch * channels * inner), rng.f32s(channels));
        let want = define(&x, |x| generic::prelu(x, &slope, inner));
        d.same(
            case,
            &r.run(&x, |x| kernels::prelu(x, &slope, inner)),
            &want,
        )
    })
}

pub(super) fn global_avg_pool(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CHANNELS, |case, [batch, channels, inner], rng, d| {
        let x = rng.f32s(batch * channels * inner);
        let y = alloc::vec![0.0; batch * channels];
        let want = define(&y, |y| generic::global_avg_pool(&x, channels, inner, y));
        let got = r.run(&y, |y| kernels::global_avg_pool(&x, channels, inner, y));
        d.same(case, &got, &want)
    })
}

pub(super) fn group_softmax(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::GROUPS, |case, (group, log), _, d| {
        let x: Vec<f32> = (0..6000).map(|i| -30.0 + i as f32 * 0.01).collect();
        let want = define(&x, |x| generic::group_softmax(x, group, log));
        d.same(
            case,
            &r.run(&x, |x| kernels::group_softmax(x, group, log)),
            &want,
        )
    })
}

/// The joining ops of graph models (`add`, `gate`, `concat`): no override,
/// so what this checks is their bits in wasm against the native ones (the
/// digest), signed zeros, NaN and infinities included.
pub(super) fn join(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CHANNELS, |case, [batch, channels, inner], rng, d| {
        let n = batch * channels * inner;
        let (mut x, mut y, g) = (rng.f32s(n), rng.f32s(n), rng.f32s(batch * channels));
        x[0] = -0.0;
        y[0] = 0.0;
        x[n - 1] = f32::INFINITY;
        let want = define(&x, |x| generic::add(x, &y));
        d.same(case, &r.run(&x, |x| kernels::add(x, &y)), &want)?;
        y[0] = f32::NEG_INFINITY;
        let want = define(&y, |y| generic::gate(y, &g, inner));
        d.same(case, &r.run(&y, |y| kernels::gate(y, &g, inner)), &want)?;
        // Rows of x, then rows of g, side by side.
        let total = channels * inner + channels;
        let out = alloc::vec![0.0; batch * total];
        let cat = |out: &mut [f32], f: fn(&mut [f32], &[f32], usize, usize, usize)| {
            f(out, &x, channels * inner, 0, total);
            f(out, &g, channels, channels * inner, total);
        };
        let want = define(&out, |o| cat(o, generic::concat));
        d.same(case, &r.run(&out, |o| cat(o, kernels::concat)), &want)
    })
}

/// The gate updates of the recurrent cells (RNN, GRU both ways and its
/// reset half, LSTM) on `n` hidden values — whole vectors and a padded
/// tail —, saturating pre-activations, tanh's linear and saturated
/// ranges, signed zeros and subnormals included: the SIMD128 overrides
/// against their definitions.
pub(super) fn recurrent(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::WIDTHS, |case, n, rng, d| {
        let (mut p, mut q) = (rng.f32s(4 * n), rng.f32s(4 * n));
        let h = rng.f32s(n);
        // Around exp's and tanh's branches (q's value there zero).
        let edges = [
            88.4, -87.4, 44.2, -43.7, 4.5, 9.5, -9.5, 5e-5, -5e-5, 1e3, -1e3,
        ];
        for (k, e) in (0..4 * n).step_by(3).zip(edges) {
            (p[k], q[k]) = (e, 0.0);
        }
        let want = define(&h, |h| generic::rnn_cell(&p, &q, h));
        d.same(case, &r.run(&h, |h| kernels::rnn_cell(&p, &q, h)), &want)?;
        let (q_zr, q_h) = (&q[..2 * n], &q[2 * n..3 * n]);
        for lbr in [true, false] {
            let want = define(&h, |h| generic::gru_cell(&p, q_zr, q_h, h, lbr));
            let got = r.run(&h, |h| kernels::gru_cell(&p, q_zr, q_h, h, lbr));
            d.same(case, &got, &want)?;
        }
        let reset = alloc::vec![0.0; n];
        let (p_r, q_r) = (&p[n..2 * n], &q[n..2 * n]);
        let want = define(&reset, |rh| generic::gru_reset(p_r, q_r, &h, rh));
        let got = r.run(&reset, |rh| kernels::gru_reset(p_r, q_r, &h, rh));
        d.same(case, &got, &want)?;
        // The hidden state, then the cell state.
        let state = [h.clone(), rng.f32s(n)].concat();
        type Lstm = fn(&[f32], &[f32], &mut [f32], &mut [f32]);
        let (p, q) = (&p[..], &q[..]);
        let lstm = |f: Lstm| {
            move |s: &mut [f32]| {
                let (h, c) = s.split_at_mut(n);
                f(p, q, h, c)
            }
        };
        let want = define(&state, lstm(generic::lstm_cell));
        d.same(case, &r.run(&state, lstm(kernels::lstm_cell)), &want)
    })
}
