//! The int8 ops' checks.

use alloc::vec::Vec;

use super::{Failure, Run, cases, define};
use crate::kernels::geometry::{ConvGeom, PoolGeom, PoolKind};
use crate::kernels::{self, generic, packing};

/// The int8 dense kernel; with `seven_bit`, rows in 0..=127 — the relaxed
/// build's fast path — except row 1 of batches of 3 or more, which keeps
/// one negative value (that row must take the plain kernel).
pub(super) fn dense_i8(r: &Run, seven_bit: bool) -> Result<u64, Failure> {
    r.cases(cases::DENSE, |case, [batch, inputs, outputs], rng, d| {
        let (mut x, rows) = (rng.i8s(batch * inputs), rng.i8s(inputs * outputs));
        if seven_bit {
            for (i, row) in x.chunks_exact_mut(inputs).enumerate() {
                row.iter_mut().for_each(|v| *v &= 0x7f);
                if i == 1 && batch >= 3 {
                    row[inputs / 2] = -1;
                }
            }
        }
        let bias: Vec<i32> = (0..outputs)
            .map(|_| rng.range(-1 << 20, 1 << 20) as i32)
            .collect();
        let w = packed_dense(&rows, inputs, outputs);
        let acc = alloc::vec![0i32; batch * outputs];
        let want = define(&acc, |a| {
            generic::dense_i8(&x, &w, &bias, inputs, outputs, a)
        });
        let got = r.run(&acc, |a| {
            kernels::dense_i8(&x, &w, &bias, inputs, outputs, a)
        });
        d.same(case, &got, &want)
    })
}

pub(super) fn packed_dense(rows: &[i8], inputs: usize, outputs: usize) -> Vec<i8> {
    let len = packing::dense_i8::packed_len(inputs, outputs).unwrap_or(0);
    let mut w = alloc::vec![0i8; len];
    packing::dense_i8::pack(rows, inputs, outputs, &mut w);
    w
}

/// Ties, NaN, infinities, subnormals and values out of range.
pub(super) fn quantize(r: &Run) -> Result<u64, Failure> {
    r.cases(
        cases::QUANTIZE,
        |case, (n, inv_scale, zero_point), rng, d| {
            let mut x = rng.f32s(n);
            let specials = [
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                0.5,
                1.5,
                -2.5,
                1e30,
            ];
            for (v, s) in x.iter_mut().zip(specials) {
                *v = s / inv_scale;
            }
            let q = alloc::vec![0i8; n];
            let want = define(&q, |q| generic::quantize(&x, inv_scale, zero_point, q));
            d.same(
                case,
                &r.run(&q, |q| kernels::quantize_i8(&x, inv_scale, zero_point, q)),
                &want,
            )
        },
    )
}

pub(super) fn conv2d_i8(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CONV, |case, dims, rng, d| {
        let g = ConvGeom::new(dims);
        let c = packing::conv_i8::packed_len(&g).zip(packing::conv_i8::scratch_len(&g));
        let (Some(()), Some(inl), Some(outl), Some(fl), Some((wl, sl))) =
            (g.check(), g.input_len(), g.output_len(), g.weight_len(), c)
        else {
            return Err(Failure::Trivial { case });
        };
        let batch = 2;
        let (x, filters) = (rng.i8s(batch * inl), rng.i8s(fl));
        let mut w = alloc::vec![0i8; wl];
        packing::conv_i8::pack_filters(&filters, &g, &mut w);
        let bias: Vec<i32> = (0..g.out_c)
            .map(|_| rng.range(-1 << 24, 1 << 24) as i32)
            .collect();
        let zp = [-128i8, 0, 17, 127][case % 4];
        let acc = alloc::vec![0i32; batch * outl];
        let want = define(&acc, |a| {
            generic::conv2d_i8(&x, &w, &bias, &g, zp, &mut [], a)
        });
        if want.iter().all(|&a| a == 0) {
            return Err(Failure::Trivial { case });
        }
        let mut scratch = alloc::vec![0i32; sl];
        let got = r.run(&acc, |a| {
            kernels::conv2d_i8(&x, &w, &bias, &g, zp, &mut scratch, a)
        });
        d.same(case, &got, &want)
    })
}

