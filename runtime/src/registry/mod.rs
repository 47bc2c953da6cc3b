//! The models a server holds: names, versions, loading, unloading and hot
//! swap.
//!
//! A request looks a version up and keeps an `Arc` to it for its whole life,
//! so swapping is one map update under a short write lock: requests that
//! already hold the old version finish on it (its queue drains before its
//! task ends), new requests get the new one, and none fails. A load compiles
//! every new version *before* touching the map, so a load that fails leaves
//! whatever was serving in place. Loads and unloads of one model are
//! serialised by its own async mutex (a slow compile blocks no other
//! model); lookups never wait for them. At most one compile per CPU runs at
//! once, and a load gives up on a compile after `compile_timeout_ms` (the
//! compiler thread cannot be stopped: it finishes in the background and
//! holds its compile slot until then).
//!
//! Models come from a repository directory ([`repo`]) or are built in (the
//! demo model of `kiln serve` without a repository). Reading and compiling
//! a load's versions live in `load.rs`; what a load checks before it
//! compiles (seals, digest pins, signatures) in `trust.rs`.

mod batching;
mod load;
mod metrics;
pub(crate) mod repo;
mod settings;
mod trust;

pub use batching::{InferError, Outcome, Principal};
pub use metrics::{ModelMetrics, ModelsMetrics};
pub use repo::FileError;
pub use settings::{ModelConfig, ModelOverrides, ModelSettings, Pins, VersionPolicy};
pub use trust::LoadTrust;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::module::{ModuleMeta, sha256_hex};
use crate::sandbox::{LoadedModule, Sandbox, SandboxError};
use batching::Batcher;

/// Why a model could not be found, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    #[error("model `{model}` has no version `{version}` loaded")]
    UnknownVersion { model: String, version: String },
    #[error("model `{model}` is not ready: {reason}")]
    NotReady { model: String, reason: String },
    #[error("model `{0}` is not in the repository")]
    NotInRepository(String),
    #[error("model `{model}` version {version} ({path}) failed to load: {source}")]
    Load {
        model: String,
        version: u64,
        path: String,
        source: Box<SandboxError>,
    },
    #[error("model `{model}` version {version} ({path}) does not import: {source}")]
    Import {
        model: String,
        version: u64,
        path: String,
        source: Box<crate::import::AnyModelError>,
    },
    #[error(
        "model `{model}` version {version} ({path}) has no kiln.meta section; build it with `kiln build`"
    )]
    NoMeta {
        model: String,
        version: u64,
        path: String,
    },
    #[error("model `{model}` version {version} ({path}) refused: {source}")]
    Refused {
        model: String,
        version: u64,
        path: String,
        source: crate::trust::TrustError,
    },
    #[error("model `{model}`: {source}")]
    File {
        model: String,
        source: repo::FileError,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model `{model}`: the version policy selects none of the versions found ({found:?})")]
    NoVersionSelected { model: String, found: Vec<u64> },
}

/// Records that loading `name` failed with `e` and returns `e`: the reason
/// is listed in the index, the fingerprint remembered so that --watch does
/// not retry unchanged files, and the versions that were serving keep
/// serving.
fn failed(
    models: &mut BTreeMap<String, Entry>,
    name: &str,
    fingerprint: repo::Fingerprint,
    e: RegistryError,
) -> RegistryError {
    let entry = models.entry(name.into()).or_insert_with(|| Entry {
        versions: BTreeMap::new(),
        ready: false,
        reason: String::new(),
        fingerprint: Vec::new(),
    });
    entry.fingerprint = fingerprint;
    entry.reason = if entry.ready {
        format!("reload failed, previous versions still serving: {e}")
    } else {
        e.to_string()
    };
    e
}

/// A model built into the binary.
#[derive(Clone)]
pub struct BuiltinModel {
    pub name: String,
    pub wasm: Arc<[u8]>,
    pub safetensors: Option<Arc<[u8]>>,
}

/// Where models come from.
#[derive(Clone)]
pub enum Source {
    /// A repository directory.
    Dir(PathBuf),
    /// A directory holding one model's files ([`repo::single`]), served as
    /// `name` (KServe's `/mnt/models` and `--model_name`).
    Model {
        name: String,
        dir: PathBuf,
    },
    Builtin(Vec<BuiltinModel>),
}

/// One loaded version of a model.
pub struct Version {
    pub name: String,
    pub version: u64,
    pub meta: ModuleMeta,
    /// Hex sha256 of the module bytes.
    pub digest: String,
    /// The module, for download.
    pub wasm: Arc<[u8]>,
    /// The model file it was built from, when the repository has it.
    pub safetensors: Option<Arc<[u8]>>,
    pub metrics: Arc<ModelMetrics>,
    /// Whether its compiled code came from the on-disk cache.
    pub from_cache: bool,
    module: Arc<LoadedModule>,
    batcher: Batcher,
}

