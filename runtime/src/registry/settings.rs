//! Per-model settings: the sandbox limits, batching and version policy of
//! each model, as `kiln.toml`'s `[defaults]` and `[models.NAME]` give them
//! (the file itself is read by `serve::config`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::sandbox::Limits;

/// Sandbox, batching and version settings of one model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    pub memory_mib: usize,
    pub timeout_ms: u64,
    pub module_mib: usize,
    /// Largest `model.safetensors` read (to offer for download).
    pub model_file_mib: usize,
    pub max_batch: usize,
    pub max_queue_delay_us: u64,
    /// Requests of one version that may wait to start (more: 503).
    pub max_queue: usize,
    /// How long a request may wait to start (then: 503).
    pub queue_timeout_ms: u64,
    /// Whether requests of different API keys may share a batch (and so
    /// one instance of the module).
    pub batch_across_keys: bool,
    /// How long a load waits for the module to compile.
    pub compile_timeout_ms: u64,
    pub versions: VersionPolicy,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            memory_mib: 64,
            timeout_ms: 1_000,
            module_mib: 64,
            model_file_mib: 256,
            max_batch: 8,
            max_queue_delay_us: 0,
            max_queue: 256,
            queue_timeout_ms: 5_000,
            batch_across_keys: false,
            compile_timeout_ms: 60_000,
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

    /// The first setting out of range, as (field, why).
    fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.max_batch == 0 {
            return Err(("max_batch", "must be at least 1"));
        }
        if self.memory_mib == 0 || self.memory_mib > 4096 {
            return Err((
                "memory_mib",
                "must be between 1 and 4096 (a 32-bit module addresses 4 GiB)",
            ));
        }
        if self.module_mib == 0 || self.module_mib > 4096 {
            return Err(("module_mib", "must be between 1 and 4096"));
        }
        if self.model_file_mib == 0 || self.model_file_mib > 4096 {
            return Err(("model_file_mib", "must be between 1 and 4096"));
        }
        if self.timeout_ms == 0 {
            return Err(("timeout_ms", "must be at least 1"));
        }
        if self.compile_timeout_ms == 0 {
            return Err(("compile_timeout_ms", "must be at least 1"));
        }
        if self.max_queue == 0 {
            return Err(("max_queue", "must be at least 1"));
        }
        if self.queue_timeout_ms == 0 {
            return Err(("queue_timeout_ms", "must be at least 1"));
        }
        Ok(())
    }
}

/// `[models.NAME]`: any subset of [`ModelSettings`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelOverrides {
    pub memory_mib: Option<usize>,
    pub timeout_ms: Option<u64>,
    pub module_mib: Option<usize>,
    pub model_file_mib: Option<usize>,
    pub max_batch: Option<usize>,
    pub max_queue_delay_us: Option<u64>,
    pub max_queue: Option<usize>,
    pub queue_timeout_ms: Option<u64>,
    pub batch_across_keys: Option<bool>,
    pub compile_timeout_ms: Option<u64>,
    pub versions: Option<VersionPolicy>,
    /// Digest pins: the model's file (a module, or a model imported on
    /// load; after unsealing) must have one of these hex sha256 digests.
    pub sha256: Option<Pins>,
}

/// `sha256 = "…"` or `sha256 = ["…", "…"]` (one per version served).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "PinsRepr")]
pub struct Pins(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum PinsRepr {
    One(String),
    Many(Vec<String>),
}

impl From<PinsRepr> for Pins {
    fn from(r: PinsRepr) -> Pins {
        match r {
            PinsRepr::One(p) => Pins(vec![p]),
            PinsRepr::Many(p) => Pins(p),
        }
    }
}

/// The settings of every model: defaults, and overrides by model name.
#[derive(Debug, Clone, Default)]
pub struct ModelConfig {
    pub defaults: ModelSettings,
    pub models: BTreeMap<String, ModelOverrides>,
}

impl ModelConfig {
    /// The effective settings of `model`: its overrides over the defaults.
    pub fn settings(&self, model: &str) -> ModelSettings {
        let mut s = self.defaults.clone();
        if let Some(o) = self.models.get(model) {
            s.memory_mib = o.memory_mib.unwrap_or(s.memory_mib);
            s.timeout_ms = o.timeout_ms.unwrap_or(s.timeout_ms);
            s.module_mib = o.module_mib.unwrap_or(s.module_mib);
            s.model_file_mib = o.model_file_mib.unwrap_or(s.model_file_mib);
            s.max_batch = o.max_batch.unwrap_or(s.max_batch);
            s.max_queue_delay_us = o.max_queue_delay_us.unwrap_or(s.max_queue_delay_us);
            s.max_queue = o.max_queue.unwrap_or(s.max_queue);
            s.queue_timeout_ms = o.queue_timeout_ms.unwrap_or(s.queue_timeout_ms);
            s.batch_across_keys = o.batch_across_keys.unwrap_or(s.batch_across_keys);
            s.compile_timeout_ms = o.compile_timeout_ms.unwrap_or(s.compile_timeout_ms);
            s.versions = o.versions.clone().unwrap_or(s.versions);
        }
        s
    }

    /// The digests `model`'s file is pinned to, if any.
    pub fn pins(&self, model: &str) -> Option<&[String]> {
        Some(self.models.get(model)?.sha256.as_ref()?.0.as_slice())
    }

    /// The largest memory cap any model gets (sizes the instance pool).
    pub fn max_memory_bytes(&self) -> usize {
        self.models
            .keys()
            .map(|m| self.settings(m).memory_mib)
            .fold(self.defaults.memory_mib, usize::max)
            << 20
    }

    /// Checks every model's effective settings; an error names the field
    /// (`defaults.max_batch`, `models.NAME.timeout_ms`) and says why.
    pub fn check(&self) -> Result<(), (String, &'static str)> {
        let all = std::iter::once(("defaults".to_string(), self.defaults.clone())).chain(
            self.models
                .keys()
                .map(|m| (format!("models.{m}"), self.settings(m))),
        );
        for (name, s) in all {
            s.check()
                .map_err(|(field, why)| (format!("{name}.{field}"), why))?;
        }
        for (name, o) in &self.models {
            let hex = |p: &String| p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit());
            if o.sha256
                .as_ref()
                .is_some_and(|p| p.0.is_empty() || !p.0.iter().all(hex))
            {
                return Err((
                    format!("models.{name}.sha256"),
                    "must be a sha256 digest (64 hex digits) or a non-empty list of them",
                ));
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_policies_select() {
        let v = [1, 2, 5, 7];
        assert_eq!(VersionPolicy::Latest(2).select(&v), vec![5, 7]);
        assert_eq!(VersionPolicy::Latest(9).select(&v), v.to_vec());
        assert_eq!(VersionPolicy::All.select(&v), v.to_vec());
        assert_eq!(VersionPolicy::Specific(vec![2, 3]).select(&v), vec![2]);
    }
}
