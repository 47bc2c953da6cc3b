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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::path::PathBuf;
use std::time::Instant;

use wasmtime::{
    Config, Enabled, Engine, Instance, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, TypedFunc, UpdateDeadline, ValType,
};

use crate::module::{self, ModuleMeta};

/// How often the epoch advances. At each tick a running instance compares
/// the wall clock with its deadline, so a deadline is overshot by at most
/// about one tick, even when a busy machine delays the ticker thread.
pub const TICK: Duration = Duration::from_millis(2);

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
    #[error("module reports {module} input values per row but its metadata says {meta}")]
    MetaMismatch { module: usize, meta: usize },
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
}

/// One prediction and what it cost.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// `batch * output_len` scores, row-major.
    pub scores: Vec<f32>,
    /// Time to create the fresh instance.
    pub instantiate: Duration,
    /// Time in the module (input copy, `kiln_run`, output copy).
    pub compute: Duration,
    /// Size of the instance's linear memory when the call ended.
    pub memory_bytes: usize,
}

/// Per-store state: the resource limiter. Growing memory past the cap traps
/// at once (rather than letting `memory.grow` return -1), and the trap is
/// reported as [`SandboxError::MemoryCap`].
struct Host {
    memory_cap: usize,
    hit_cap: bool,
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
const TABLE_KEEP_RESIDENT: usize = 4096;

/// A wasmtime engine configured for model modules, with its epoch ticker.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<Host>,
    limits: Limits,
    cache: Option<cache::Cache>,
    stop: Arc<AtomicBool>,
    relaxed: bool,
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

    /// Compiles `wasm` and checks it against ABI v1: no imports, the six
    /// exports with their types, version 1, a valid embedded model.
    pub fn load(&self, wasm: &[u8]) -> Result<LoadedModule, SandboxError> {
        self.load_with(wasm, self.limits)
    }

