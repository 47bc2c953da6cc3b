//! `kiln-guest`: the prediction side of kiln.
//!
//! This crate is compiled three ways from the same source:
//!
//! * as an rlib linked into the `kiln` host, so `kiln predict --native`
//!   runs *the same* kernels natively,
//! * as a `wasm32-unknown-unknown` cdylib (feature `module`, built by
//!   `runtime/build.rs`) that becomes the prediction kernel inside every
//!   model module. `kiln build` embeds a model blob into that module, and
//! * as an rlib linked into the browser package (crate `kiln-browser` in
//!   `web/browser/`, built for wasm32 by `scripts/web.sh`), whose profile
//!   compiles this crate for speed and the JS glue for size.
//!
//! It is `no_std` + `alloc` so it stays small, and every decoder is total:
//! bad bytes give a [`DecodeError`], never a panic.
//!
//! * [`blob`] — the compact model blob embedded into modules (encode/decode).
//! * [`model`] — the layer graph and its validated execution.
//! * [`kernels`] — the generic kernel of every op and the architectures'
//!   overrides (wasm SIMD128, x86-64 SSE2).
//! * [`int8`] — quantized layers (int8 × int8 → i32, fixed-point requantize).
//! * [`math`] — the one `exp` every platform uses, so results are bit-exact.
//! * `graph` — the model file's graph schema and its conversion into a
//!   [`Model`] (feature `graph`, which links `std`; shared by the host and
//!   the browser package).
//! * `abi` — the raw ABI v1 exports (wasm32 + feature `module` only; the
//!   only `unsafe` outside the SIMD kernels and their test export).
#![cfg_attr(not(any(test, feature = "graph")), no_std)]

extern crate alloc;

pub mod blob;
mod error;
pub mod int8;
pub mod kernels;
pub mod math;
pub mod model;

#[cfg(all(target_arch = "wasm32", feature = "module"))]
mod abi;

#[cfg(feature = "graph")]
pub mod graph;

pub use error::{DecodeError, ModelError, RunError};
pub use kernels::{ConvGeom, PoolGeom, PoolKind};
pub use model::{Activation, Layer, Model, Scratch, Tensor};

/// The version of the compiled-module ABI this crate implements.
pub const ABI_VERSION: i32 = 1;
