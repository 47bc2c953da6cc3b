//! `GET /metrics`: Prometheus text. The per-model metrics live with the
//! models ([`crate::registry::ModelsMetrics`]); the server adds
//! `kiln_models_loaded` and responses by status (`kiln_http_responses_total`,
//! `kiln_grpc_responses_total`).

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::registry::ModelsMetrics;

/// The HTTP status codes counted one by one: 100 to 599.
const HTTP_CODES: std::ops::Range<u16> = 100..600;
/// gRPC status codes: 0 (OK) to 16 (UNAUTHENTICATED).
const GRPC_CODES: usize = 17;

/// The server's metrics: every model version's, and responses by status
/// (a counter per code: every request bumps one without a lock).
pub struct Metrics {
    pub models: Arc<ModelsMetrics>,
    responses: Vec<AtomicU64>,
    grpc: [AtomicU64; GRPC_CODES],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            models: Arc::default(),
            responses: HTTP_CODES.map(|_| AtomicU64::new(0)).collect(),
            grpc: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Metrics {
    pub fn record_response(&self, status: u16) {
        if let Some(n) = self
            .responses
            .get(usize::from(status.wrapping_sub(HTTP_CODES.start)))
        {
            n.fetch_add(1, Relaxed);
        }
    }

    pub fn record_grpc(&self, code: tonic::Code) {
        if let Some(n) = self.grpc.get(code as usize) {
            n.fetch_add(1, Relaxed);
        }
    }

    /// The text exposition; `loaded` is the number of model versions loaded.
    pub fn render(&self, loaded: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE kiln_models_loaded gauge");
        let _ = writeln!(out, "kiln_models_loaded {loaded}");
        self.models.render(&mut out);
        let _ = writeln!(out, "# TYPE kiln_http_responses_total counter");
        for (code, n) in HTTP_CODES.zip(&self.responses) {
            let n = n.load(Relaxed);
            if n > 0 {
                let _ = writeln!(out, "kiln_http_responses_total{{code=\"{code}\"}} {n}");
            }
        }
        let _ = writeln!(out, "# TYPE kiln_grpc_responses_total counter");
        for (code, n) in (0..).zip(&self.grpc) {
            let n = n.load(Relaxed);
            if n > 0 {
                let name = format!("{:?}", tonic::Code::from(code));
                let _ = writeln!(out, "kiln_grpc_responses_total{{code=\"{name}\"}} {n}");
            }
        }
        // Log lines dropped on a full log buffer (super::log).
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
