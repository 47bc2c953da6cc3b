//! Every kernel the model runs against its generic definition, over the
//! shared case table ([`cases`]).
//!
//! For each op and case, a seeded generator (the same values on every
//! platform) makes the inputs, with awkward values mixed in — signed zeros,
//! subnormals, NaN and infinities where the op defines them, −128 and 127;
//! the target's kernel and the generic definition run on them, and their
//! outputs must agree bit for bit. A digest of the outputs comes back with
//! the verdict. This crate's tests run the check natively (the x86-64
//! overrides); the `kernel-tests` module exports it as `kiln_test_check`,
//! and the host runs it inside wasmtime in both kernel builds and compares
//! the digests with its own, so the wasm kernels also give the native bits
//! (`tests/e2e/kernels.rs`).

pub mod cases;

use alloc::vec::Vec;

use super::generic;
use super::geometry::{ConvGeom, PoolGeom, PoolKind};
use super::packing;
use crate::math;

/// Why an op's check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// In case `case`, output `index` differs from the definition's.
    Mismatch { case: usize, index: usize },
    /// The generated data left what the case is for untested (say, every
    /// accumulator zero); `case` is the table's length when the whole table
    /// is at fault.
    Trivial { case: usize },
    /// No op or case with that number.
    Unknown,
}

