//! What the REST and gRPC handlers share ([`AppState`]), and the steps every
//! request takes whatever its transport: admission (key, readiness, model
//! lookup) and inference with its metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};

use super::auth::{Auth, Scope};
use super::config::ModelControl;
use super::error::ApiError;
use super::metrics::Metrics;
use super::v2::{self, Answer};
use crate::registry::{Principal, Registry, Version};

/// What the handlers share.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub auth: Auth,
    /// Set on SIGTERM: readiness answers 503; requests are still served.
    pub draining: AtomicBool,
    /// Set when the drain period is over and the listeners close: new
    /// inferences answer 503.
    pub closing: AtomicBool,
    pub max_body: usize,
    /// How long a client may take to send a body.
    pub body_timeout: Duration,
    /// Whether the repository API may load and unload.
    pub model_control: ModelControl,
    /// Longest an inference may wait for its answer.
    pub request_timeout: Duration,
    pub static_dir: Option<PathBuf>,
    /// Bound addresses, for the landing page.
    pub http_addr: OnceLock<SocketAddr>,
    pub grpc_addr: OnceLock<SocketAddr>,
}

impl AppState {
    /// 503 once shutting down: readiness, from the start of the drain.
    pub fn check_ready(&self) -> Result<(), ApiError> {
        if self.draining.load(Ordering::Relaxed) {
            Err(ApiError::unavailable("the server is shutting down"))
        } else {
            Ok(())
        }
    }

    /// 503 once the listeners are closing (after the drain period).
    pub fn check_open(&self) -> Result<(), ApiError> {
        if self.closing.load(Ordering::Relaxed) {
            Err(ApiError::unavailable("the server is shutting down"))
        } else {
            Ok(())
        }
    }

    /// 409 unless the repository API may load and unload models.
    pub fn check_model_control(&self) -> Result<(), ApiError> {
        let why = match self.model_control {
            ModelControl::Explicit => return Ok(()),
            ModelControl::Poll => {
                "the server polls the repository (--watch, model_control = \"poll\"): \
                 change its files to load or unload models"
            }
            ModelControl::None => {
                "model control is off (model_control = \"none\"): models change only on restart"
            }
        };
        Err(ApiError::new(StatusCode::CONFLICT, why))
    }

    /// The version an inference request may run on, and who sent it: the
    /// key must allow the model, the server must not be shutting down, the
    /// version must exist.
    pub fn admit(
        &self,
        key: Option<&str>,
        model: &str,
        version: Option<&str>,
    ) -> Result<(Arc<Version>, Principal), ApiError> {
        let principal = self.auth.principal(key, Scope::Model(model))?;
        self.check_open()?;
        let version = self.registry.get(model, version)?;
        super::log::record_model(model, version.version);
        Ok((version, principal))
    }

    /// Validates `request` (or its decoding error) against `version`, runs
    /// it for `from`, and records the request in the version's metrics whatever the
    /// outcome; `started` is when the request arrived.
    pub async fn infer(
        &self,
        (version, from): (&Version, Principal),
        started: Instant,
        request: Result<v2::Request<'_>, ApiError>,
    ) -> Result<Answer, ApiError> {
        let result = async {
            let request = request?;
            let (id, binary_output) = (request.id.clone(), request.binary_output);
            let (rows_data, rows) = v2::validate(version, request)?;
            let outcome = version.infer(rows_data, from, self.request_timeout).await?;
            Ok::<_, ApiError>(Answer {
                id,
                binary_output,
                rows,
                scores: outcome.scores,
                queue: outcome.queue,
            })
        }
        .await;
        let queue = result.as_ref().ok().map(|a: &Answer| a.queue);
        version
            .metrics
            .record_request(result.is_ok(), started.elapsed(), queue);
        result
    }

    /// The whole body, or 413 past the cap.
    ///
    /// A body refused for its size is still read and thrown away, up to
    /// [`LINGER_BYTES`] for at most [`LINGER_TIME`] (nginx's lingering
    /// close): a client that sends its whole body before reading then gets
    /// the 413 instead of a reset connection. A client that sent `Expect:
    /// 100-continue` is answered before it sends the body, which is then not
    /// read at all.
    pub async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
        use http_body_util::BodyExt;
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is over the {}-byte cap (server.max_body_mib in kiln.toml)",
                    self.max_body
                ),
            )
        };
        let mut body = body;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            if !expects_continue(headers) {
                discard(&mut body, 0).await;
            }
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        let read = async {
            while let Some(frame) = body.frame().await {
                let frame = frame
                    .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if bytes.len() + data.len() > self.max_body {
                    discard(&mut body, bytes.len() + data.len()).await;
                    return Err(too_large());
                }
                bytes.extend_from_slice(&data);
            }
            Ok::<_, ApiError>(())
        };
        tokio::time::timeout(self.body_timeout, read)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body took longer than {:?} (server.body_timeout_ms)",
                        self.body_timeout
                    ),
                )
            })??;
        Ok(bytes.into())
    }
}

/// Most bytes of a refused body read and thrown away.
pub(crate) const LINGER_BYTES: usize = 64 << 20;
/// Longest time spent reading a refused body.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(10);

/// Reads and drops the rest of `body` (`seen` bytes of it already read),
/// within [`LINGER_BYTES`] and [`LINGER_TIME`].
async fn discard(body: &mut Body, mut seen: usize) {
    use http_body_util::BodyExt;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while seen <= LINGER_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}

/// Whether the client waits for `100 Continue` before sending its body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
}
