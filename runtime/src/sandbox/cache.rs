//! The on-disk cache of compiled modules.
//!
//! Compiling a module with Cranelift takes milliseconds to seconds; a server
//! restarting with the same repository should not pay it again. Entries are
//! `Module::serialize` output, named by the sha256 of the module bytes and a
//! digest of the engine's compatibility hash (wasmtime version, target,
//! compiler settings), so a changed engine never reads a stale entry.
//!
//! An entry is native code that wasmtime runs as it is, so the cache trusts
//! nothing it did not write itself: the directory is created 0700, an entry
//! (and the key below) must be owned by the server's user and writable by
//! nobody else, and each entry starts with an HMAC-SHA256 of its name and
//! bytes under a per-host key (`key`, 32 random bytes, 0600), checked before
//! anything is deserialised. An entry that fails any check, or fails to
//! deserialise, is recompiled and replaced (written with
//! [`crate::fsutil::write_atomic`]).

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use wasmtime::{Engine, Module};

use super::error::SandboxError;
use crate::module::sha256_hex;

/// Length of the MAC at the head of each entry.
const MAC_LEN: usize = 32;

/// Largest entry read (compiled code of a 4 GiB module cap is far less).
const MAX_ENTRY: u64 = 1 << 30;

pub(super) struct Cache {
    dir: PathBuf,
    engine_key: String,
    /// The MAC key, or why the cache is off (it then only compiles).
    key: Result<[u8; 32], String>,
}

impl Cache {
    pub(super) fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let digest = h.0.finalize();
        let engine_key = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let key = host_key(&dir).map_err(|e| format!("{}: {e}", dir.display()));
        if let Err(e) = &key {
            tracing::warn!("compile cache disabled: {e}");
        }
        Cache {
            dir,
            engine_key,
            key,
        }
    }

    fn name(&self, wasm: &[u8]) -> String {
        format!("{}-{}.cwasm", sha256_hex(wasm), self.engine_key)
    }

    /// The compiled module, and whether it came from the cache. Cache I/O
    /// failures only cost a recompilation (and a logged warning).
    pub(super) fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> Result<(Module, bool), SandboxError> {
        let name = self.name(wasm);
        let path = self.dir.join(&name);
        if let Ok(key) = &self.key
            && let Some(code) = read_entry(&path, key, &name)
        {
            // SAFETY: `code` is what this cache serialised for exactly
            // these module bytes and this engine: its MAC, under a key only
            // the server's user can read, was checked above, and the file
            // is owned by that user and writable by nobody else. wasmtime
            // also checks its header and the engine compatibility.
            if let Ok(m) = unsafe { Module::deserialize(engine, &code) } {
                return Ok((m, true));
            }
        }
        let module =
            Module::new(engine, wasm).map_err(|e| SandboxError::Compile(format!("{e:#}")))?;
        if let Ok(key) = &self.key
            && let Err(e) = store(&path, key, &name, &module)
        {
            tracing::warn!(
                "could not cache compiled module in {}: {e}",
                self.dir.display()
            );
        }
        Ok((module, false))
    }
}

/// The MAC of entry `name` holding `code`.
fn mac(key: &[u8; 32], name: &str, code: &[u8]) -> [u8; MAC_LEN] {
    // HMAC-SHA256 (RFC 2104) over the name, a separator, then the code.
    let pad = |byte: u8| {
        let mut block = [byte; 64];
        for (b, k) in block.iter_mut().zip(key) {
            *b ^= k;
        }
        block
    };
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(name.as_bytes())
        .chain_update([0])
        .chain_update(code)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The code of entry `path`, if it passes every check of the module note.
fn read_entry(path: &Path, key: &[u8; 32], name: &str) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(path).ok()?;
    trusted(&file.metadata().ok()?).ok()?;
    let mut bytes = Vec::new();
    (&mut file).take(MAX_ENTRY).read_to_end(&mut bytes).ok()?;
    let (tag, code) = bytes.split_at_checked(MAC_LEN)?;
    if !bool::from(mac(key, name, code).ct_eq(tag)) {
        return None;
    }
    Some(code.to_vec())
}

