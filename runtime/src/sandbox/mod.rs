//! Running untrusted model modules in wasmtime.
//!
//! A model module is untrusted code. The [`Sandbox`] gives it nothing: no
//! imports (a module that asks for any is refused before instantiation), a
//! memory cap (a resource limiter per store), a deadline (epoch interruption,
//! ticked by a background thread every [`TICK`]) and a fresh instance per
//! call, so nothing survives from one prediction to the next.
//!
//! [`Sandbox::load`] checks the ABI v1 contract (`docs/abi.md`) once;
//! [`Sandbox::predict`] then runs batches.
//!
//! A server builds its sandbox with [`Sandbox::with_options`]: instances then
//! come from wasmtime's pooling allocator with copy-on-write memory images
//! (an [`InstancePre`] per module), so a fresh instance per request costs
//! microseconds, and compiled code is cached on disk ([`cache`]) so a restart
//! does not recompile. Each module may carry its own [`Limits`]
//! ([`Sandbox::load_with`]). Where Linux has `PAGEMAP_SCAN`, a slot is reset
//! by restoring only the pages an instance wrote, so the weights it only
//! read stay mapped for the next instance ([`EngineOptions::keep_resident`];
//! `docs/benchmarks.md`, "Serving: fresh instance per request").
//!
//! Relaxed SIMD: the engine enables it, and [`Sandbox::load`] runs a module
//! built by this kiln as its relaxed-SIMD twin ([`module::relaxed_twin`]),
//! falling back to the module as given if the twin does not compile or the
//! sandbox was told not to ([`Sandbox::with_relaxed_simd`]). The engine uses
//! the host's native lowering of relaxed instructions (`pmaddubsw` on x86)
//! rather than wasmtime's "deterministic" emulation, which is several times
//! slower: kiln's kernel uses its one relaxed instruction only on operands
//! where every lowering gives the same exact result (`docs/abi.md`,
//! "Relaxed SIMD"). A third-party module using relaxed instructions on other
//! operands may see host-dependent results — in its own output only.

mod cache;
mod engine;
mod error;
mod exports;
mod instance;
mod limits;
mod load;
mod loaded;

#[cfg(test)]
mod tests;

pub use engine::{EngineOptions, KEEP_RESIDENT, Sandbox, TICK};
pub use error::SandboxError;
pub use instance::Prediction;
pub use limits::Limits;
pub use loaded::LoadedModule;