    /// [`Sandbox::load`] with this module's own limits. The module size cap
    /// is checked before anything parses or compiles the bytes.
    pub fn load_with(&self, wasm: &[u8], limits: Limits) -> Result<LoadedModule, SandboxError> {
        if wasm.len() > limits.module_bytes {
            return Err(SandboxError::TooLarge {
                size: wasm.len(),
                cap: limits.module_bytes,
            });
        }
        // The module's own decode checks only the model's structure
        // (docs/abi.md): the full check, weights scanned for NaN and
        // infinity, runs here once.
        if let Some(blob) = module::embedded_blob(wasm)? {
            kiln_guest::blob::decode(blob).map_err(SandboxError::BadModel)?;
        }
        let meta = module::read_meta(wasm)?;
        let twin = if self.relaxed {
            module::relaxed_twin(wasm)?
        } else {
            None
        };
        let compiled = twin.as_deref().map(|twin| self.compile(twin));
        let (relaxed_simd, (module, from_cache)) = match compiled {
            Some(Ok(compiled)) => (true, compiled),
            _ => (false, self.compile(wasm)?),
        };
        let imports: Vec<String> = module
            .imports()
            .map(|i| format!("`{}::{}`", i.module(), i.name()))
            .collect();
        if !imports.is_empty() {
            return Err(SandboxError::Imports(imports.join(", ")));
        }
        check_exports(&module)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| SandboxError::Compile(e.to_string()))?;
        let mut loaded = LoadedModule {
            pre,
            meta,
            limits,
            from_cache,
            relaxed_simd,
            input_len: 0,
            output_len: 0,
        };
        let mut run = self.instance(&loaded)?;
        let version = run.call0("kiln_abi_version")?;
        if version != kiln_guest::ABI_VERSION {
            return Err(SandboxError::AbiVersion { found: version });
        }
        let (input_len, output_len) = (run.call0("kiln_input_len")?, run.call0("kiln_output_len")?);
        if input_len <= 0 || output_len <= 0 {
            return Err(SandboxError::NoModel(input_len.min(output_len)));
        }
        loaded.input_len = input_len as usize;
        loaded.output_len = output_len as usize;
        if let Some(meta) = &loaded.meta {
            let meta_len: usize = meta.input.shape.iter().product();
            if meta_len != loaded.input_len {
                return Err(SandboxError::MetaMismatch {
                    module: loaded.input_len,
                    meta: meta_len,
                });
            }
        }
        Ok(loaded)
    }

    /// Compiles `wasm`, through the on-disk cache if there is one; the flag
    /// says whether the code came from the cache.
    fn compile(&self, wasm: &[u8]) -> Result<(Module, bool), SandboxError> {
        match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, wasm),
            None => Ok((
                Module::new(&self.engine, wasm)
                    .map_err(|e| SandboxError::Compile(format!("{e:#}")))?,
                false,
            )),
        }
    }

    /// Predicts every row of `input` (row-major, `input_len` values per row)
    /// in one fresh instance and one `kiln_run`.
    pub fn predict(&self, module: &LoadedModule, input: &[f32]) -> Result<Vec<f32>, SandboxError> {
        self.predict_measured(module, input).map(|p| p.scores)
    }

    /// [`Sandbox::predict`], also reporting instantiate and compute times and
    /// the instance's memory.
    pub fn predict_measured(
        &self,
        module: &LoadedModule,
        input: &[f32],
    ) -> Result<Prediction, SandboxError> {
        let row = module.input_len;
        if input.is_empty() || !input.len().is_multiple_of(row) {
            return Err(SandboxError::InputLen {
                values: input.len(),
                row,
            });
        }
        let batch = input.len() / row;
        let start = Instant::now();
        let mut run = self.instance(module)?;
        let instantiated = Instant::now();
        let scores = run.predict(batch, input, module.output_len);
        let compute = instantiated.elapsed();
        let memory_bytes = run.memory_size();
        Ok(Prediction {
            scores: scores?,
            instantiate: instantiated - start,
            compute,
            memory_bytes,
        })
    }

    fn instance<'m>(&self, module: &'m LoadedModule) -> Result<Run<'m>, SandboxError> {
        let limits = module.limits;
        let host = Host {
            memory_cap: limits.memory_bytes,
            hit_cap: false,
        };
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| h);
        let deadline_at = Instant::now() + limits.deadline;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline_at {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        let instance = match module.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => return Err(classify(e, &store, limits.deadline)),
        };
        Ok(Run {
            store,
            instance,
            deadline: limits.deadline,
            _module: module,
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A module that passed [`Sandbox::load`].
pub struct LoadedModule {
    pre: InstancePre<Host>,
    meta: Option<ModuleMeta>,
    limits: Limits,
    from_cache: bool,
    relaxed_simd: bool,
    input_len: usize,
    output_len: usize,
}

impl LoadedModule {
    /// The limits every instance of this module runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }
    /// Whether the compiled code came from the on-disk cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }
    /// Whether the module runs as its relaxed-SIMD twin
    /// ([`module::relaxed_twin`]).
    pub fn relaxed_simd(&self) -> bool {
        self.relaxed_simd
    }
    pub fn input_len(&self) -> usize {
        self.input_len
    }
    pub fn output_len(&self) -> usize {
        self.output_len
    }
    pub fn meta(&self) -> Option<&ModuleMeta> {
        self.meta.as_ref()
    }
}

const EXPORTS: [(&str, &[ValType]); 6] = [
    ("kiln_abi_version", &[]),
    ("kiln_input_len", &[]),
    ("kiln_output_len", &[]),
    ("kiln_input", &[ValType::I32]),
    ("kiln_run", &[ValType::I32]),
    ("kiln_output", &[]),
];

fn check_exports(module: &Module) -> Result<(), SandboxError> {
    match module.get_export("memory") {
        Some(wasmtime::ExternType::Memory(_)) => {}
        Some(_) => {
            return Err(SandboxError::ExportType {
                name: "memory",
                expected: "a memory",
            });
        }
        None => return Err(SandboxError::MissingExport("memory")),
    }
    for (name, params) in EXPORTS {
        let Some(ext) = module.get_export(name) else {
            return Err(SandboxError::MissingExport(name));
        };
        let ok = ext.func().is_some_and(|f| {
            f.params()
                .map(|p| p.to_string())
                .eq(params.iter().map(|p| p.to_string()))
                && f.results().map(|r| r.to_string()).eq(["i32".to_string()])
        });
        if !ok {
            return Err(SandboxError::ExportType {
                name,
                expected: if params.is_empty() {
                    "func() -> i32"
                } else {
                    "func(i32) -> i32"
                },
            });
        }
    }
    Ok(())
}

/// One fresh instance, dropped after the call it serves.
struct Run<'m> {
    store: Store<Host>,
    instance: Instance,
    deadline: Duration,
    _module: &'m LoadedModule,
}

impl Run<'_> {
    /// The ABI v1 call sequence for one batch.
    fn predict(
        &mut self,
        batch: usize,
        input: &[f32],
        output_len: usize,
    ) -> Result<Vec<f32>, SandboxError> {
        let ptr = self.call1("kiln_input", batch as i32)?;
        if ptr == 0 {
            return Err(SandboxError::NoBuffer {
                batch,
                cap: self.store.data().memory_cap,
            });
        }
        self.write_f32(ptr as u32 as usize, input)?;
        let code = self.call1("kiln_run", batch as i32)?;
        if code != 0 {
            return Err(SandboxError::RunCode(code));
        }
        let out = self.call0("kiln_output")?;
        self.read_f32(out as u32 as usize, batch * output_len)
    }

    fn memory_size(&mut self) -> usize {
        self.memory().map_or(0, |m| m.data_size(&self.store))
    }

    fn call0(&mut self, name: &'static str) -> Result<i32, SandboxError> {
        let f: TypedFunc<(), i32> = self
            .instance
            .get_typed_func(&mut self.store, name)
            .map_err(|_| SandboxError::MissingExport(name))?;
        f.call(&mut self.store, ())
            .map_err(|e| classify(e, &self.store, self.deadline))
    }

    fn call1(&mut self, name: &'static str, arg: i32) -> Result<i32, SandboxError> {
        let f: TypedFunc<i32, i32> = self
            .instance
            .get_typed_func(&mut self.store, name)
            .map_err(|_| SandboxError::MissingExport(name))?;
        f.call(&mut self.store, arg)
            .map_err(|e| classify(e, &self.store, self.deadline))
    }

    fn memory(&mut self) -> Result<wasmtime::Memory, SandboxError> {
        self.instance
            .get_memory(&mut self.store, "memory")
            .ok_or(SandboxError::MissingExport("memory"))
    }

    fn write_f32(&mut self, ptr: usize, values: &[f32]) -> Result<(), SandboxError> {
        let memory = self.memory()?;
        let bytes: &[u8] = bytemuck::cast_slice(values);
        let dst = memory
            .data_mut(&mut self.store)
            .get_mut(ptr..ptr.saturating_add(bytes.len()))
            .ok_or(SandboxError::BadPointer)?;
        dst.copy_from_slice(bytes);
        Ok(())
    }

    fn read_f32(&mut self, ptr: usize, len: usize) -> Result<Vec<f32>, SandboxError> {
        let memory = self.memory()?;
        let src = memory
            .data(&self.store)
            .get(ptr..ptr.saturating_add(len * 4))
            .ok_or(SandboxError::BadPointer)?;
        Ok(src
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

fn classify(e: wasmtime::Error, store: &Store<Host>, deadline: Duration) -> SandboxError {
    if store.data().hit_cap {
        return SandboxError::MemoryCap(store.data().memory_cap);
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => SandboxError::Deadline(deadline),
        Some(trap) => SandboxError::Trap(trap.to_string()),
        None => SandboxError::Trap(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ABI v1 module that reports, then dirties, four pieces of its
    /// state: a value in its data image (7), a zero page of its initial
    /// memory, the first word of the page it grows (its initial memory is
    /// two pages), and a mutable global.
    /// A fresh instance therefore always reports `[7, 0, 0, 0]`; any state
    /// surviving from an earlier call shows up as `[8, 99, 55, 1]`.
    /// `kiln_input(2)` grows memory without end (the cap), `kiln_input(3)`
    /// loops forever (the deadline).
    const DIRTY: &str = r#"(module
      (memory (export "memory") 2)
      (global $calls (mut i32) (i32.const 0))
      (data (i32.const 4096) "\07\00\00\00")
      (func (export "kiln_abi_version") (result i32) i32.const 1)
      (func (export "kiln_input_len") (result i32) i32.const 1)
      (func (export "kiln_output_len") (result i32) i32.const 4)
      (func (export "kiln_input") (param $batch i32) (result i32)
        (if (i32.eq (local.get $batch) (i32.const 2))
          (then (loop $grow (drop (memory.grow (i32.const 16))) (br $grow))))
        (if (i32.eq (local.get $batch) (i32.const 3))
          (then (loop $spin (br $spin))))
        i32.const 64)
      (func (export "kiln_output") (result i32) i32.const 128)
      (func (export "kiln_run") (param i32) (result i32)
        (f32.store (i32.const 128) (f32.convert_i32_s (i32.load (i32.const 4096))))
        (i32.store (i32.const 4096) (i32.add (i32.load (i32.const 4096)) (i32.const 1)))
        (f32.store (i32.const 132) (f32.convert_i32_s (i32.load (i32.const 70000))))
        (i32.store (i32.const 70000) (i32.const 99))
        (drop (memory.grow (i32.const 1)))
        (f32.store (i32.const 136) (f32.convert_i32_s (i32.load (i32.const 131072))))
        (i32.store (i32.const 131072) (i32.const 55))
        (f32.store (i32.const 140) (f32.convert_i32_s (global.get $calls)))
        (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
        i32.const 0))"#;

    fn pooled(keep_resident: Option<usize>) -> Sandbox {
        let limits = Limits {
            memory_bytes: 1 << 20,
            deadline: Duration::from_millis(50),
            module_bytes: 1 << 20,
        };
        let options = EngineOptions {
            pool_slots: Some(2),
            max_memory_bytes: 1 << 20,
            cache_dir: None,
            keep_resident,
        };
        Sandbox::with_options(limits, options).unwrap()
    }

    /// Every request sees the memory and globals of a just-instantiated
    /// module, whichever way pool slots are reset (pages kept resident and
    /// copied back, or discarded), also after requests that hit the memory
    /// cap or the deadline.
    #[test]
    fn no_state_survives_a_request() {
        let wasm = wat::parse_str(DIRTY).unwrap();
        for keep in [None, Some(0)] {
            let sandbox = pooled(keep);
            let module = sandbox.load(&wasm).unwrap();
            // Within one instance the module does dirty all four: what the
            // assertions below would see if an instance's state leaked.
            let mut run = sandbox.instance(&module).unwrap();
            assert_eq!(run.predict(1, &[0.0], 4).unwrap(), [7.0, 0.0, 0.0, 0.0]);
            assert_eq!(run.predict(1, &[0.0], 4).unwrap(), [8.0, 99.0, 55.0, 1.0]);
            drop(run);
            for round in 0..40 {
                let scores = sandbox.predict(&module, &[0.0]).unwrap();
                assert_eq!(scores, [7.0, 0.0, 0.0, 0.0], "round {round}, {keep:?}");
                if round % 10 == 3 {
                    let err = sandbox.predict(&module, &[0.0, 0.0]).unwrap_err();
                    assert!(matches!(err, SandboxError::MemoryCap(_)), "{err}");
                }
                if round % 10 == 7 {
                    let err = sandbox.predict(&module, &[0.0; 3]).unwrap_err();
                    assert!(matches!(err, SandboxError::Deadline(_)), "{err}");
                }
            }
        }
    }
}