/// One op's check: its name, and the function that runs its cases.
pub type Op = (&'static str, fn(&Run) -> Result<u64, Failure>);

/// Every op, numbered by position (`kiln_test_check`'s `op`).
pub const OPS: &[Op] = &[
    ("dense", dense),
    ("relu", relu),
    ("standardize", standardize),
    ("math", math_ops),
    ("conv2d", conv2d),
    ("pool", pool),
    ("leaky_relu", leaky_relu),
    ("scale_shift", scale_shift),
    ("prelu", prelu),
    ("global_avg_pool", global_avg_pool),
    ("group_softmax", group_softmax),
    ("dense_i8", |r| dense_i8(r, false)),
    ("dense_i8 7-bit rows", |r| dense_i8(r, true)),
    ("quantize", quantize),
    ("conv2d_i8", conv2d_i8),
    ("requantize_planes", requantize_planes),
    ("pool_i8", pool_i8),
];

/// Runs op `op` on every case (`case` `None`) or on one, and returns the
/// digest of the definition's outputs. After each case's comparison the
/// target's kernel runs `reps` more times on the same inputs, into a
/// scratch buffer: a benchmark times calls with and without them.
pub fn check(op: usize, case: Option<usize>, reps: usize) -> Result<u64, Failure> {
    let (_, f) = OPS.get(op).ok_or(Failure::Unknown)?;
    f(&Run {
        op,
        only: case,
        reps,
    })
}

/// `check`'s result as one `i64`, for the wasm export: a digest as itself
/// with the top bit cleared, a failure as a negative number ([`decode`]).
pub fn encode(r: Result<u64, Failure>) -> i64 {
    match r {
        Ok(digest) => (digest >> 1) as i64,
        Err(Failure::Mismatch { case, index }) => -1 - ((case as i64) << 32 | index as i64),
        Err(Failure::Trivial { case }) => i64::MIN + 1 + case as i64,
        Err(Failure::Unknown) => i64::MIN,
    }
}

/// The inverse of [`encode`] (the digest without its lowest bit).
pub fn decode(v: i64) -> Result<u64, Failure> {
    match v {
        0.. => Ok((v as u64) << 1),
        i64::MIN => Err(Failure::Unknown),
        _ if v < i64::MIN / 2 => Err(Failure::Trivial {
            case: (v - i64::MIN - 1) as usize,
        }),
        _ => {
            let m = -1 - v;
            Err(Failure::Mismatch {
                case: (m >> 32) as usize,
                index: (m & 0xffff_ffff) as usize,
            })
        }
    }
}

/// How a check runs: which cases, and how often to repeat the kernel.
pub struct Run {
    op: usize,
    only: Option<usize>,
    reps: usize,
}

impl Run {
    /// Calls `f(case index, case, generator, digest)` for the selected
    /// cases of `table`; the digest of everything they compared.
    fn cases<C: Copy>(
        &self,
        table: &[C],
        mut f: impl FnMut(usize, C, &mut Rng, &mut Digest) -> Result<(), Failure>,
    ) -> Result<u64, Failure> {
        if self.only.is_some_and(|c| c >= table.len()) {
            return Err(Failure::Unknown);
        }
        let mut digest = Digest(0xcbf2_9ce4_8422_2325);
        for (i, &c) in table.iter().enumerate() {
            if self.only.is_none_or(|only| only == i) {
                f(i, c, &mut Rng::new(self.op, i), &mut digest)?;
            }
        }
        Ok(digest.0)
    }

    /// `init` changed by `kernel`; then `reps` more runs on a copy.
    fn run<T: Copy>(&self, init: &[T], mut kernel: impl FnMut(&mut [T])) -> Vec<T> {
        let mut out = init.to_vec();
        kernel(&mut out);
        if self.reps > 0 {
            let mut scratch = init.to_vec();
            for _ in 0..self.reps {
                kernel(&mut scratch);
            }
        }
        out
    }
}

/// `init` changed by `kernel` (the definition: run once).
fn define<T: Copy>(init: &[T], kernel: impl FnOnce(&mut [T])) -> Vec<T> {
    let mut out = init.to_vec();
    kernel(&mut out);
    out
}

/// An output value's bits.
trait Bits: Copy {
    fn bits(self) -> u32;
}

impl Bits for f32 {
    fn bits(self) -> u32 {
        self.to_bits()
    }
}

impl Bits for i32 {
    fn bits(self) -> u32 {
        self as u32
    }
}

impl Bits for i8 {
    fn bits(self) -> u32 {
        self as u8 as u32
    }
}

/// FNV-1a over the bits of every output compared.
struct Digest(u64);

impl Digest {
    /// `Ok` when `got` and `want` hold the same bits (digesting `want`).
    fn same<T: Bits>(&mut self, case: usize, got: &[T], want: &[T]) -> Result<(), Failure> {
        if got.len() != want.len() {
            return Err(Failure::Mismatch {
                case,
                index: got.len().min(want.len()),
            });
        }
        for (index, (g, w)) in got.iter().zip(want).enumerate() {
            if g.bits() != w.bits() {
                return Err(Failure::Mismatch { case, index });
            }
            for byte in w.bits().to_le_bytes() {
                self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        Ok(())
    }
}

/// xorshift64: the same sequence on every platform (all in `u64`).
struct Rng(u64);

impl Rng {
    /// The generator of op `op`'s case `case`.
    fn new(op: usize, case: usize) -> Self {
        let seed = (op as u64) << 32 | case as u64;
        Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_add(1).wrapping_mul(0x2545_f491_4f6c_dd1d))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }

    /// Values spanning magnitudes, with zeros, negative zeros and
    /// subnormals mixed in.
    fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| match self.below(20) {
                0 => 0.0,
                1 => -0.0,
                2 => f32::from_bits(1 + self.below(0x007f_fffe) as u32),
                3 => self.uniform(-1e4, 1e4),
                _ => self.uniform(-2.0, 2.0),
            })
            .collect()
    }

    /// Bytes with the extremes −128 and 127 frequent (an eighth each).
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n)
            .map(|_| match self.below(8) {
                0 => -128,
                1 => 127,
                _ => self.next() as i8,
            })
            .collect()
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }
}

fn dense(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::DENSE, |case, [batch, inputs, outputs], rng, d| {
        let mut x = rng.f32s(batch * inputs);
        x[0] = -0.0;
        let (w, b) = (rng.f32s(inputs * outputs), rng.f32s(outputs));
        let y = alloc::vec![0.0; batch * outputs];
        let want = define(&y, |y| generic::dense(&x, &w, &b, inputs, outputs, y));
        let got = r.run(&y, |y| super::dense(&x, &w, &b, inputs, outputs, y));
        d.same(case, &got, &want)
    })
}

fn relu(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::WIDTHS, |case, n, rng, d| {
        let mut x = rng.f32s(n);
        x[0] = f32::NAN;
        d.same(case, &r.run(&x, super::relu), &define(&x, generic::relu))
    })
}

fn standardize(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::WIDTHS, |case, n, rng, d| {
        let (x, mean, inv) = (rng.f32s(3 * n), rng.f32s(n), rng.f32s(n));
        let want = define(&x, |x| generic::standardize(x, &mean, &inv));
        d.same(
            case,
            &r.run(&x, |x| super::standardize(x, &mean, &inv)),
            &want,
        )
    })
}

