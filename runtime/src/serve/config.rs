//! `kiln.toml`: server settings, per-model sandbox and batching settings
//! (defaults, overridable per model) and API keys.
//!
//! Parsed and validated without I/O beyond reading the file; unknown keys are
//! errors (a typo must not silently fall back to a default), and every error
//! names the file and the field.
//!
//! ```toml
//! [server]
//! max_body_mib = 16          # 413 above this
//! shutdown_grace_ms = 10000  # in-flight requests get this long on SIGTERM
//! watch_interval_ms = 1000   # --watch polling period
//! instances = 256            # concurrent instances (pooling allocator slots)
//! allow_unauthenticated = false  # true: serve other hosts without [[keys]]
//!
//! [defaults]                 # every model, unless [models.NAME] says otherwise
//! memory_mib = 64
//! timeout_ms = 1000
//! module_mib = 64
//! max_batch = 8              # rows merged into one kiln_run
//! max_queue_delay_us = 0     # how long a request may wait for others
//! versions = "latest:1"      # or "all", or "specific:1,3"
//!
//! [models.digits]
//! timeout_ms = 50
//!
//! [[keys]]
//! key = "…"                  # sent as `Authorization: Bearer …` or `X-Api-Key: …`
//! models = ["digits"]        # or ["*"]
//! admin = false              # may use the repository API
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::sandbox::Limits;

/// Why `kiln.toml` was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub defaults: ModelSettings,
    #[serde(default)]
    pub models: BTreeMap<String, ModelOverrides>,
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub max_body_mib: usize,
    pub shutdown_grace_ms: u64,
    pub watch_interval_ms: u64,
    pub instances: u32,
    /// Compiled-module cache; default `$XDG_CACHE_HOME/kiln/modules` or
    /// `~/.cache/kiln/modules`.
    pub cache_dir: Option<PathBuf>,
    /// Listen on non-loopback addresses even without API keys (behind a
    /// gateway that authenticates, e.g. in a Kubernetes pod).
    pub allow_unauthenticated: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_mib: 16,
            shutdown_grace_ms: 10_000,
            watch_interval_ms: 1_000,
            instances: 256,
            cache_dir: None,
            allow_unauthenticated: false,
        }
    }
}

/// Sandbox, batching and version settings of one model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    pub memory_mib: usize,
    pub timeout_ms: u64,
    pub module_mib: usize,
    pub max_batch: usize,
    pub max_queue_delay_us: u64,
    pub versions: VersionPolicy,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            memory_mib: 64,
            timeout_ms: 1_000,
            module_mib: 64,
            max_batch: 8,
            max_queue_delay_us: 0,
            versions: VersionPolicy::Latest(1),
        }
    }
}

impl ModelSettings {
    pub fn limits(&self) -> Limits {
        Limits {
            memory_bytes: self.memory_mib << 20,
            deadline: Duration::from_millis(self.timeout_ms),
            module_bytes: self.module_mib << 20,
        }
    }
}

/// `[models.NAME]`: any subset of [`ModelSettings`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOverrides {
    pub memory_mib: Option<usize>,
    pub timeout_ms: Option<u64>,
    pub module_mib: Option<usize>,
    pub max_batch: Option<usize>,
    pub max_queue_delay_us: Option<u64>,
    pub versions: Option<VersionPolicy>,
}

/// Which versions of a model are served (Triton's version policy).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum VersionPolicy {
    /// The N highest version numbers.
    Latest(usize),
    All,
    Specific(Vec<u64>),
}

impl TryFrom<String> for VersionPolicy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bad = || {
            format!("`{s}` is not a version policy: use \"latest:N\", \"all\" or \"specific:1,3\"")
        };
        match s.split_once(':') {
            None if s == "all" => Ok(VersionPolicy::All),
            Some(("latest", n)) => match n.trim().parse() {
                Ok(n) if n > 0 => Ok(VersionPolicy::Latest(n)),
                _ => Err(bad()),
            },
            Some(("specific", list)) => list
                .split(',')
                .map(|v| v.trim().parse().map_err(|_| bad()))
                .collect::<Result<Vec<u64>, _>>()
                .map(VersionPolicy::Specific),
            _ => Err(bad()),
        }
    }
}

impl VersionPolicy {
    /// The versions to serve out of `available` (sorted ascending).
    pub fn select(&self, available: &[u64]) -> Vec<u64> {
        match self {
            VersionPolicy::All => available.to_vec(),
            VersionPolicy::Latest(n) => available[available.len().saturating_sub(*n)..].to_vec(),
            VersionPolicy::Specific(list) => available
                .iter()
                .copied()
                .filter(|v| list.contains(v))
                .collect(),
        }
    }
}

