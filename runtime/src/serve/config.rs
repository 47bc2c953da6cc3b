//! `kiln.toml`: server settings, per-model sandbox and batching settings
//! (defaults, overridable per model: [`crate::registry::ModelSettings`]) and
//! API keys.
//!
//! Parsed and validated without I/O beyond reading the file; unknown keys are
//! errors (a typo must not silently fall back to a default), and every error
//! names the file and the field.
//!
//! ```toml
//! [server]
//! max_body_mib = 16          # 413 above this
//! drain_ms = 5000           # on SIGTERM: readiness 503, still serving
//! shutdown_grace_ms = 10000  # then in-flight requests get this long
//! watch_interval_ms = 1000   # --watch polling period
//! instances = 256            # concurrent instances (pooling allocator slots)
//! allow_unauthenticated = false  # true: serve other hosts without [[keys]]
//! request_timeout_ms = 60000 # longest wait for an answer (then 503)
//! model_control = "explicit" # or "poll" (what --watch sets), or "none"
//! max_connections = 1024     # open connections, on each listener (REST, gRPC)
//! header_timeout_ms = 10000  # to send a request's headers
//! body_timeout_ms = 30000    # to send a request's body (then 408)
//! trusted_keys = "keys/"     # only modules signed by one of keys/*.pub load
//! unseal_key_file = "/run/secrets/kiln.sealkey"  # repository files are sealed
//! tls_cert = "server.pem"    # TLS on both listeners: the chain, leaf first
//! tls_key = "server.key"     # its private key (PEM)
//! tls_client_ca = "ca.pem"   # mutual TLS: clients need a certificate it signed
//! insecure_no_tls = false    # true: keys in cleartext beyond loopback
//!
//! [defaults]                 # every model, unless [models.NAME] says otherwise
//! memory_mib = 64
//! timeout_ms = 1000
//! module_mib = 64
//! model_file_mib = 256       # largest model.safetensors offered for download
//! max_batch = 8              # rows merged into one kiln_run
//! max_queue_delay_us = 0     # how long a request may wait for others
//! max_queue = 256            # requests waiting to start (more: 503)
//! queue_timeout_ms = 5000    # longest wait to start (then 503)
//! versions = "latest:1"      # or "all", or "specific:1,3"
//!
//! [models.digits]
//! timeout_ms = 50
//! sha256 = "…"               # or a list: the file must have one of these digests
//!
//! [[keys]]
//! key = "…"                  # sent as `Authorization: Bearer …` or `X-Api-Key: …`
//! # key_sha256 = "…"         # instead of `key`: its SHA-256 (`kiln keyhash`)
//! models = ["digits"]        # or ["*"]
//! admin = false              # may use the repository API and read /metrics
//! metrics = false            # may read /metrics (a Prometheus scrape key)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::registry::{ModelConfig, ModelOverrides, ModelSettings};

/// Largest `kiln.toml` read.
const MAX_FILE: u64 = 1 << 20;

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
    /// After SIGTERM, how long readiness is 503 while requests are still
    /// served, before the listeners close.
    pub drain_ms: u64,
    pub shutdown_grace_ms: u64,
    pub watch_interval_ms: u64,
    pub instances: u32,
    /// Longest an inference request may wait for its answer (then: 503).
    pub request_timeout_ms: u64,
    /// Who decides which models are loaded (Triton's model control mode).
    pub model_control: ModelControl,
    /// Open connections at most, on each listener (REST and gRPC).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout_ms: u64,
    /// How long a client may take to send a request's body.
    pub body_timeout_ms: u64,
    /// Compiled-module cache; default `$XDG_CACHE_HOME/kiln/modules` or
    /// `~/.cache/kiln/modules`.
    pub cache_dir: Option<PathBuf>,
    /// Listen on non-loopback addresses even without API keys (behind a
    /// gateway that authenticates, e.g. in a Kubernetes pod).
    pub allow_unauthenticated: bool,
    /// A directory of public keys (`*.pub`): every module must be signed by
    /// one of them (`kiln serve --trusted-keys`).
    pub trusted_keys: Option<PathBuf>,
    /// The key repository files are sealed under (`kiln serve
    /// --unseal-key-file`); then every model file must be sealed. It must
    /// lie outside the repository.
    pub unseal_key_file: Option<PathBuf>,
    /// PEM certificate chain: serve both listeners over TLS (with
    /// `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: mutual TLS, clients must present a certificate
    /// one of them signed.
    pub tls_client_ca: Option<PathBuf>,
    /// Serve API keys over cleartext on non-loopback addresses.
    pub insecure_no_tls: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_mib: 16,
            drain_ms: 5_000,
            shutdown_grace_ms: 10_000,
            watch_interval_ms: 1_000,
            instances: 256,
            request_timeout_ms: 60_000,
            model_control: ModelControl::Explicit,
            max_connections: 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            cache_dir: None,
            allow_unauthenticated: false,
            trusted_keys: None,
            unseal_key_file: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            insecure_no_tls: false,
        }
    }
}

