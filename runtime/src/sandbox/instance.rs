//! The ABI client: one fresh instance per call, and the ABI v1 call
//! sequence that predicts a batch through it (`kiln_input`, copy the rows
//! in, `kiln_run`, `kiln_output`, copy the scores out).

use std::time::{Duration, Instant};

use wasmtime::{Instance, Store, TypedFunc, UpdateDeadline};

use super::engine::Sandbox;
use super::error::{SandboxError, classify};
use super::limits::Host;
use super::loaded::LoadedModule;

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

impl Sandbox {
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

    pub(super) fn instance<'m>(&self, module: &'m LoadedModule) -> Result<Run<'m>, SandboxError> {
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

/// One fresh instance, dropped after the call it serves.
pub(super) struct Run<'m> {
    store: Store<Host>,
    instance: Instance,
    deadline: Duration,
    _module: &'m LoadedModule,
}

impl Run<'_> {
    /// The ABI v1 call sequence for one batch.
    pub(super) fn predict(
        &mut self,
        batch: usize,
        input: &[f32],
        output_len: usize,
    ) -> Result<Vec<f32>, SandboxError> {
        let rows = i32::try_from(batch).map_err(|_| SandboxError::TooManyRows(batch))?;
        let out_values = batch
            .checked_mul(output_len)
            .ok_or(SandboxError::TooManyRows(batch))?;
        let ptr = self.call1("kiln_input", rows)?;
        if ptr == 0 {
            return Err(SandboxError::NoBuffer {
                batch,
                cap: self.store.data().memory_cap,
            });
        }
        self.write_f32(ptr as u32 as usize, input)?;
        let code = self.call1("kiln_run", rows)?;
        if code != 0 {
            return Err(SandboxError::RunCode(code));
        }
        let out = self.call0("kiln_output")?;
        self.read_f32(out as u32 as usize, out_values)
    }

    pub(super) fn memory_size(&mut self) -> usize {
        self.memory().map_or(0, |m| m.data_size(&self.store))
    }

    pub(super) fn call0(&mut self, name: &'static str) -> Result<i32, SandboxError> {
        let f: TypedFunc<(), i32> = self
            .instance
            .get_typed_func(&mut self.store, name)
            .map_err(|_| SandboxError::MissingExport(name))?;
        f.call(&mut self.store, ())
            .map_err(|e| classify(e, &self.store, self.deadline))
    }

    pub(super) fn call1(&mut self, name: &'static str, arg: i32) -> Result<i32, SandboxError> {
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
            .get(ptr..ptr.saturating_add(len.saturating_mul(4)))
            .ok_or(SandboxError::BadPointer)?;
        Ok(src
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}
