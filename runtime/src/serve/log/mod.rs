//! What `kiln serve` writes to its log: the `tracing` subscriber ([`init`]:
//! text or JSON lines on stderr, the level from `--log-level` or
//! `KILN_LOG`), a request id per request, and one access line per request
//! on both transports ([`AccessLogLayer`]).
//!
//! Lines are formatted on the thread that logs them and gathered in one
//! bounded buffer that a thread of its own writes out ([`writer`]): a
//! request never waits on stderr nor wakes a thread, and lines leave many
//! to a write. Past the buffer's bound, lines are dropped and counted
//! ([`dropped_lines`], `kiln_log_lines_dropped_total` in `/metrics`)
//! rather than slowing requests down.
//!
//! An access line holds the request's id, the transport, method, route,
//! the model and version the request resolved to, the status, the latency
//! and the response's size, as fields of one event (no span: a request
//! costs one formatted line). Headers, bodies and error messages are never
//! logged (an error message may quote the request), so no key and no input
//! value can reach a log line.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::HttpBody;
use axum::extract::MatchedPath;
use axum::http::{HeaderMap, HeaderValue, Request, Response};
use tracing_subscriber::EnvFilter;

mod writer;

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// The environment variable read when `--log-level` is not given.
pub const LOG_ENV: &str = "KILN_LOG";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, the event's fields flattened in.
    Json,
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "{source_of_level}: `{level}` is not a log filter (e.g. `info`, `warn,kiln::access=off`): {why}"
    )]
    Filter {
        source_of_level: &'static str,
        level: String,
        why: String,
    },
    #[error("starting the log's writer thread: {0}")]
    Thread(std::io::Error),
}

/// The installed subscriber's writer, for its count of dropped lines.
static WRITER: OnceLock<writer::BufferedWriter> = OnceLock::new();

/// Lines dropped so far because the log's buffer was full (0 before
/// [`init`]).
pub(crate) fn dropped_lines() -> usize {
    WRITER
        .get()
        .map_or(0, writer::BufferedWriter::dropped_lines)
}

/// Keeps the log's writer thread; dropping it writes out what is queued.
/// Hold it until the process is done logging.
#[must_use = "dropping the guard stops the log's writer thread"]
pub struct LogGuard {
    _writer: Option<writer::WriterGuard>,
}

/// Installs the process's subscriber: `level` (an `EnvFilter` directive
/// such as `info` or `info,kiln::access=off`), else `KILN_LOG`, else
/// `info`. A second call leaves the first subscriber in place (and its
/// guard holds nothing).
pub fn init(format: LogFormat, level: Option<&str>) -> Result<LogGuard, LogError> {
    let env = std::env::var(LOG_ENV).ok();
    let (directive, source_of_level) = match (level, env.as_deref()) {
        (Some(l), _) => (l, "--log-level"),
        (None, Some(e)) => (e, LOG_ENV),
        (None, None) => ("info", "the default"),
    };
    let filter = EnvFilter::try_new(directive).map_err(|e| LogError::Filter {
        source_of_level,
        level: directive.to_string(),
        why: e.to_string(),
    })?;
    let (writer, guard) = writer::spawn(std::io::stderr()).map_err(LogError::Thread)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    let installed = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_err() {
        return Ok(LogGuard { _writer: None });
    }
    let _ = WRITER.set(writer);
    Ok(LogGuard {
        _writer: Some(guard),
    })
}

/// Longest caller-sent request id kept; a longer one is replaced.
const MAX_ID: usize = 128;

/// The caller's `x-request-id` when it is a plain token of at most
/// [`MAX_ID`] bytes (as ingress controllers send: a UUID or hex), else a
/// fresh one: this process's random prefix and a counter.
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b);
    if let Some(v) = headers.get(REQUEST_ID)
        && (1..=MAX_ID).contains(&v.len())
        && v.as_bytes().iter().all(plain)
    {
        return v.clone();
    }
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        // Without entropy the ids are still unique within this process.
        let _ = getrandom::fill(&mut b);
        u64::from_le_bytes(b)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{prefix:016x}-{n}")).expect("hex and digits")
}

tokio::task_local! {
    /// The model and version the current request resolved to, for its
    /// access line.
    static RESOLVED: RefCell<Option<(String, u64)>>;
}

/// Records the model and version the current request resolved to (a
/// loaded model's name, never the caller's raw text), outside a request
/// nothing.
pub(crate) fn record_model(model: &str, version: u64) {
    let _ = RESOLVED.try_with(|r| *r.borrow_mut() = Some((model.to_string(), version)));
}

/// The transport a [`AccessLog`] wraps, which decides where its status is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The HTTP status; the route is axum's matched path.
    Rest,
    /// `grpc-status` (a trailers-only answer carries it in the headers; a
    /// successful unary answer in the trailers, so its absence is OK);
    /// the route is the method's path.
    Grpc,
}

/// A [`tower::Layer`] that gives each request an id (echoed in the
/// response's `x-request-id`) and writes its access line.
#[derive(Debug, Clone, Copy)]
pub struct AccessLogLayer(pub Transport);

impl<S> tower::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            transport: self.0,
        }
    }
}

/// The service [`AccessLogLayer`] makes.
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
    transport: Transport,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for AccessLog<S> {
    const NAME: &'static str = S::NAME;
}

/// Longest route written as the caller sent it (gRPC method paths).
const MAX_ROUTE: usize = 96;

impl<S, B, RB> tower::Service<Request<B>> for AccessLog<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    RB: HttpBody,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let id = request_id(req.headers());
        req.headers_mut().insert(REQUEST_ID, id.clone());
        let line = Line {
            transport: self.transport,
            method: req.method().clone(),
            route: match self.transport {
                Transport::Rest => req
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("-", MatchedPath::as_str),
                Transport::Grpc => req.uri().path(),
            }
            .chars()
            .take(MAX_ROUTE)
            .collect(),
            started,
        };
        let future = self.inner.call(req);
        Box::pin(RESOLVED.scope(RefCell::new(None), async move {
            let result = future.await;
            if let Ok(response) = &result {
                let resolved = RESOLVED.with(|r| r.borrow_mut().take());
                line.write(&id, resolved, response);
            }
            result.map(|mut response| {
                response.headers_mut().insert(REQUEST_ID, id);
                response
            })
        }))
    }
}

/// What an access line says of the request, kept from its start.
struct Line {
    transport: Transport,
    method: axum::http::Method,
    route: String,
    started: Instant,
}

impl Line {
    /// The access line of a finished request.
    fn write<RB: HttpBody>(
        &self,
        id: &HeaderValue,
        resolved: Option<(String, u64)>,
        response: &Response<RB>,
    ) {
        let micros = self.started.elapsed().as_micros() as u64;
        let bytes = response.body().size_hint().exact();
        let (model, version) = resolved.unzip();
        let status = match self.transport {
            Transport::Rest => response.status().as_u16(),
            Transport::Grpc => response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u16>().ok())
                .unwrap_or(0),
        };
        let id = id.to_str().unwrap_or("-");
        let (transport, method, route) = (self.transport, &self.method, &self.route);
        let model = model.as_deref();
        match transport {
            Transport::Rest => tracing::info!(
                target: "kiln::access",
                id, ?transport, %method, %route, model, version, status, micros, bytes,
            ),
            Transport::Grpc => tracing::info!(
                target: "kiln::access",
                id, ?transport, %method, %route, model, version, grpc_status = status, micros, bytes,
            ),
        }
    }
}
