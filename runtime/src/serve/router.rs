//! The REST side: the KServe v2 routes, model downloads, `/metrics` and the
//! landing page, as one [`Router`] built by [`router`] (tested without a
//! socket through `tower::ServiceExt::oneshot`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::auth::{Scope, presented};
use super::error::ApiError;
use super::v2::{self, InferRequest, InferResponse, Input, ResponseOutput, Values};
use super::{AppState, demo};
use crate::registry::Version;

/// Header of the binary tensor data extension: length of the JSON part.
pub const HEADER_LEN: &str = "inference-header-content-length";

type Result<T> = std::result::Result<T, ApiError>;

/// Every route of the REST server.
pub fn router(state: Arc<AppState>) -> Router {
    let v2 = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{m}", get(metadata))
        .route("/v2/models/{m}/versions/{v}", get(metadata))
        .route("/v2/models/{m}/ready", get(ready_model))
        .route("/v2/models/{m}/versions/{v}/ready", get(ready_model))
        .route("/v2/models/{m}/infer", post(infer))
        .route("/v2/models/{m}/versions/{v}/infer", post(infer))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{m}/load", post(repository_load))
        .route("/v2/repository/models/{m}/unload", post(repository_unload))
        .route("/models/{m}/{file}", get(download))
        .route("/models/{m}/versions/{v}/{file}", get(download))
        .route("/metrics", get(metrics));
    let app = match &state.static_dir {
        Some(dir) => v2.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => v2.route("/", get(page)).fallback(not_found),
    };
    app.layer(middleware::from_fn_with_state(
        state.clone(),
        count_responses,
    ))
    .with_state(state)
}

async fn count_responses(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    s.metrics.record_response(r.status().as_u16());
    r
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the KServe v2 API is under /v2 (see GET /)")
}

async fn page(State(s): State<Arc<AppState>>) -> Html<String> {
    Html(demo::page(&s))
}

async fn live() -> impl IntoResponse {
    axum::Json(json!({ "live": true }))
}

async fn ready(State(s): State<Arc<AppState>>) -> Result<impl IntoResponse> {
    s.check_ready()?;
    if !s.registry.all_ready() {
        return Err(ApiError::unavailable(
            "not every model is ready (see POST /v2/repository/index)",
        ));
    }
    Ok(axum::Json(json!({ "ready": true })))
}

async fn server_metadata() -> impl IntoResponse {
    axum::Json(json!({
        "name": "kiln",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["model_repository", "binary_tensor_data"],
    }))
}

/// The path of a model route: `{m}`, and `{v}` on the route's
/// `/versions/{v}` twin (absent on the unversioned one, meaning the
/// version policy's latest). One handler serves both routes.
#[derive(Deserialize)]
struct ModelPath {
    m: String,
    v: Option<String>,
}

async fn metadata(
    State(s): State<Arc<AppState>>,
    Path(ModelPath { m, v }): Path<ModelPath>,
    headers: HeaderMap,
) -> Result<Response> {
    s.auth.check(presented(&headers), Scope::Model(&m))?;
    let version = s.registry.get(&m, v.as_deref())?;
    let versions = s.registry.versions(&m);
    Ok(axum::Json(v2::ModelMetadata::of(&version, &versions)).into_response())
}

async fn ready_model(
    State(s): State<Arc<AppState>>,
    Path(ModelPath { m, v }): Path<ModelPath>,
    headers: HeaderMap,
) -> Result<Response> {
    s.auth.check(presented(&headers), Scope::Model(&m))?;
    s.check_ready()?;
    s.registry.get(&m, v.as_deref())?;
    Ok(axum::Json(json!({ "name": m, "ready": true })).into_response())
}

async fn infer(
    State(s): State<Arc<AppState>>,
    Path(ModelPath { m, v }): Path<ModelPath>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    run_infer(&s, &m, v.as_deref(), &headers, body).await
}