/// Who decides which models are loaded, as Triton's model control modes.
/// Every mode loads every model of the repository at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelControl {
    /// Nothing changes after start-up: the repository API refuses load and
    /// unload.
    None,
    /// The repository directory decides: it is polled (`--watch`), and the
    /// repository API refuses load and unload.
    Poll,
    /// The repository API loads and unloads (the default).
    Explicit,
}

/// One API key and what it may do.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key itself, or
    #[serde(default)]
    pub key: Option<String>,
    /// its SHA-256, 64 hex digits (`kiln keyhash`): kiln.toml then holds
    /// nothing a caller could present.
    #[serde(default)]
    pub key_sha256: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub admin: bool,
    /// May read `/metrics` (a Prometheus scrape key: nothing else).
    #[serde(default)]
    pub metrics: bool,
}

impl std::fmt::Debug for KeyConfig {
    // Keys are never printed, not even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("key", &"<redacted>")
            .field("key_sha256", &self.key_sha256)
            .field("models", &self.models)
            .field("admin", &self.admin)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        use std::io::Read;
        let read = |source| ConfigError::Read {
            path: path.into(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_FILE {
            return Err(ConfigError::Invalid {
                path: path.into(),
                field: "(the file)".into(),
                message: format!("is over {MAX_FILE} bytes"),
            });
        }
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
            match (&k.key, &k.key_sha256) {
                (Some(key), None) if key.len() < 16 => {
                    return Err(invalid(
                        format!("keys[{i}].key"),
                        "API keys must be at least 16 characters",
                    ));
                }
                (Some(_), None) => {}
                (None, Some(d)) if parse_digest(d).is_none() => {
                    return Err(invalid(
                        format!("keys[{i}].key_sha256"),
                        "must be 64 hexadecimal digits (the SHA-256 `kiln keyhash` prints)",
                    ));
                }
                (None, Some(_)) => {}
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        format!("keys[{i}]"),
                        "give `key` or `key_sha256`, not both",
                    ));
                }
                (None, None) => {
                    return Err(invalid(
                        format!("keys[{i}].key"),
                        "missing: give `key`, or `key_sha256` (from `kiln keyhash`)",
                    ));
                }
            }
            if k.models.is_empty() && !k.admin && !k.metrics {
                return Err(invalid(
                    format!("keys[{i}].models"),
                    "the key may call no model, is not admin and may not read metrics: list models or \"*\"",
                ));
            }
        }
        config
            .model_config()
            .check()
            .map_err(|(field, why)| invalid(field, why))?;
        if config.server.max_body_mib == 0 || config.server.max_body_mib > 4096 {
            return Err(invalid(
                "server.max_body_mib".into(),
                "must be between 1 and 4096",
            ));
        }
        for (field, value) in [
            (
                "server.max_connections",
                config.server.max_connections as u64,
            ),
            ("server.header_timeout_ms", config.server.header_timeout_ms),
            ("server.body_timeout_ms", config.server.body_timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(field.into(), "must be at least 1"));
            }
        }
        if config.server.request_timeout_ms == 0 {
            return Err(invalid(
                "server.request_timeout_ms".into(),
                "must be at least 1",
            ));
        }
        let server = &config.server;
        if server.tls_cert.is_some() != server.tls_key.is_some() {
            return Err(invalid(
                "server.tls_cert".into(),
                "`tls_cert` and `tls_key` go together",
            ));
        }
        if server.tls_client_ca.is_some() && server.tls_cert.is_none() {
            return Err(invalid(
                "server.tls_client_ca".into(),
                "mutual TLS needs TLS: set `tls_cert` and `tls_key` too",
            ));
        }
        if config.server.instances == 0 {
            return Err(invalid("server.instances".into(), "must be at least 1"));
        }
        Ok(config)
    }

    /// The `[defaults]` and `[models.NAME]` sections, for the registry.
    pub fn model_config(&self) -> ModelConfig {
        ModelConfig {
            defaults: self.defaults.clone(),
            models: self.models.clone(),
        }
    }

    /// The effective settings of `model`: its overrides over the defaults.
    pub fn settings(&self, model: &str) -> ModelSettings {
        self.model_config().settings(model)
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

impl KeyConfig {
    /// The SHA-256 of the key, whichever way it was given (checked by
    /// [`Config::parse`]).
    pub fn digest(&self) -> Option<[u8; 32]> {
        use sha2::{Digest, Sha256};
        match (&self.key, &self.key_sha256) {
            (Some(key), _) => Some(Sha256::digest(key.as_bytes()).into()),
            (None, Some(hex)) => parse_digest(hex),
            (None, None) => None,
        }
    }
}

/// 64 hex digits (either case) as 32 bytes.
pub(crate) fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *o = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
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
        assert_eq!(
            c.settings("a").versions,
            crate::registry::VersionPolicy::All
        );
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
    fn digest_pins_are_one_digest_or_a_list() {
        let d = "ab".repeat(32);
        let c = Config::parse(
            &format!("[models.a]\nsha256 = \"{d}\"\n[models.b]\nsha256 = [\"{d}\", \"{d}\"]\n"),
            Path::new("k.toml"),
        )
        .unwrap();
        let m = c.model_config();
        assert_eq!(m.pins("a"), Some(&[d.clone()][..]));
        assert_eq!(m.pins("b").map(<[String]>::len), Some(2));
        assert_eq!(m.pins("c"), None);
        for bad in ["\"abc\"".to_string(), "[]".into(), format!("[\"{d}0\"]")] {
            let e = Config::parse(
                &format!("[models.a]\nsha256 = {bad}\n"),
                Path::new("k.toml"),
            )
            .unwrap_err();
            assert!(e.to_string().contains("models.a.sha256"), "{bad}: {e}");
        }
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

    #[test]
    fn keys_may_be_digests() {
        use sha2::{Digest, Sha256};
        let key = "0123456789abcdef-secret";
        let hex: String = Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let c = Config::parse(
            &format!(
                "[[keys]]\nkey_sha256 = \"{}\"\nmodels = [\"*\"]\n",
                hex.to_uppercase()
            ),
            Path::new("k.toml"),
        )
        .unwrap();
        assert_eq!(
            c.keys[0].digest(),
            Some(Sha256::digest(key.as_bytes()).into())
        );
        for (body, field) in [
            (
                format!("key_sha256 = \"{}\"", &hex[1..]),
                "keys[0].key_sha256",
            ),
            (
                format!("key_sha256 = \"{}g\"", &hex[1..]),
                "keys[0].key_sha256",
            ),
            (
                format!("key = \"{key}\"\nkey_sha256 = \"{hex}\""),
                "keys[0]",
            ),
            (String::new(), "keys[0].key"),
        ] {
            let e = Config::parse(
                &format!("[[keys]]\n{body}\nmodels = [\"*\"]\n"),
                Path::new("k.toml"),
            )
            .unwrap_err();
            assert!(e.to_string().contains(field), "{body}: {e}");
        }
    }
}
