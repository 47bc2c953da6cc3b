//! [`SandboxError`]: why a module was refused or a prediction failed, and
//! how a wasmtime error becomes one (memory cap, deadline or trap).

use std::time::Duration;

use wasmtime::{Store, Trap};

use super::limits::Host;
use crate::module;

/// Why a module was refused or a prediction failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("module is {size} bytes, over the {cap}-byte cap")]
    TooLarge { size: usize, cap: usize },
    #[error(transparent)]
    Module(#[from] module::ModuleError),
    #[error("module does not compile: {0}")]
    Compile(String),
    #[error("module imports {0}; model modules must import nothing")]
    Imports(String),
    #[error("module lacks the export `{0}` required by kiln ABI v1")]
    MissingExport(&'static str),
    #[error("export `{name}` has the wrong type (expected {expected})")]
    ExportType {
        name: &'static str,
        expected: &'static str,
    },
    #[error("module implements kiln ABI version {found}; this kiln runs version 1")]
    AbiVersion { found: i32 },
    #[error("module has no valid embedded model (kiln_input_len returned {0})")]
    NoModel(i32),
    #[error("module embeds an invalid model: {0}")]
    BadModel(kiln_guest::DecodeError),
    #[error("module reports {module} {tensor} values per row but its metadata says {meta}")]
    MetaMismatch {
        tensor: &'static str,
        module: usize,
        meta: usize,
    },
    #[error("kiln.meta {tensor}: {message}")]
    BadMeta {
        tensor: &'static str,
        message: String,
    },
    #[error("a batch of {0} rows is more than the ABI's i32 can count")]
    TooManyRows(usize),
    #[error("input has {values} values, not a whole number of {row}-value rows")]
    InputLen { values: usize, row: usize },
    #[error("module could not provide an input buffer for {batch} rows (memory cap {cap} bytes)")]
    NoBuffer { batch: usize, cap: usize },
    #[error("kiln_run failed with code {0} (see docs/abi.md)")]
    RunCode(i32),
    #[error("module returned a buffer outside its memory")]
    BadPointer,
    #[error("prediction exceeded its {0:?} deadline")]
    Deadline(Duration),
    #[error("module trapped: {0}")]
    Trap(String),
    #[error("module trapped at its memory cap of {0} bytes")]
    MemoryCap(usize),
    #[error("every instance slot is busy (server.instances in kiln.toml); retry later")]
    PoolExhausted,
}

/// Names a failed call: the memory cap if the limiter refused growth, the
/// deadline on an epoch interrupt, else the trap.
pub(super) fn classify(
    e: wasmtime::Error,
    store: &Store<Host>,
    deadline: Duration,
) -> SandboxError {
    if store.data().hit_cap {
        return SandboxError::MemoryCap(store.data().memory_cap);
    }
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return SandboxError::PoolExhausted;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => SandboxError::Deadline(deadline),
        Some(trap) => SandboxError::Trap(trap.to_string()),
        None => SandboxError::Trap(format!("{e:#}")),
    }
}