impl Version {
    /// Values per input row.
    pub fn row_len(&self) -> usize {
        self.module.input_len()
    }
    /// Scores per output row.
    pub fn output_len(&self) -> usize {
        self.module.output_len()
    }
    /// Predicts whole rows through the version's batching queue.
    pub async fn infer(&self, input: Vec<f32>, from: Principal) -> Result<Outcome, InferError> {
        self.batcher.submit(input, from).await
    }
}

/// A model's entry: its serving versions, or why it has none.
#[derive(Clone)]
struct Entry {
    versions: BTreeMap<u64, Arc<Version>>,
    ready: bool,
    reason: String,
    fingerprint: repo::Fingerprint,
}

/// One row of the repository index.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexEntry {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The server's models.
pub struct Registry {
    sandbox: Arc<Sandbox>,
    config: ModelConfig,
    source: Source,
    metrics: Arc<ModelsMetrics>,
    models: RwLock<BTreeMap<String, Entry>>,
    /// One lock per model name: loads and unloads of a model are serialised,
    /// those of different models are not.
    loading: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Compiles running at once.
    compiles: Arc<tokio::sync::Semaphore>,
    concurrency: usize,
    /// What a load checks before compiling: seals, pins, signatures.
    /// Replaced on a reload of the keys ([`Registry::set_trust`]).
    trust: std::sync::RwLock<LoadTrust>,
}