async fn run_infer(
    s: &AppState,
    m: &str,
    v: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let started = Instant::now();
    s.auth.check(presented(headers), Scope::Model(m))?;
    s.check_ready()?;
    let version = s.registry.get(m, v)?;
    let result = infer_version(s, &version, headers, body).await;
    let queue = result.as_ref().ok().map(|(_, q)| *q);
    version
        .metrics
        .record_request(result.is_ok(), started.elapsed(), queue);
    result.map(|(r, _)| r)
}

async fn infer_version(
    s: &AppState,
    version: &Version,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Response, std::time::Duration)> {
    let header_len = match headers.get(HEADER_LEN) {
        None => None,
        Some(h) => Some(
            h.to_str()
                .ok()
                .and_then(|h| h.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("header {HEADER_LEN} must be a byte count"))
                })?,
        ),
    };
    check_content_type(headers, header_len.is_some())?;
    let body = s.read_body(headers, body).await?;
    let (json_part, mut binary) = match header_len {
        None => (&body[..], &body[body.len()..]),
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "header {HEADER_LEN} is {n} but the body has only {} bytes",
                body.len()
            )));
        }
    };
    let req: InferRequest = parse_json(json_part)?;
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for input in &req.inputs {
        let values = match (v2::binary_size(input)?, &input.data) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(format!(
                    "input `{}` has both `data` and parameters.binary_data_size",
                    input.name
                )));
            }
            (Some(n), None) => {
                if n > binary.len() {
                    return Err(ApiError::bad_request(format!(
                        "input `{}`: binary_data_size is {n} but only {} bytes of binary data remain",
                        input.name,
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(n);
                binary = rest;
                Values::Raw(mine)
            }
            (None, Some(d)) => Values::Numbers(d.0.clone()),
            (None, None) => Values::Absent,
        };
        inputs.push(Input {
            name: &input.name,
            datatype: &input.datatype,
            shape: &input.shape,
            values,
        });
    }
    if !binary.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} bytes of binary data follow the JSON that no input claims (binary_data_size)",
            binary.len()
        )));
    }
    let (rows_data, rows) = v2::validate(version, inputs)?;
    let outputs = req.outputs.as_deref().unwrap_or_default();
    v2::check_outputs(version, outputs.iter().map(|o| o.name.as_str()))?;
    let all_binary = v2::flag(&req.parameters, "binary_data_output");
    let binary_out = match outputs.first() {
        Some(o) => match o.parameters.as_ref().and_then(|p| p.get("binary_data")) {
            Some(b) => b.as_bool().unwrap_or(false),
            None => all_binary,
        },
        None => all_binary,
    };

    let outcome = version.infer(rows_data).await?;
    let out_len = version.output_len();
    let raw: Vec<u8> = if binary_out {
        outcome
            .scores
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect()
    } else {
        Vec::new()
    };
    let response = InferResponse {
        model_name: &version.name,
        model_version: version.version.to_string(),
        id: req.id.as_deref(),
        outputs: vec![ResponseOutput {
            name: &version.meta.output.name,
            datatype: "FP32",
            shape: [rows, out_len],
            parameters: binary_out.then(|| json!({ "binary_data_size": raw.len() })),
            data: (!binary_out).then_some(&outcome.scores[..]),
        }],
    };
    let mut json_bytes = serde_json::to_vec(&response).expect("response serialises");
    let r = if binary_out {
        let len = json_bytes.len();
        json_bytes.extend_from_slice(&raw);
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (
                    header::HeaderName::from_static(HEADER_LEN),
                    HeaderValue::from(len),
                ),
            ],
            json_bytes,
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json_bytes,
        )
            .into_response()
    };
    Ok((r, outcome.queue))
}

/// 415 unless the body is JSON (or, with the binary extension, octet-stream).
fn check_content_type(headers: &HeaderMap, binary: bool) -> Result<()> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    let ok = essence == "application/json"
        || (binary && essence == "application/octet-stream")
        || essence.is_empty();
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type `{essence}` is not supported: send application/json{}",
                if binary {
                    " or application/octet-stream"
                } else {
                    ""
                }
            ),
        ))
    }
}

