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
mod f32;
mod int8;

use alloc::vec::Vec;

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
    ("dense", f32::dense),
    ("relu", f32::relu),
    ("standardize", f32::standardize),
    ("math", f32::math),
    ("conv2d", f32::conv2d),
    ("pool", f32::pool),
    ("leaky_relu", f32::leaky_relu),
    ("scale_shift", f32::scale_shift),
    ("prelu", f32::prelu),
    ("global_avg_pool", f32::global_avg_pool),
    ("group_softmax", f32::group_softmax),
    ("add, gate, concat", f32::join),
    ("dense_i8", |r| int8::dense_i8(r, false)),
    ("dense_i8 7-bit rows", |r| int8::dense_i8(r, true)),
    ("quantize", int8::quantize),
    ("conv2d_i8", int8::conv2d_i8),
    ("requantize_planes", int8::requantize_planes),
    ("pool_i8", int8::pool_i8),
    ("conv2d groups, dilation, pads", f32::conv2d_full),
    ("clip, hard_sigmoid, hard_swish", f32::clamps),
    ("rnn, gru, lstm cells", f32::recurrent),
    ("recurrent int8 product", int8::recurrent_product),
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
    pub(super) fn cases<C: Copy>(
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
    pub(super) fn run<T: Copy>(&self, init: &[T], mut kernel: impl FnMut(&mut [T])) -> Vec<T> {
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
pub(super) fn define<T: Copy>(init: &[T], kernel: impl FnOnce(&mut [T])) -> Vec<T> {
    let mut out = init.to_vec();
    kernel(&mut out);
    out
}

/// An output value's bits.
pub(super) trait Bits: Copy {
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
pub(super) struct Digest(u64);

impl Digest {
    /// `Ok` when `got` and `want` hold the same bits (digesting `want`).
    pub(super) fn same<T: Bits>(
        &mut self,
        case: usize,
        got: &[T],
        want: &[T],
    ) -> Result<(), Failure> {
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
pub(super) struct Rng(u64);

impl Rng {
    /// The generator of op `op`'s case `case`.
    fn new(op: usize, case: usize) -> Self {
        let seed = (op as u64) << 32 | case as u64;
        Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_add(1).wrapping_mul(0x2545_f491_4f6c_dd1d))
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n`.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }

    /// Values spanning magnitudes, with zeros, negative zeros and
    /// subnormals mixed in.
    pub(super) fn f32s(&mut self, n: usize) -> Vec<f32> {
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
    pub(super) fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n)
            .map(|_| match self.below(8) {
                0 => -128,
                1 => 127,
                _ => self.next() as i8,
            })
            .collect()
    }

    /// Uniform in `lo..hi`.
    pub(super) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }
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
    use crate::kernels::generic;

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
        for (case, &[batch, inputs, outputs]) in cases::DENSE.iter().enumerate() {
            let mut rng = Rng::new(usize::MAX, case);
            let (x, rows) = (rng.i8s(batch * inputs), rng.i8s(inputs * outputs));
            let bias: Vec<i32> = (0..outputs).map(|o| o as i32 * 1001 - 5000).collect();
            let mut acc = alloc::vec![0i32; batch * outputs];
            let w = int8::packed_dense(&rows, inputs, outputs);
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
