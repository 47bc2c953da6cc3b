//! Prediction kernels: one scalar reference per op, SIMD128 overrides on top.
//!
//! [`reference`] defines each op's exact arithmetic — including the order in
//! which sums accumulate — and runs everywhere. [`simd128`] replaces the ops
//! where vectors pay, inside wasm modules built with `+simd128`; each override
//! performs the *same* IEEE operations in the same order per output, so it is
//! bit-identical to the reference (tested in wasmtime by the host's
//! `kernel_tests`). The functions re-exported here are what the model runs.
//! [`channel`] holds the per-channel and per-group ops (leaky ReLU, scale and
//! shift, grouped softmax, global average pooling), with `channel_simd128`
//! as their overrides.
//!
//! [`int8`] is the reference of the integer path (quantized models), with its
//! SIMD128 overrides in `simd128_int8` and, for the host, an x86-64 SSE2
//! override of its dense kernel in `sse2_int8`. The second kernel build
//! (cargo feature `relaxed-simd`) replaces the dense kernel once more with
//! `relaxed_int8`, which uses relaxed SIMD's 8-bit dot product only on rows
//! where it is exact. [`conv_int8`] defines int8 convolution and pooling;
//! the convolution has one blocked kernel, `conv_int8_lanes`, instantiated
//! for wasm (`conv_int8_simd128`, plain SIMD128 in both builds) and for the
//! host's SSE2 (`conv_int8_sse2`).
//!
//! 2-D convolution ([`conv`]) and the dense layer each have one blocked
//! SIMD kernel, `conv_lanes` and `dense_lanes`, written over a 4-lane vector
//! (`lanes`) and instantiated for wasm (`conv_simd128`, [`simd128`]) and
//! for the host's SSE2 (`sse2`).
//!
//! f32 dense weights are stored in column [`panels`], the layout every dense
//! kernel reads.
//!
//! The accumulation order is the contract that makes results bit-exact
//! across platforms; see `docs/abi.md` ("Arithmetic").

pub mod channel;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod channel_simd128;
pub mod conv;
pub mod conv_int8;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod conv_int8_lanes;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod conv_int8_simd128;
#[cfg(target_arch = "x86_64")]
pub mod conv_int8_sse2;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod conv_lanes;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod conv_simd128;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod dense_lanes;
pub mod int8;
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod lanes;
pub mod panels;
pub mod reference;
#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    feature = "relaxed-simd"
))]
pub mod relaxed_int8;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod simd128;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod simd128_int8;

#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    feature = "relaxed-simd"
))]
pub use relaxed_int8::dense_i8;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd128::{dense, relu, standardize};
#[cfg(all(
    target_arch = "wasm32",
    target_feature = "simd128",
    not(feature = "relaxed-simd")
))]
pub use simd128_int8::dense_i8;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use simd128_int8::quantize as quantize_i8;

#[cfg(target_arch = "x86_64")]
pub mod sse2;
#[cfg(target_arch = "x86_64")]
pub mod sse2_int8;

#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
pub use int8::dense_i8;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub use int8::quantize as quantize_i8;
#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
pub use reference::dense;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub use reference::{relu, standardize};
#[cfg(target_arch = "x86_64")]
pub use sse2::dense;
#[cfg(target_arch = "x86_64")]
pub use sse2_int8::dense_i8;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use channel_simd128::{leaky_relu, prelu, scale_shift};

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub use channel::{leaky_relu, prelu, scale_shift};

pub use channel::{global_avg_pool, group_softmax};
pub use reference::{sigmoid, softmax, tanh};

#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
pub use conv::conv2d;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub use conv::pool;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use conv_simd128::{conv2d, pool};
#[cfg(target_arch = "x86_64")]
pub use sse2::conv2d;

#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
pub use conv_int8::conv2d_i8;
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub use conv_int8::{pool_i8, requantize_planes};
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub use conv_int8_simd128::{conv2d_i8, pool_i8, requantize_planes};
#[cfg(target_arch = "x86_64")]
pub use conv_int8_sse2::conv2d_i8;

/// Starts of `n`-wide blocks covering `0..len` (`len ≥ n`), the last one
/// moved back to end at `len`, overlapping its neighbour: the SIMD kernels
/// recompute a few outputs (same bits) rather than finish in narrower code.
#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
#[inline(always)]
pub(crate) fn blocks(len: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..len.div_ceil(n)).map(move |i| (i * n).min(len - n))
}