/// Shifts 1..=62, multipliers up to 2³¹ − 1, extreme accumulators, the
/// ReLU clamp (`lo` = zero point); the table fails as trivial unless over
/// 1,000 outputs land strictly inside the clamp range.
pub(super) fn requantize_planes(r: &Run) -> Result<u64, Failure> {
    let mut inside = 0;
    let digest = r.cases(cases::REQUANTIZE, |case, (channels, plane, zp), rng, d| {
        let n = channels * plane * 2;
        let acc: Vec<i32> = (0..n)
            .map(|_| match rng.below(10) {
                0 => i32::MIN,
                1 => i32::MAX,
                2 => 0,
                3..6 => rng.range(-1 << 16, 1 << 16) as i32,
                _ => rng.next() as i32,
            })
            .collect();
        let m: Vec<i32> = (0..channels)
            .map(|i| match i % 3 {
                0 => i32::MAX,
                _ => rng.range(0, i32::MAX.into()) as i32,
            })
            .collect();
        // Moderate results for the ±2¹⁶ and the full-range accumulators
        // (m near 2³⁰) from shifts 38..44 and 52..58.
        let s: Vec<i32> = (0..channels)
            .map(|i| match i % 4 {
                0 => 1,
                1 => 62,
                2 => rng.range(38, 44) as i32,
                _ => rng.range(52, 58) as i32,
            })
            .collect();
        for lo in [-128, zp] {
            let y = alloc::vec![0x55i8; n];
            let want = define(&y, |y| {
                generic::requantize_planes(&acc, &m, &s, zp, lo, plane, y)
            });
            let got = r.run(&y, |y| {
                kernels::requantize_planes(&acc, &m, &s, zp, lo, plane, y)
            });
            d.same(case, &got, &want)?;
            inside += want
                .iter()
                .filter(|&&v| v != 127 && i32::from(v) != lo)
                .count();
        }
        Ok(())
    })?;
    if r.only.is_none() && inside <= 1000 {
        return Err(Failure::Trivial {
            case: cases::REQUANTIZE.len(),
        });
    }
    Ok(digest)
}

pub(super) fn pool_i8(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::POOL, |case, dims, rng, d| {
        let g = PoolGeom::new(dims);
        let Some(inl) = g.check().and(g.input_len()) else {
            return Err(Failure::Trivial { case });
        };
        let x: Vec<i8> = (0..2 * inl).map(|_| rng.next() as i8).collect();
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let y = alloc::vec![0i8; 2 * g.output_len()];
            let want = define(&y, |y| generic::pool_i8(kind, &x, &g, y));
            d.same(
                case,
                &r.run(&y, |y| kernels::pool_i8(kind, &x, &g, y)),
                &want,
            )?;
        }
        Ok(())
    })
}

/// The int8 product of recurrent layers: rows of both signs, a NaN, an
/// all-zero row, and an infinity (whose row leaves 0..=127 and takes the
/// plain kernel in the relaxed build).
pub(super) fn recurrent_product(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::DENSE, |case, [batch, inputs, outputs], rng, d| {
        let mut x = rng.f32s(batch * inputs);
        let specials = [f32::NAN, 0.0, f32::INFINITY];
        for (row, s) in x.chunks_exact_mut(inputs).zip(specials) {
            if s == 0.0 {
                row.fill(0.0);
            } else {
                row[inputs / 2] = s;
            }
        }
        let rows = rng.i8s(inputs * outputs);
        let w = packed_dense(&rows, inputs, outputs);
        let fold: Vec<i32> = rows
            .chunks_exact(inputs)
            .map(|r| -64 * r.iter().map(|&v| i32::from(v)).sum::<i32>())
            .collect();
        let scale: Vec<f32> = (0..outputs)
            .map(|_| rng.range(1, 4096) as f32 / 65536.0)
            .collect();
        let bias = rng.f32s(outputs);
        let m = generic::MatrixI8 {
            w: &w,
            scale: &scale,
            fold: &fold,
        };
        let (mut scales, mut q, mut acc) = (
            alloc::vec![0.0f32; batch],
            alloc::vec![0i8; batch * inputs],
            alloc::vec![0i32; batch * outputs],
        );
        let mut buf = generic::ProductBuffers {
            scales: &mut scales,
            q: &mut q,
            acc: &mut acc,
        };
        let y = alloc::vec![0.0f32; batch * outputs];
        let dims = [inputs, outputs];
        let want = define(&y, |y| generic::product_i8(m, &x, dims, &bias, y, &mut buf));
        let got = r.run(&y, |y| kernels::product_i8(m, &x, dims, &bias, y, &mut buf));
        d.same(case, &got, &want)
    })
}