/// Parses JSON, naming the field of the first error; serde_json's nesting
/// limit (128) turns absurdly deep documents into a 400.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON body at `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

async fn repository_index(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    s.auth.check(presented(&headers), Scope::Admin)?;
    let body = s.read_body(&headers, body).await?;
    let ready_only = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        let v: serde_json::Value = parse_json(&body)?;
        v.get("ready").and_then(|r| r.as_bool()).unwrap_or(false)
    };
    let index: Vec<_> = s
        .registry
        .index()
        .into_iter()
        .filter(|e| !ready_only || e.state == "READY")
        .collect();
    Ok(axum::Json(index).into_response())
}

async fn repository_load(
    State(s): State<Arc<AppState>>,
    Path(m): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    s.auth.check(presented(&headers), Scope::Admin)?;
    repository_body(&s, &headers, body).await?;
    s.registry.load(&m).await?;
    Ok(axum::Json(json!({})).into_response())
}

async fn repository_unload(
    State(s): State<Arc<AppState>>,
    Path(m): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    s.auth.check(presented(&headers), Scope::Admin)?;
    repository_body(&s, &headers, body).await?;
    s.registry.unload(&m).await?;
    Ok(axum::Json(json!({})).into_response())
}

/// Load and unload bodies may be empty or `{"parameters": {…}}`; kiln uses
/// no parameter but refuses malformed JSON.
async fn repository_body(s: &AppState, headers: &HeaderMap, body: Body) -> Result<()> {
    check_content_type(headers, false)?;
    let body = s.read_body(headers, body).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let _: serde_json::Value = parse_json(&body)?;
    }
    Ok(())
}

/// The path of a download route (`{v}` as in [`ModelPath`]).
#[derive(Deserialize)]
struct FilePath {
    m: String,
    v: Option<String>,
    file: String,
}

async fn download(
    State(s): State<Arc<AppState>>,
    Path(FilePath { m, v, file }): Path<FilePath>,
    headers: HeaderMap,
) -> Result<Response> {
    serve_file(&s, &m, v.as_deref(), &file, &headers)
}

/// `GET /models/{m}[/versions/{v}]/model.wasm` (or `model.safetensors`).
fn serve_file(
    s: &AppState,
    m: &str,
    v: Option<&str>,
    file: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    s.auth.check(presented(headers), Scope::Model(m))?;
    let version = s.registry.get(m, v)?;
    let (bytes, ct) = match file {
        "model.wasm" => (version.wasm.clone(), "application/wasm"),
        "model.safetensors" => (
            version.safetensors.clone().ok_or_else(|| {
                ApiError::not_found(format!(
                    "model `{m}` version {} has no model.safetensors in the repository",
                    version.version
                ))
            })?,
            "application/octet-stream",
        ),
        _ => {
            return Err(ApiError::not_found(format!(
                "no file `{file}`: models offer model.wasm and model.safetensors"
            )));
        }
    };
    let etag = format!("\"{}\"", version.digest);
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ct)),
            (
                header::ETAG,
                HeaderValue::from_str(&etag).expect("hex etag"),
            ),
        ],
        Body::from(Bytes::copy_from_slice(&bytes)),
    )
        .into_response())
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        s.metrics.render(s.registry.loaded_versions()),
    )
        .into_response()
}

impl AppState {
    /// 503 while shutting down.
    pub fn check_ready(&self) -> Result<()> {
        if self.draining.load(Ordering::Relaxed) {
            Err(ApiError::unavailable("the server is shutting down"))
        } else {
            Ok(())
        }
    }

    /// The whole body, or 413 past the cap.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is over the {}-byte cap (server.max_body_mib in kiln.toml)",
                    self.max_body
                ),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large());
        }
        axum::body::to_bytes(body, self.max_body)
            .await
            .map_err(|e| {
                if std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                {
                    too_large()
                } else {
                    ApiError::bad_request(format!("reading the request body: {e}"))
                }
            })
    }
}
