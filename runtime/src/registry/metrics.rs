//! The metrics of each model version: counters and histograms on atomics
//! (the hot path only adds to them), rendered as Prometheus text by
//! [`ModelsMetrics::render`].
//!
//! Triton's names where Triton has the metric (so its dashboards work):
//! `nv_inference_request_success`, `nv_inference_request_failure`,
//! `nv_inference_count` (rows) and `nv_inference_exec_count` (`kiln_run`
//! calls; count / exec_count is the average batch), and the cumulative
//! `nv_inference_request_duration_us`, `nv_inference_queue_duration_us`,
//! `nv_inference_compute_infer_duration_us`. kiln adds histograms of the same
//! three durations (`kiln_request_duration_seconds`,
//! `kiln_queue_duration_seconds`, `kiln_compute_duration_seconds`) and the
//! instance memory of the last call and the largest seen
//! (`kiln_instance_memory_bytes`, `kiln_instance_memory_max_bytes`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sandbox::{Prediction, SandboxError};

/// Upper bounds of the duration histograms, in seconds.
const BUCKETS: [f64; 16] = [
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 0.5,
    1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// The metrics of one model version.
#[derive(Default)]
pub struct ModelMetrics {
    success: AtomicU64,
    failure: AtomicU64,
    inferences: AtomicU64,
    executions: AtomicU64,
    request: Histogram,
    queue: Histogram,
    compute: Histogram,
    memory: AtomicU64,
    memory_max: AtomicU64,
}

impl ModelMetrics {
    /// One `kiln_run` call over `rows` rows.
    pub fn record_execution(&self, rows: usize, result: &Result<Prediction, SandboxError>) {
        self.executions.fetch_add(1, Relaxed);
        if let Ok(p) = result {
            self.inferences.fetch_add(rows as u64, Relaxed);
            self.compute.observe(p.instantiate + p.compute);
            self.memory.store(p.memory_bytes as u64, Relaxed);
            self.memory_max.fetch_max(p.memory_bytes as u64, Relaxed);
        }
    }

    /// One inference request, end to end.
    pub fn record_request(&self, ok: bool, total: Duration, queue: Option<Duration>) {
        if ok {
            self.success.fetch_add(1, Relaxed);
        } else {
            self.failure.fetch_add(1, Relaxed);
        }
        self.request.observe(total);
        if let Some(q) = queue {
            self.queue.observe(q);
        }
    }

    /// (success, failure, inference count, execution count).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        (
            self.success.load(Relaxed),
            self.failure.load(Relaxed),
            self.inferences.load(Relaxed),
            self.executions.load(Relaxed),
        )
    }
}

/// Every model version's metrics, kept across reloads.
#[derive(Default)]
pub struct ModelsMetrics {
    models: Mutex<BTreeMap<(String, String), Arc<ModelMetrics>>>,
}

impl ModelsMetrics {
    /// The metrics of `model` version `version` (kept across reloads).
    pub fn model(&self, model: &str, version: &str) -> Arc<ModelMetrics> {
        let mut m = self.models.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((model.into(), version.into())).or_default().clone()
    }

    /// Appends the text exposition of every version to `out`.
    pub fn render(&self, out: &mut String) {
        let models = self
            .models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        type Get = fn(&ModelMetrics) -> u64;
        let counters: [(&str, &str, Get); 7] = [
            ("nv_inference_request_success", "counter", |m| {
                m.success.load(Relaxed)
            }),
            ("nv_inference_request_failure", "counter", |m| {
                m.failure.load(Relaxed)
            }),
            ("nv_inference_count", "counter", |m| {
                m.inferences.load(Relaxed)
            }),
            ("nv_inference_exec_count", "counter", |m| {
                m.executions.load(Relaxed)
            }),
            ("nv_inference_request_duration_us", "counter", |m| {
                m.request.sum_us.load(Relaxed)
            }),
            ("nv_inference_queue_duration_us", "counter", |m| {
                m.queue.sum_us.load(Relaxed)
            }),
            ("nv_inference_compute_infer_duration_us", "counter", |m| {
                m.compute.sum_us.load(Relaxed)
            }),
        ];
        let gauges: [(&str, &str, Get); 2] = [
            ("kiln_instance_memory_bytes", "gauge", |m| {
                m.memory.load(Relaxed)
            }),
            ("kiln_instance_memory_max_bytes", "gauge", |m| {
                m.memory_max.load(Relaxed)
            }),
        ];
        for (name, kind, get) in counters.iter().chain(&gauges) {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for ((model, version), m) in &models {
                let _ = writeln!(
                    out,
                    "{name}{{model=\"{}\",version=\"{}\"}} {}",
                    escape(model),
                    escape(version),
                    get(m)
                );
            }
        }
        type Hist = fn(&ModelMetrics) -> &Histogram;
        let hists: [(&str, Hist); 3] = [
            ("kiln_request_duration_seconds", |m| &m.request),
            ("kiln_queue_duration_seconds", |m| &m.queue),
            ("kiln_compute_duration_seconds", |m| &m.compute),
        ];
        for (name, get) in hists {
            let _ = writeln!(out, "# TYPE {name} histogram");
            for ((model, version), m) in &models {
                let labels = format!(
                    "model=\"{}\",version=\"{}\"",
                    escape(model),
                    escape(version)
                );
                get(m).render(out, name, &labels);
            }
        }
    }
}

/// Escapes a Prometheus label value.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = ModelsMetrics::default();
        let mm = m.model("a\"b", "1");
        mm.record_request(
            true,
            Duration::from_micros(80),
            Some(Duration::from_micros(10)),
        );
        mm.record_request(false, Duration::from_millis(3), None);
        let mut text = String::new();
        m.render(&mut text);
        assert!(text.contains("nv_inference_request_success{model=\"a\\\"b\",version=\"1\"} 1"));
        assert!(text.contains("nv_inference_request_failure{model=\"a\\\"b\",version=\"1\"} 1"));
        assert!(text.contains(
            "kiln_request_duration_seconds_bucket{model=\"a\\\"b\",version=\"1\",le=\"0.0001\"} 1"
        ));
        assert!(text.contains(
            "kiln_request_duration_seconds_bucket{model=\"a\\\"b\",version=\"1\",le=\"0.005\"} 2"
        ));
        assert!(
            text.contains("kiln_request_duration_seconds_count{model=\"a\\\"b\",version=\"1\"} 2")
        );
    }
}