/// `exp`, sigmoid, tanh and softmax over −100..100 in steps of 0.01, and
/// `ln` over the positive floats from subnormals to the maximum: no
/// override yet, so what this checks is their bits in wasm against the
/// native ones (the digest).
fn math_ops(r: &Run) -> Result<u64, Failure> {
    let exp = |x: &mut [f32]| x.iter_mut().for_each(|v| *v = math::exp(*v));
    let ln = |x: &mut [f32]| x.iter_mut().for_each(|v| *v = math::ln(*v));
    type InPlace = fn(&mut [f32]);
    let ops: [(InPlace, InPlace); 5] = [
        (exp, exp),
        (super::sigmoid, generic::sigmoid),
        (super::tanh, generic::tanh),
        (|x| super::softmax(x, 10), |x| generic::softmax(x, 10)),
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

fn conv2d(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CONV, |case, dims, rng, d| {
        let g = ConvGeom::new(dims);
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
            &r.run(&y, |y| super::conv2d(&x, &w, &b, &g, y)),
            &want,
        )
    })
}

fn pool(r: &Run) -> Result<u64, Failure> {
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
            d.same(case, &r.run(&y, |y| super::pool(kind, &x, &g, y)), &want)?;
        }
        Ok(())
    })
}

fn leaky_relu(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::WIDTHS, |case, n, rng, d| {
        let mut x = rng.f32s(n);
        x[0] = f32::NAN;
        let want = define(&x, |x| generic::leaky_relu(x, 0.01));
        d.same(case, &r.run(&x, |x| super::leaky_relu(x, 0.01)), &want)
    })
}

fn scale_shift(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CHANNELS, |case, [batch, channels, inner], rng, d| {
        let x = rng.f32s(batch * channels * inner);
        let (s, t) = (rng.f32s(channels), rng.f32s(channels));
        let want = define(&x, |x| generic::scale_shift(x, &s, &t, inner));
        d.same(
            case,
            &r.run(&x, |x| super::scale_shift(x, &s, &t, inner)),
            &want,
        )
    })
}

fn prelu(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CHANNELS, |case, [batch, channels, inner], rng, d| {
        let (x, slope) = (rng.f32s(batch * channels * inner), rng.f32s(channels));
        let want = define(&x, |x| generic::prelu(x, &slope, inner));
        d.same(case, &r.run(&x, |x| super::prelu(x, &slope, inner)), &want)
    })
}

fn global_avg_pool(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CHANNELS, |case, [batch, channels, inner], rng, d| {
        let x = rng.f32s(batch * channels * inner);
        let y = alloc::vec![0.0; batch * channels];
        let want = define(&y, |y| generic::global_avg_pool(&x, channels, inner, y));
        let got = r.run(&y, |y| super::global_avg_pool(&x, channels, inner, y));
        d.same(case, &got, &want)
    })
}

fn group_softmax(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::GROUPS, |case, (group, log), _, d| {
        let x: Vec<f32> = (0..6000).map(|i| -30.0 + i as f32 * 0.01).collect();
        let want = define(&x, |x| generic::group_softmax(x, group, log));
        d.same(
            case,
            &r.run(&x, |x| super::group_softmax(x, group, log)),
            &want,
        )
    })
}

/// The int8 dense kernel; with `seven_bit`, rows in 0..=127 — the relaxed
/// build's fast path — except row 1 of batches of 3 or more, which keeps
/// one negative value (that row must take the plain kernel).
fn dense_i8(r: &Run, seven_bit: bool) -> Result<u64, Failure> {
    r.cases(cases::DENSE_I8, |case, [batch, inputs, outputs], rng, d| {
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
        let got = r.run(&acc, |a| super::dense_i8(&x, &w, &bias, inputs, outputs, a));
        d.same(case, &got, &want)
    })
}

fn packed_dense(rows: &[i8], inputs: usize, outputs: usize) -> Vec<i8> {
    let len = packing::dense_i8::packed_len(inputs, outputs).unwrap_or(0);
    let mut w = alloc::vec![0i8; len];
    packing::dense_i8::pack(rows, inputs, outputs, &mut w);
    w
}

/// Ties, NaN, infinities, subnormals and values out of range.
fn quantize(r: &Run) -> Result<u64, Failure> {
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
                &r.run(&q, |q| super::quantize_i8(&x, inv_scale, zero_point, q)),
                &want,
            )
        },
    )
}

