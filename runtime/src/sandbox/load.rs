//! [`Sandbox::load`]: refuse a module that is too large, embeds an invalid
//! model, imports anything or lacks an ABI export; compile it (or its
//! relaxed-SIMD twin); then ask it its ABI version and row lengths.

use super::engine::Sandbox;
use super::error::SandboxError;
use super::exports::check_exports;
use super::limits::Limits;
use super::loaded::LoadedModule;
use crate::module;

impl Sandbox {
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
            check_meta("input", &meta.input, loaded.input_len)?;
            check_meta("output", &meta.output, loaded.output_len)?;
        }
        Ok(loaded)
    }
}

/// Checks one tensor of `kiln.meta` against what the module reports: FP32,
/// every dimension positive and within i32 (the protocol's shapes are i64,
/// the ABI's lengths i32), and a row of exactly `len` values.
fn check_meta(
    tensor: &'static str,
    meta: &module::TensorMeta,
    len: usize,
) -> Result<(), SandboxError> {
    let bad = |message: String| SandboxError::BadMeta { tensor, message };
    if meta.datatype != "FP32" {
        return Err(bad(format!(
            "datatype {:?} is not FP32, the only one kiln serves",
            meta.datatype
        )));
    }
    let mut product: usize = 1;
    for &d in &meta.shape {
        if d == 0 || i32::try_from(d).is_err() {
            return Err(bad(format!(
                "dimension {d} of shape {:?} is not between 1 and 2^31-1",
                meta.shape
            )));
        }
        product = product
            .checked_mul(d)
            .ok_or_else(|| bad(format!("shape {:?} has too many values", meta.shape)))?;
    }
    if product != len {
        return Err(SandboxError::MetaMismatch {
            tensor,
            module: len,
            meta: product,
        });
    }
    Ok(())
}