impl Registry {
    pub fn new(
        sandbox: Arc<Sandbox>,
        config: ModelConfig,
        source: Source,
        metrics: Arc<ModelsMetrics>,
    ) -> Registry {
        let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get());
        Registry {
            sandbox,
            config,
            source,
            metrics,
            models: RwLock::new(BTreeMap::new()),
            loading: std::sync::Mutex::new(BTreeMap::new()),
            compiles: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            concurrency,
            trust: std::sync::RwLock::new(LoadTrust::default()),
        }
    }

    /// The registry checking `trust` on every load ([`LoadTrust`]).
    pub fn with_trust(self, trust: LoadTrust) -> Registry {
        self.set_trust(trust);
        self
    }

    /// Replaces the keys loads check (trusted keys, unseal key): versions
    /// already loaded keep serving, and every later load is held to the new
    /// keys.
    pub fn set_trust(&self, trust: LoadTrust) {
        *self
            .trust
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = trust;
    }

    /// The keys a load starting now checks.
    fn trust(&self) -> LoadTrust {
        self.trust
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Names of every model the source holds.
    pub fn available(&self) -> Result<Vec<String>, RegistryError> {
        match &self.source {
            Source::Dir(dir) => repo::names(dir).map_err(|source| RegistryError::Io {
                path: dir.clone(),
                source,
            }),
            Source::Model { name, .. } => Ok(vec![name.clone()]),
            Source::Builtin(b) => Ok(b.iter().map(|m| m.name.clone()).collect()),
        }
    }

    /// The versions of `name` on disk (none for built-in models).
    fn found(&self, name: &str) -> std::io::Result<Vec<repo::Found>> {
        match &self.source {
            Source::Dir(dir) => repo::versions(dir, name),
            Source::Model { name: n, dir } if n == name => repo::single(dir),
            Source::Model { .. } | Source::Builtin(_) => Ok(Vec::new()),
        }
    }

    /// Loads every model of the source; returns each model's outcome. A model
    /// that fails is listed as unavailable with the reason.
    pub async fn load_all(
        &self,
    ) -> Result<Vec<(String, Result<(), RegistryError>)>, RegistryError> {
        let mut out = Vec::new();
        for name in self.available()? {
            let r = self.load(&name).await;
            out.push((name, r));
        }
        Ok(out)
    }

    /// Loads (or reloads) `name`: the versions its policy selects. Versions
    /// whose bytes did not change are kept as they are; the others are
    /// compiled first, and only if all succeed does the model switch.
    pub async fn load(&self, name: &str) -> Result<(), RegistryError> {
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        let (candidates, fingerprint) = match self.read_source(name) {
            Err(e @ RegistryError::NotInRepository(_)) => {
                // Its files are gone: it stops serving (as Triton does).
                let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
                models.remove(name);
                return Err(e);
            }
            Err(e) => {
                // Refused before compiling (a file too large, refused by
                // a trust check, not importable): listed with its reason
                // like a compile failure, and not retried by --watch until
                // its files change.
                let found = self.found(name).unwrap_or_default();
                let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
                return Err(failed(&mut models, name, repo::fingerprint(&found), e));
            }
            Ok(r) => r,
        };
        let settings = self.config.settings(name);
        let old = self.entry(name);
        let mut versions = BTreeMap::new();
        let mut failure = None;
        for c in candidates {
            let digest = sha256_hex(&c.wasm);
            if let Some(v) = old
                .as_ref()
                .and_then(|e| e.versions.get(&c.version))
                .filter(|v| v.digest == digest)
            {
                versions.insert(c.version, v.clone());
                continue;
            }
            match self.compile(name, c, digest, &settings).await {
                Ok(v) => {
                    versions.insert(v.version, Arc::new(v));
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        match failure {
            None => {
                models.insert(
                    name.into(),
                    Entry {
                        versions,
                        ready: true,
                        reason: String::new(),
                        fingerprint,
                    },
                );
                Ok(())
            }
            Some(e) => Err(failed(&mut models, name, fingerprint, e)),
        }
    }

    /// Stops serving `name`. Requests already holding a version finish.
    pub async fn unload(&self, name: &str) -> Result<(), RegistryError> {
        let lock = self.lock(name);
        let _guard = lock.lock().await;
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        models
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| RegistryError::UnknownModel(name.into()))
    }

    /// The version to serve: `version`, or the highest loaded one.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<Version>, RegistryError> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        let entry = models
            .get(name)
            .ok_or_else(|| RegistryError::UnknownModel(name.into()))?;
        if !entry.ready {
            return Err(RegistryError::NotReady {
                model: name.into(),
                reason: entry.reason.clone(),
            });
        }
        let found = match version {
            None | Some("") => entry.versions.values().next_back(),
            Some(v) => v.parse::<u64>().ok().and_then(|v| entry.versions.get(&v)),
        };
        found.cloned().ok_or_else(|| RegistryError::UnknownVersion {
            model: name.into(),
            version: version.unwrap_or("").into(),
        })
    }

    /// The loaded version numbers of `name`, ascending.
    pub fn versions(&self, name: &str) -> Vec<u64> {
        self.entry(name)
            .map(|e| e.versions.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The loaded versions of `name`, ascending.
    pub fn loaded(&self, name: &str) -> Vec<Arc<Version>> {
        self.entry(name)
            .map(|e| e.versions.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether every model in the registry is ready.
    pub fn all_ready(&self) -> bool {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        models.values().all(|e| e.ready)
    }

    /// Loaded model versions.
    pub fn loaded_versions(&self) -> usize {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        models.values().map(|e| e.versions.len()).sum()
    }

    /// The repository index: every model of the source and every loaded one.
    pub fn index(&self) -> Vec<IndexEntry> {
        let models = self
            .models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = Vec::new();
        let mut names: Vec<String> = self.available().unwrap_or_default();
        names.extend(models.keys().cloned());
        names.sort();
        names.dedup();
        for name in names {
            match models.get(&name) {
                Some(e) if !e.versions.is_empty() => {
                    out.extend(e.versions.keys().map(|v| IndexEntry {
                        name: name.clone(),
                        version: v.to_string(),
                        state: "READY",
                        reason: e.reason.clone(),
                    }))
                }
                Some(e) => out.push(IndexEntry {
                    name,
                    version: String::new(),
                    state: "UNAVAILABLE",
                    reason: e.reason.clone(),
                }),
                None => out.push(IndexEntry {
                    name,
                    version: String::new(),
                    state: "UNAVAILABLE",
                    reason: "unloaded".into(),
                }),
            }
        }
        out
    }

    /// One `--watch` pass: loads new and changed models, unloads removed
    /// ones. Returns what it did, for the log.
    pub async fn poll(&self) -> Vec<String> {
        if matches!(self.source, Source::Builtin(_)) {
            return Vec::new();
        }
        let Ok(names) = self.available() else {
            return Vec::new();
        };
        let mut log = Vec::new();
        let loaded: Vec<String> = {
            let models = self.models.read().unwrap_or_else(|p| p.into_inner());
            models.keys().cloned().collect()
        };
        for name in &loaded {
            if !names.contains(name) && self.unload(name).await.is_ok() {
                log.push(format!("unloaded `{name}` (removed from the repository)"));
            }
        }
        for name in names {
            let now = self
                .found(&name)
                .map(|f| repo::fingerprint(&f))
                .unwrap_or_default();
            if self.entry(&name).is_some_and(|e| e.fingerprint == now) {
                continue;
            }
            match self.load(&name).await {
                Ok(()) => log.push(format!(
                    "loaded `{name}` versions {:?}",
                    self.versions(&name)
                )),
                Err(e) => log.push(format!("error: {e}")),
            }
        }
        log
    }

    /// The load lock of `name`. (Locks nobody else holds are dropped here,
    /// so names that come and go do not pile up.)
    fn lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(name.into()).or_default().clone()
    }

    fn entry(&self, name: &str) -> Option<Entry> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        models.get(name).cloned()
    }
}
