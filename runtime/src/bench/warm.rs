//! A model module kept instantiated between calls, driven through the raw
//! ABI v1 (`docs/abi.md`) — what a browser page or an edge worker does.
//!
//! This is a measuring driver, not a sandbox: it has no memory cap, no
//! deadline and reuses one instance, so it shows the module's compute alone.
//! `kiln serve` and `kiln predict` use [`crate::sandbox`] (a fresh, capped,
//! deadline-bound instance per call) instead.

use wasmtime::{Config, Engine, Instance, Memory, Module, Store, TypedFunc};

use super::BenchError;

/// One warm instance of a model module.
pub struct Warm {
    store: Store<()>,
    memory: Memory,
    input: TypedFunc<i32, i32>,
    run: TypedFunc<i32, i32>,
    output: TypedFunc<(), i32>,
    input_len: usize,
    output_len: usize,
}

fn wasm_err(e: wasmtime::Error) -> BenchError {
    BenchError::Warm(format!("{e:#}"))
}

impl Warm {
    /// Compiles and instantiates `wasm` (with the sandbox's engine features:
    /// SIMD128, relaxed SIMD with native lowerings — see `crate::sandbox`).
    pub fn new(wasm: &[u8]) -> Result<Self, BenchError> {
        let mut config = Config::new();
        config.wasm_simd(true);
        config.wasm_relaxed_simd(true);
        config.relaxed_simd_deterministic(false);
        let engine = Engine::new(&config).map_err(wasm_err)?;
        let module = Module::new(&engine, wasm).map_err(wasm_err)?;
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).map_err(wasm_err)?;
        let len = |store: &mut Store<()>, name: &str| -> Result<usize, BenchError> {
            let f: TypedFunc<(), i32> = instance
                .get_typed_func(&mut *store, name)
                .map_err(wasm_err)?;
            let n = f.call(&mut *store, ()).map_err(wasm_err)?;
            usize::try_from(n).map_err(|_| BenchError::Warm(format!("{name} returned {n}")))
        };
        let (input_len, output_len) = (
            len(&mut store, "kiln_input_len")?,
            len(&mut store, "kiln_output_len")?,
        );
        Ok(Warm {
            memory: instance
                .get_memory(&mut store, "memory")
                .ok_or_else(|| BenchError::Warm("the module exports no memory".into()))?,
            input: instance
                .get_typed_func(&mut store, "kiln_input")
                .map_err(wasm_err)?,
            run: instance
                .get_typed_func(&mut store, "kiln_run")
                .map_err(wasm_err)?,
            output: instance
                .get_typed_func(&mut store, "kiln_output")
                .map_err(wasm_err)?,
            store,
            input_len,
            output_len,
        })
    }

    /// Predicts the rows of `x` (a whole number of rows) into `out`
    /// (`rows × output_len` values).
    pub fn predict(&mut self, x: &[f32], out: &mut [f32]) -> Result<(), BenchError> {
        let batch = x.len() / self.input_len.max(1);
        if batch * self.input_len != x.len() || out.len() != batch * self.output_len {
            return Err(BenchError::Warm(format!(
                "{} input values and {} output slots for rows of {} → {}",
                x.len(),
                out.len(),
                self.input_len,
                self.output_len
            )));
        }
        let p = self
            .input
            .call(&mut self.store, batch as i32)
            .map_err(wasm_err)?;
        if p == 0 {
            return Err(BenchError::Warm(format!(
                "kiln_input({batch}) returned no buffer"
            )));
        }
        self.memory
            .write(&mut self.store, p as u32 as usize, bytemuck::cast_slice(x))
            .map_err(|e| BenchError::Warm(e.to_string()))?;
        let code = self
            .run
            .call(&mut self.store, batch as i32)
            .map_err(wasm_err)?;
        if code != 0 {
            return Err(BenchError::Warm(format!("kiln_run returned {code}")));
        }
        let o = self.output.call(&mut self.store, ()).map_err(wasm_err)?;
        self.memory
            .read(
                &self.store,
                o as u32 as usize,
                bytemuck::cast_slice_mut(out),
            )
            .map_err(|e| BenchError::Warm(e.to_string()))
    }
}
