//! What a module may use: [`Limits`] (memory, deadline, module size) and
//! the resource limiter that enforces the memory cap in each store.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// Limits applied to every instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cap on the module's linear memory, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock deadline of one call into the module.
    pub deadline: Duration,
    /// Largest module accepted for compilation, in bytes.
    pub module_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(1),
            module_bytes: 64 << 20,
        }
    }
}

/// Per-store state: the resource limiter. Growing memory past the cap traps
/// at once (rather than letting `memory.grow` return -1), and the trap is
/// reported as [`SandboxError::MemoryCap`].
pub(super) struct Host {
    pub(super) memory_cap: usize,
    pub(super) hit_cap: bool,
}

impl ResourceLimiter for Host {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.hit_cap = true;
            wasmtime::bail!("memory cap of {} bytes reached", self.memory_cap);
        }
        Ok(maximum.is_none_or(|m| desired <= m))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|m| desired <= m))
    }

    fn instances(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        1
    }
    fn memories(&self) -> usize {
        1
    }
}

/// Table elements a module may have (the kernel needs a few dozen).
const MAX_TABLE_ELEMENTS: usize = 10_000;

/// Bytes of a pooled table kept resident between instances (a page covers
/// the kernel's few dozen elements).
pub(super) const TABLE_KEEP_RESIDENT: usize = 4096;
