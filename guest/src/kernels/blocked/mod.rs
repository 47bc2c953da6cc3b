//! The blocked SIMD kernels, written once over the vector traits of
//! [`lanes`] and instantiated by each architecture folder on its own
//! vector type: the f32 dense layer ([`dense`]), the f32 convolution
//! ([`conv`]) and the int8 convolution ([`conv_i8`]).
//!
//! Each performs, per output, its generic definition's operations in the
//! same order — only several outputs at a time — so an instantiation gives
//! the definition's bits.

pub(crate) mod conv;
pub(crate) mod conv_i8;
pub(crate) mod dense;
pub(crate) mod lanes;

/// Starts of `n`-wide blocks covering `0..len` (`len ≥ n`), the last one
/// moved back to end at `len`, overlapping its neighbour: the SIMD kernels
/// recompute a few outputs (same bits) rather than finish in narrower code.
#[inline(always)]
pub(crate) fn blocks(len: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..len.div_ceil(n)).map(move |i| (i * n).min(len - n))
}