fn store(path: &Path, key: &[u8; 32], name: &str, module: &Module) -> std::io::Result<()> {
    let code = module.serialize().map_err(std::io::Error::other)?;
    let mut bytes = mac(key, name, &code).to_vec();
    bytes.extend_from_slice(&code);
    crate::fsutil::write_atomic(path, &bytes)?;
    restrict(path, 0o600)
}

/// The per-host MAC key in `dir` (made, with `dir`, if missing).
fn host_key(dir: &Path) -> std::io::Result<[u8; 32]> {
    make_private_dir(dir)?;
    let path = dir.join("key");
    match std::fs::File::open(&path) {
        Ok(mut f) => {
            trusted(&f.metadata()?)?;
            let mut key = [0; 32];
            f.read_exact(&mut key)?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0; 32];
            getrandom::fill(&mut key).map_err(std::io::Error::other)?;
            crate::fsutil::write_atomic(&path, &key)?;
            restrict(&path, 0o600)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

fn other(message: &str) -> std::io::Error {
    std::io::Error::other(message.to_string())
}

/// Creates `dir` (0700) or checks the one there.
#[cfg(unix)]
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(other("not a directory"));
    }
    trusted(&meta)
}

#[cfg(not(unix))]
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Ok if the file is owned by this process's user and writable by nobody
/// else.
#[cfg(unix)]
fn trusted(meta: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != user()? {
        return Err(other("owned by another user"));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(other("writable by group or others"));
    }
    Ok(())
}

#[cfg(not(unix))]
fn trusted(_: &std::fs::Metadata) -> std::io::Result<()> {
    Ok(())
}

/// This process's (effective) user: the owner of a file it creates.
#[cfg(unix)]
fn user() -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    static USER: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(u) = USER.get() {
        return Ok(*u);
    }
    let uid = tempfile::tempfile()?.metadata()?.uid();
    Ok(*USER.get_or_init(|| uid))
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
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

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::super::{EngineOptions, Limits, Sandbox};

    /// A module whose one score is `value`.
    fn answering(value: f32) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module
              (memory (export "memory") 1)
              (func (export "kiln_abi_version") (result i32) i32.const 1)
              (func (export "kiln_input_len") (result i32) i32.const 1)
              (func (export "kiln_output_len") (result i32) i32.const 1)
              (func (export "kiln_input") (param i32) (result i32) i32.const 64)
              (func (export "kiln_output") (result i32) i32.const 128)
              (func (export "kiln_run") (param i32) (result i32)
                (f32.store (i32.const 128) (f32.const {value})) i32.const 0))"#
        ))
        .unwrap()
    }

    fn sandbox(dir: &std::path::Path) -> Sandbox {
        let limits = Limits {
            memory_bytes: 1 << 20,
            deadline: Duration::from_secs(1),
            module_bytes: 1 << 20,
        };
        let options = EngineOptions {
            cache_dir: Some(dir.to_path_buf()),
            ..EngineOptions::default()
        };
        Sandbox::with_options(limits, options).unwrap()
    }

    fn entry(dir: &std::path::Path, wasm: &[u8]) -> std::path::PathBuf {
        let prefix = crate::module::sha256_hex(wasm);
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&prefix)
            })
            .expect("a cache entry")
    }

    /// The cache runs only code it wrote for those very module bytes: an
    /// entry swapped for another module's, or writable by others, is
    /// recompiled, not run.
    #[test]
    fn cache_entries_are_authenticated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        let (one, two) = (answering(1.0), answering(2.0));
        let s = sandbox(&dir);
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(!s.load(&one).unwrap().from_cache());
        assert!(!s.load(&two).unwrap().from_cache());
        let s = sandbox(&dir);
        assert!(s.load(&one).unwrap().from_cache());
        // Module one's entry replaced by module two's compiled code.
        std::fs::copy(entry(&dir, &two), entry(&dir, &one)).unwrap();
        let s = sandbox(&dir);
        let m = s.load(&one).unwrap();
        assert!(!m.from_cache(), "a swapped entry was used");
        assert_eq!(s.predict(&m, &[0.0]).unwrap(), [1.0]);
        // Rewritten by the recompile; now made writable by others.
        let path = entry(&dir, &one);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!sandbox(&dir).load(&one).unwrap().from_cache());
    }
}