/// One API key and what it may do.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub key: String,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub admin: bool,
}

impl std::fmt::Debug for KeyConfig {
    // Keys are never printed, not even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("key", &"<redacted>")
            .field("models", &self.models)
            .field("admin", &self.admin)
            .finish()
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text` (read from `path`, named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            source: Box::new(e),
        })?;
        let invalid = |field: String, message: &str| ConfigError::Invalid {
            path: path.into(),
            field,
            message: message.into(),
        };
        for (i, k) in config.keys.iter().enumerate() {
            if k.key.len() < 16 {
                return Err(invalid(
                    format!("keys[{i}].key"),
                    "API keys must be at least 16 characters",
                ));
            }
            if k.models.is_empty() && !k.admin {
                return Err(invalid(
                    format!("keys[{i}].models"),
                    "the key may call no model and is not admin: list models or \"*\"",
                ));
            }
        }
        let mut all = vec![("defaults".to_string(), config.defaults.clone())];
        all.extend(
            config
                .models
                .keys()
                .map(|m| (format!("models.{m}"), config.settings(m))),
        );
        for (name, s) in all {
            if s.max_batch == 0 {
                return Err(invalid(format!("{name}.max_batch"), "must be at least 1"));
            }
            if s.memory_mib == 0 || s.memory_mib > 4096 {
                return Err(invalid(
                    format!("{name}.memory_mib"),
                    "must be between 1 and 4096 (a 32-bit module addresses 4 GiB)",
                ));
            }
            if s.timeout_ms == 0 {
                return Err(invalid(format!("{name}.timeout_ms"), "must be at least 1"));
            }
        }
        if config.server.instances == 0 {
            return Err(invalid("server.instances".into(), "must be at least 1"));
        }
        Ok(config)
    }

    /// The effective settings of `model`: its overrides over the defaults.
    pub fn settings(&self, model: &str) -> ModelSettings {
        let mut s = self.defaults.clone();
        if let Some(o) = self.models.get(model) {
            s.memory_mib = o.memory_mib.unwrap_or(s.memory_mib);
            s.timeout_ms = o.timeout_ms.unwrap_or(s.timeout_ms);
            s.module_mib = o.module_mib.unwrap_or(s.module_mib);
            s.max_batch = o.max_batch.unwrap_or(s.max_batch);
            s.max_queue_delay_us = o.max_queue_delay_us.unwrap_or(s.max_queue_delay_us);
            s.versions = o.versions.clone().unwrap_or(s.versions);
        }
        s
    }

    /// The largest memory cap any model gets (sizes the instance pool).
    pub fn max_memory_bytes(&self) -> usize {
        let defaults = self.defaults.memory_mib;
        self.models
            .keys()
            .map(|m| self.settings(m).memory_mib)
            .fold(defaults, usize::max)
            << 20
    }

    pub fn cache_dir(&self) -> Option<PathBuf> {
        if let Some(d) = &self.server.cache_dir {
            return Some(d.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("kiln").join("modules"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_per_model() {
        let c = Config::parse(
            "[defaults]\ntimeout_ms = 500\n[models.a]\nmemory_mib = 8\nversions = \"all\"\n",
            Path::new("kiln.toml"),
        )
        .unwrap();
        assert_eq!(c.settings("a").memory_mib, 8);
        assert_eq!(c.settings("a").timeout_ms, 500);
        assert_eq!(c.settings("a").versions, VersionPolicy::All);
        assert_eq!(c.settings("b").memory_mib, 64);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::parse("[defaults]\nmax_batch = 0\n", Path::new("k.toml")).unwrap_err();
        assert!(e.to_string().contains("defaults.max_batch"), "{e}");
        let e = Config::parse("[defaults]\nmemroy_mib = 1\n", Path::new("k.toml")).unwrap_err();
        assert!(e.to_string().contains("memroy_mib"), "{e}");
        let e =
            Config::parse("[defaults]\nversions = \"newest\"\n", Path::new("k.toml")).unwrap_err();
        assert!(e.to_string().contains("latest:N"), "{e}");
    }

    #[test]
    fn version_policies_select() {
        let v = [1, 2, 5, 7];
        assert_eq!(VersionPolicy::Latest(2).select(&v), vec![5, 7]);
        assert_eq!(VersionPolicy::Latest(9).select(&v), v.to_vec());
        assert_eq!(VersionPolicy::All.select(&v), v.to_vec());
        assert_eq!(VersionPolicy::Specific(vec![2, 3]).select(&v), vec![2]);
    }

    #[test]
    fn keys_are_not_printed() {
        let c = Config::parse(
            "[[keys]]\nkey = \"0123456789abcdef-secret\"\nmodels = [\"*\"]\n",
            Path::new("k.toml"),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
