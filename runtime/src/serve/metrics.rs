//! `GET /metrics`: Prometheus text. The per-model metrics live with the
//! models ([`crate::registry::ModelsMetrics`]); the server adds
//! `kiln_models_loaded` and responses by status (`kiln_http_responses_total`,
//! `kiln_grpc_responses_total`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use crate::registry::ModelsMetrics;

/// The server's metrics: every model version's, and responses by status.
#[derive(Default)]
pub struct Metrics {
    pub models: Arc<ModelsMetrics>,
    responses: Mutex<BTreeMap<u16, u64>>,
    grpc: Mutex<BTreeMap<i32, u64>>,
}

impl Metrics {
    pub fn record_response(&self, status: u16) {
        let mut r = self.responses.lock().unwrap_or_else(|p| p.into_inner());
        *r.entry(status).or_default() += 1;
    }

    pub fn record_grpc(&self, code: tonic::Code) {
        let mut r = self.grpc.lock().unwrap_or_else(|p| p.into_inner());
        *r.entry(code as i32).or_default() += 1;
    }

    /// The text exposition; `loaded` is the number of model versions loaded.
    pub fn render(&self, loaded: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE kiln_models_loaded gauge");
        let _ = writeln!(out, "kiln_models_loaded {loaded}");
        self.models.render(&mut out);
        let _ = writeln!(out, "# TYPE kiln_http_responses_total counter");
        for (code, n) in self
            .responses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(out, "kiln_http_responses_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(out, "# TYPE kiln_grpc_responses_total counter");
        for (&code, n) in self.grpc.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let name = format!("{:?}", tonic::Code::from(code));
            let _ = writeln!(out, "kiln_grpc_responses_total{{code=\"{name}\"}} {n}");
        }
        // Log lines dropped on the writer thread's full queue (super::log).
        let _ = writeln!(out, "# TYPE kiln_log_lines_dropped_total counter");
        let dropped = super::log::dropped_lines();
        let _ = writeln!(out, "kiln_log_lines_dropped_total {dropped}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_loaded_and_responses_are_rendered() {
        let m = Metrics::default();
        m.record_response(404);
        m.record_response(404);
        let text = m.render(1);
        assert!(text.contains("kiln_models_loaded 1"), "{text}");
        assert!(text.contains("\nkiln_log_lines_dropped_total "), "{text}");
        assert!(
            text.contains("kiln_http_responses_total{code=\"404\"} 2"),
            "{text}"
        );
    }
}