fn conv2d_i8(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::CONV_I8, |case, dims, rng, d| {
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
            super::conv2d_i8(&x, &w, &bias, &g, zp, &mut scratch, a)
        });
        d.same(case, &got, &want)
    })
}

/// Shifts 1..=62, multipliers up to 2³¹ − 1, extreme accumulators, the
/// ReLU clamp (`lo` = zero point); the table fails as trivial unless over
/// 1,000 outputs land strictly inside the clamp range.
fn requantize_planes(r: &Run) -> Result<u64, Failure> {
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
                super::requantize_planes(&acc, &m, &s, zp, lo, plane, y)
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

fn pool_i8(r: &Run) -> Result<u64, Failure> {
    r.cases(cases::POOL_I8, |case, dims, rng, d| {
        let g = PoolGeom::new(dims);
        let Some(inl) = g.check().and(g.input_len()) else {
            return Err(Failure::Trivial { case });
        };
        let x: Vec<i8> = (0..2 * inl).map(|_| rng.next() as i8).collect();
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let y = alloc::vec![0i8; 2 * g.output_len()];
            let want = define(&y, |y| generic::pool_i8(kind, &x, &g, y));
            d.same(case, &r.run(&y, |y| super::pool_i8(kind, &x, &g, y)), &want)?;
        }
        Ok(())
    })
}

/// The export the host's tests and benchmarks call inside wasmtime.
#[cfg(all(target_arch = "wasm32", feature = "kernel-tests"))]
mod export {
    /// [`super::check`] of op `op` on case `case` (every case if negative),
    /// encoded by [`super::encode`].
    #[unsafe(no_mangle)]
    #[allow(unreachable_pub, reason = "reached through the wasm export table")]
    pub extern "C" fn kiln_test_check(op: i32, case: i32, reps: i32) -> i64 {
        let (Ok(op), Ok(reps)) = (usize::try_from(op), usize::try_from(reps)) else {
            return super::encode(Err(super::Failure::Unknown));
        };
        super::encode(super::check(op, usize::try_from(case).ok(), reps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The target's kernels (natively: the x86-64 overrides) against the
    /// definitions.
    #[test]
    fn every_op_matches_its_definition() {
        for (op, (name, _)) in OPS.iter().enumerate() {
            assert!(
                check(op, None, 0).is_ok(),
                "{name}: {:?}",
                check(op, None, 0)
            );
        }
    }

    #[test]
    fn one_case_and_repeats() {
        let all = check(0, None, 0).unwrap();
        let one = check(0, Some(1), 3).unwrap();
        assert_ne!(all, one);
        assert_eq!(check(0, Some(1), 0), Ok(one));
        assert_eq!(check(0, Some(cases::DENSE.len()), 0), Err(Failure::Unknown));
        assert_eq!(check(OPS.len(), None, 0), Err(Failure::Unknown));
    }

    #[test]
    fn results_survive_the_encoding() {
        for r in [
            Ok(0),
            Ok(u64::MAX - 1),
            Err(Failure::Mismatch { case: 0, index: 0 }),
            Err(Failure::Mismatch {
                case: 40,
                index: 1 << 31,
            }),
            Err(Failure::Trivial { case: 0 }),
            Err(Failure::Trivial { case: 17 }),
            Err(Failure::Unknown),
        ] {
            assert_eq!(decode(encode(r)), r);
        }
    }

    /// The generic int8 dense kernel on packed weights is the plain sum
    /// over the unpacked rows.
    #[test]
    fn generic_dense_i8_is_the_plain_sum() {
        for (case, &[batch, inputs, outputs]) in cases::DENSE_I8.iter().enumerate() {
            let mut rng = Rng::new(usize::MAX, case);
            let (x, rows) = (rng.i8s(batch * inputs), rng.i8s(inputs * outputs));
            let bias: Vec<i32> = (0..outputs).map(|o| o as i32 * 1001 - 5000).collect();
            let mut acc = alloc::vec![0i32; batch * outputs];
            let w = packed_dense(&rows, inputs, outputs);
            generic::dense_i8(&x, &w, &bias, inputs, outputs, &mut acc);
            for r in 0..batch {
                for o in 0..outputs {
                    let sum: i32 = (0..inputs)
                        .map(|i| i32::from(x[r * inputs + i]) * i32::from(rows[o * inputs + i]))
                        .sum();
                    assert_eq!(acc[r * outputs + o], sum + bias[o], "{case}: {r},{o}");
                }
            }
        }
    }
}
