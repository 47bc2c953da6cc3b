//! The wasmtime engine model modules run in: its configuration (pooling
//! allocator, SIMD, epoch interruption), the ticker thread that advances the
//! epoch, and compilation through the on-disk cache.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig,
};

use super::cache;
use super::error::SandboxError;
use super::limits::{Host, Limits, TABLE_KEEP_RESIDENT};

/// How often the epoch advances. At each tick a running instance compares
/// the wall clock with its deadline, so a deadline is overshot by at most
/// about one tick, even when a busy machine delays the ticker thread.
pub const TICK: Duration = Duration::from_millis(2);

/// How a server's engine is set up (see [`Sandbox::with_options`]).
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Instance slots of the pooling allocator (concurrent instances);
    /// `None` allocates on demand (what `kiln predict` uses).
    pub pool_slots: Option<u32>,
    /// Largest memory cap any module will get (sizes the pool's slots).
    pub max_memory_bytes: usize,
    /// Where compiled modules are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Bytes of each pool slot's linear memory that may stay mapped between
    /// instances (see [`Sandbox::with_options`]); `None` takes
    /// [`KEEP_RESIDENT`] where the host supports it, `Some(0)` turns it off.
    pub keep_resident: Option<usize>,
}

/// The default of [`EngineOptions::keep_resident`]: the pages a batch-1 or
/// batch-32 request of the benchmark models dirties (stack, statics, the
/// scratch buffers) fit, with room to spare.
pub const KEEP_RESIDENT: usize = 4 << 20;

/// A wasmtime engine configured for model modules, with its epoch ticker.
pub struct Sandbox {
    pub(super) engine: Engine,
    pub(super) linker: Linker<Host>,
    pub(super) limits: Limits,
    cache: Option<cache::Cache>,
    stop: Arc<AtomicBool>,
    pub(super) relaxed: bool,
}
impl Sandbox {
    /// A sandbox allocating instances on demand, with no compile cache:
    /// right for one-shot use such as `kiln predict`.
    pub fn new(limits: Limits) -> Result<Self, SandboxError> {
        Self::with_options(limits, EngineOptions::default())
    }

    /// A sandbox for a server: pooled instances and a compile cache, as
    /// `options` says. `limits` are the defaults for [`Sandbox::load`].
    ///
    /// A pool slot keeps the copy-on-write image of the module it last ran
    /// mapped, and wasmtime prefers giving an instance a slot that last held
    /// the same module. When the host kernel has the `PAGEMAP_SCAN` ioctl
    /// (Linux 6.7+), the slot is reset after each instance by copying back
    /// only the pages that instance wrote (up to
    /// [`EngineOptions::keep_resident`] bytes; the rest is discarded as
    /// before), so the pages it only read — the model's weights — stay
    /// mapped and the next instance reads them without a page fault. Either
    /// way every instance starts from the module's initial memory.
    pub fn with_options(limits: Limits, options: EngineOptions) -> Result<Self, SandboxError> {
        let mut config = Config::new();
        if let Some(slots) = options.pool_slots {
            let mut pool = PoolingAllocationConfig::default();
            pool.total_core_instances(slots)
                .total_memories(slots)
                .total_tables(slots)
                .max_memory_size(options.max_memory_bytes.max(limits.memory_bytes));
            let keep = options.keep_resident.unwrap_or(KEEP_RESIDENT);
            // Without PAGEMAP_SCAN, wasmtime would reset the lowest `keep`
            // bytes by copying whether or not they were written: slower for
            // a module whose weights lie there, so leave the default.
            if keep > 0 && PoolingAllocationConfig::is_pagemap_scan_available() {
                pool.pagemap_scan(Enabled::Yes)
                    .linear_memory_keep_resident(keep)
                    .table_keep_resident(keep.min(TABLE_KEEP_RESIDENT));
            }
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        config.epoch_interruption(true);
        config.wasm_simd(true);
        config.wasm_relaxed_simd(true);
        // Native lowerings (see the module note): kiln's kernel stays exact.
        config.relaxed_simd_deterministic(false);
        let engine = Engine::new(&config).map_err(|e| SandboxError::Compile(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("kiln-epoch".into())
            .spawn(move || {
                while !ticker.1.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticker.0.increment_epoch();
                }
            })
            .map_err(|e| SandboxError::Compile(e.to_string()))?;
        let cache = options.cache_dir.map(|dir| cache::Cache::new(dir, &engine));
        Ok(Sandbox {
            linker: Linker::new(&engine),
            engine,
            limits,
            cache,
            stop,
            relaxed: true,
        })
    }

    /// Whether [`Sandbox::load`] may run modules as their relaxed-SIMD twin
    /// (on by default). Off, every module runs exactly as given.
    pub fn with_relaxed_simd(mut self, on: bool) -> Self {
        self.relaxed = on;
        self
    }

    /// The default limits of [`Sandbox::load`].
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles `wasm`, through the on-disk cache if there is one; the flag
    /// says whether the code came from the cache.
    pub(super) fn compile(&self, wasm: &[u8]) -> Result<(Module, bool), SandboxError> {
        match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, wasm),
            None => Ok((
                Module::new(&self.engine, wasm)
                    .map_err(|e| SandboxError::Compile(format!("{e:#}")))?,
                false,
            )),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
