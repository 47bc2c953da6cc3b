//! The on-disk cache of compiled modules.
//!
//! Compiling a module with Cranelift takes milliseconds to seconds; a server
//! restarting with the same repository should not pay it again. Entries are
//! `Module::serialize` output, named by the sha256 of the module bytes and a
//! digest of the engine's compatibility hash (wasmtime version, target,
//! compiler settings), so a changed engine never reads a stale entry. Entries
//! are written with [`crate::fsutil::write_atomic`]; an entry that fails to
//! deserialize is recompiled and replaced.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

use super::SandboxError;
use crate::module::sha256_hex;

pub(super) struct Cache {
    dir: PathBuf,
    engine_key: String,
}

impl Cache {
    pub(super) fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let digest = h.0.finalize();
        let engine_key = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Cache { dir, engine_key }
    }

    fn path(&self, wasm: &[u8]) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", sha256_hex(wasm), self.engine_key))
    }

    /// The compiled module, and whether it came from the cache. Cache I/O
    /// failures only cost a recompilation (and a warning on stderr).
    pub(super) fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(Module, bool), SandboxError> {
        let path = self.path(wasm);
        if path.is_file() {
            // SAFETY: the file is one this cache wrote (temp file + rename in
            // a directory the server owns) for exactly these bytes and this
            // engine configuration; wasmtime also checks its header and the
            // engine compatibility before using it.
            if let Ok(m) = unsafe { Module::deserialize_file(engine, &path) } {
                return Ok((m, true));
            }
        }
        let module =
            Module::new(engine, wasm).map_err(|e| SandboxError::Compile(format!("{e:#}")))?;
        if let Err(e) = self.store(&path, &module) {
            eprintln!(
                "warning: could not cache compiled module in {}: {e}",
                self.dir.display()
            );
        }
        Ok((module, false))
    }

    fn store(&self, path: &Path, module: &Module) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = module.serialize().map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic(path, &bytes)
    }
}

/// Feeds `Hash` input into sha256, for a digest stable across processes.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }
}
