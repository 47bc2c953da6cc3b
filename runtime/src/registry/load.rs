//! The two steps of a load that come before the model map is touched:
//! reading the versions a model's policy selects from its source
//! (`read_source`: unsealed, held to their pins and verified on the way,
//! `trust.rs`) and compiling each new one (`compile`) under the compile
//! slots and timeout.

use std::sync::Arc;
use std::time::Duration;

use super::batching::{BatchSettings, Batcher};
use super::{ModelSettings, Registry, RegistryError, Source, Version, repo};
use crate::sandbox::SandboxError;

/// A version read from its source, not yet compiled.
pub(super) struct Candidate {
    pub(super) version: u64,
    pub(super) path: String,
    pub(super) wasm: Arc<[u8]>,
    pub(super) safetensors: Option<Arc<[u8]>>,
}

impl Registry {
    /// The versions of `name` its policy selects, read into memory.
    pub(super) fn read_source(
        &self,
        name: &str,
    ) -> Result<(Vec<Candidate>, repo::Fingerprint), RegistryError> {
        match &self.source {
            Source::Builtin(models) => {
                let m = models
                    .iter()
                    .find(|m| m.name == name)
                    .ok_or_else(|| RegistryError::NotInRepository(name.into()))?;
                let c = Candidate {
                    version: 1,
                    path: format!("built-in model `{name}`"),
                    wasm: m.wasm.clone(),
                    safetensors: m.safetensors.clone(),
                };
                self.check_module(name, &c, &c.wasm)?;
                Ok((vec![c], Vec::new()))
            }
            Source::Dir(dir) | Source::Model { dir, .. } => {
                let io = |path: &std::path::Path| {
                    let path = path.to_path_buf();
                    move |source| RegistryError::Io { path, source }
                };
                let found = self.found(name).map_err(io(dir))?;
                if found.is_empty() {
                    return Err(RegistryError::NotInRepository(name.into()));
                }
                let fingerprint = repo::fingerprint(&found);
                let numbers: Vec<u64> = found.iter().map(|f| f.version).collect();
                let selected = self.config.settings(name).versions.select(&numbers);
                if selected.is_empty() {
                    return Err(RegistryError::NoVersionSelected {
                        model: name.into(),
                        found: numbers,
                    });
                }
                let settings = self.config.settings(name);
                let (cap, file_cap) = (settings.module_mib << 20, settings.model_file_mib << 20);
                let mut out = Vec::new();
                let trust = self.trust();
                for f in found.into_iter().filter(|f| selected.contains(&f.version)) {
                    let path = f.wasm.display().to_string();
                    let wasm = repo::read_file(dir, &f.wasm, cap as u64).map_err(|e| match e {
                        // Refused before reading it into memory.
                        repo::FileError::TooLarge { size, .. } => RegistryError::Load {
                            model: name.into(),
                            version: f.version,
                            path: path.clone(),
                            source: Box::new(SandboxError::TooLarge {
                                size: usize::try_from(size).unwrap_or(usize::MAX),
                                cap,
                            }),
                        },
                        e => RegistryError::File {
                            model: name.into(),
                            source: e,
                        },
                    })?;
                    let refused = |source| RegistryError::Refused {
                        model: name.into(),
                        version: f.version,
                        path: path.clone(),
                        source,
                    };
                    let wasm = trust.open(wasm).map_err(refused)?;
                    if let Some(pins) = self.config.pins(name) {
                        crate::trust::check_pins(&wasm, pins).map_err(refused)?;
                    }
                    let (wasm, imported) =
                        repo::built(&f.wasm, wasm).map_err(|source| RegistryError::Import {
                            model: name.into(),
                            version: f.version,
                            path: path.clone(),
                            source: Box::new(source),
                        })?;
                    trust.verify(&wasm).map_err(refused)?;
                    let safetensors = match &f.safetensors {
                        Some(p) => {
                            let file =
                                repo::read_file(dir, p, file_cap as u64).map_err(|source| {
                                    RegistryError::File {
                                        model: name.into(),
                                        source,
                                    }
                                })?;
                            Some(trust.open(file).map_err(refused)?.into())
                        }
                        None => imported.map(Into::into),
                    };
                    out.push(Candidate {
                        version: f.version,
                        path,
                        wasm: wasm.into(),
                        safetensors,
                    });
                }
                Ok((out, fingerprint))
            }
        }
    }

    /// The checks of a module that comes from no file (a built-in model):
    /// its digest pins and signature.
    fn check_module(&self, name: &str, c: &Candidate, wasm: &[u8]) -> Result<(), RegistryError> {
        let refused = |source| RegistryError::Refused {
            model: name.into(),
            version: c.version,
            path: c.path.clone(),
            source,
        };
        if let Some(pins) = self.config.pins(name) {
            crate::trust::check_pins(wasm, pins).map_err(refused)?;
        }
        self.trust().verify(wasm).map_err(refused)
    }

    pub(super) async fn compile(
        &self,
        name: &str,
        c: Candidate,
        digest: String,
        settings: &ModelSettings,
    ) -> Result<Version, RegistryError> {
        let (sandbox, wasm, limits) = (self.sandbox.clone(), c.wasm.clone(), settings.limits());
        let timeout = Duration::from_millis(settings.compile_timeout_ms);
        // The permit goes with the compiler thread: a compile given up on
        // still counts until it ends.
        let permit = self.compiles.clone().acquire_owned().await;
        let compile = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            sandbox.load_with(&wasm, limits)
        });
        let loaded = match tokio::time::timeout(timeout, compile).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(SandboxError::Compile(format!(
                "compiler thread failed: {e}"
            ))),
            Err(_) => Err(SandboxError::Compile(format!(
                "compiling took longer than {timeout:?} (compile_timeout_ms in kiln.toml)"
            ))),
        };
        let loaded = loaded.map_err(|source| RegistryError::Load {
            model: name.into(),
            version: c.version,
            path: c.path.clone(),
            source: Box::new(source),
        })?;
        let Some(meta) = loaded.meta().cloned() else {
            return Err(RegistryError::NoMeta {
                model: name.into(),
                version: c.version,
                path: c.path,
            });
        };
        let module = Arc::new(loaded);
        let metrics = self.metrics.model(name, &c.version.to_string());
        let batcher = Batcher::spawn(
            self.sandbox.clone(),
            module.clone(),
            BatchSettings {
                max_batch: settings.max_batch,
                max_queue_delay: Duration::from_micros(settings.max_queue_delay_us),
                concurrency: self.concurrency,
                max_queue: settings.max_queue,
                queue_timeout: Duration::from_millis(settings.queue_timeout_ms),
                across_principals: settings.batch_across_keys,
            },
            metrics.clone(),
        );
        Ok(Version {
            name: name.into(),
            version: c.version,
            meta,
            digest,
            wasm: c.wasm,
            safetensors: c.safetensors,
            metrics,
            from_cache: module.from_cache(),
            module,
            batcher,
        })
    }
}
