//! `kiln`: the host side of kiln, a WebAssembly edge inference runtime.
//!
//! Models are trained here ([`train`]), stored as safetensors model files
//! ([`model`]), compiled with the guest kernel into one self-contained,
//! import-free `.wasm` ([`module`]) and run in a wasmtime sandbox
//! ([`sandbox`]) — or natively with the very same kernel ([`kiln_guest`]).
//! [`serve`] puts many modules behind the KServe v2 protocol, with the
//! models held by [`registry`]. [`bench`] measures predictions (`kiln bench`);
//! [`trust`] signs, verifies and seals modules.
//! See `docs/architecture.md` for the map.

pub mod bench;
pub mod data;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
pub mod model;
pub mod module;
pub mod registry;
pub mod sandbox;
pub mod serve;
pub mod shrink;
pub mod train;
pub mod trust;

pub use kiln_guest;
