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
//! * [`Model`] — a validated graph of [`Layer`]s, f32 and int8 alike, and
//!   its execution ([`Scratch`]); private module `model`.
//! * [`family`] — the layer families a build may leave out, each a cargo
//!   feature (`conv`: [`ConvLayer`]; `int8-conv`; `rnn`:
//!   [`RecurrentLayer`]; `int8-rnn`: [`RecurrentI8`]); a model module's kernel
//!   holds only those its model uses, and refuses the others by name.
//! * [`blob`] — the compact model blob embedded into modules: the one codec
//!   of a [`Model`].
//! * [`kernels`] — scalar reference kernels and their SIMD128 overrides.
//! * [`math`] — the one `exp` every platform uses, so results are bit-exact.
//! * `graph` — the model file's graph schema, its conversion into a
//!   [`Model`], and a module's `kiln.meta` (feature `graph`, which links
//!   `std`; shared by the host and the browser package).
//! * `abi` — the raw ABI v1 exports (wasm32 + feature `module` only; the
//!   only `unsafe` outside the SIMD kernels and their test export).
#![cfg_attr(not(any(test, feature = "graph")), no_std)]

extern crate alloc;

pub mod blob;
mod error;
pub mod kernels;
pub mod math;
mod model;

#[cfg(all(target_arch = "wasm32", feature = "module"))]
mod abi;

#[cfg(feature = "graph")]
pub mod graph;

pub use error::{DecodeError, ModelError, RunError};
pub use kernels::{ConvGeom, PoolGeom, PoolKind};
#[cfg(feature = "dag")]
pub use model::Node;
pub use model::{Activation, ConvLayer, Layer, MAX_WIDTH, Model, Scratch, Tensor, family};
pub use model::{Cell, RecurrentGeom, RecurrentI8, RecurrentLayer, RecurrentWeights};
pub use model::{ConvI8, DenseI8, Domain, Int8Layer, Int8Output, PoolI8};
pub use model::{TreeLayer, trees};

/// The version of the compiled-module ABI this crate implements.
pub const ABI_VERSION: i32 = 1;
