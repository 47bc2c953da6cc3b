//! The REST side: the KServe v2 routes, model downloads, `/metrics`, the
//! OpenAPI document and the landing page, as one [`Router`] built by
//! [`router`] (tested without a socket through `tower::ServiceExt::oneshot`),
//! each request logged by [`super::log`].

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use serde_json::json;

use super::auth::{Scope, presented};
use super::error::ApiError;
use super::log::{AccessLogLayer, Transport};
use super::page;
use super::state::AppState;
use super::v2::{self, json::parse_json};

type Result<T> = std::result::Result<T, ApiError>;

/// Every route of the REST server: [`routes`], then `/` (the landing page,
/// or the `--static` directory).
pub fn router(state: Arc<AppState>) -> Router {
    let mut app = Router::new();
    for (path, _, route) in routes() {
        app = app.route(path, route);
    }
    let app = match &state.static_dir {
        Some(dir) => app.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => app.route("/", get(page)).fallback(not_found),
    };
    app.layer(middleware::from_fn_with_state(
        state.clone(),
        count_responses,
    ))
    .layer(AccessLogLayer(Transport::Rest))
    .with_state(state)
}

/// The routes besides `/`, each with its one method: what
/// `docs/openapi.yaml` (served at `/openapi.yaml`) must describe, path for
/// path (a test compares them).
pub(crate) fn routes() -> Vec<(&'static str, Method, MethodRouter<Arc<AppState>>)> {
    vec![
        ("/v2", Method::GET, get(server_metadata)),
        ("/v2/health/live", Method::GET, get(live)),
        ("/v2/health/ready", Method::GET, get(ready)),
        ("/v2/models/{m}", Method::GET, get(metadata)),
        ("/v2/models/{m}/versions/{v}", Method::GET, get(metadata)),
        ("/v2/models/{m}/ready", Method::GET, get(ready_model)),
        (
            "/v2/models/{m}/versions/{v}/ready",
            Method::GET,
            get(ready_model),
        ),
        ("/v2/models/{m}/infer", Method::POST, post(infer)),
        (
            "/v2/models/{m}/versions/{v}/infer",
            Method::POST,
            post(infer),
        ),
        ("/v2/repository/index", Method::POST, post(repository_index)),
        (
            "/v2/repository/models/{m}/load",
            Method::POST,
            post(repository_load),
        ),
        (
            "/v2/repository/models/{m}/unload",
            Method::POST,
            post(repository_unload),
        ),
        ("/models/{m}/{file}", Method::GET, get(download)),
        (
            "/models/{m}/versions/{v}/{file}",
            Method::GET,
            get(download),
        ),
        ("/metrics", Method::GET, get(metrics)),
        ("/openapi.yaml", Method::GET, get(openapi)),
    ]
}

/// The OpenAPI 3 document of these routes, as committed.
pub(crate) const OPENAPI: &str = include_str!("../../../docs/openapi.yaml");

async fn count_responses(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    s.metrics.record_response(r.status().as_u16());
    r
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the KServe v2 API is under /v2 (see GET /)")
}

async fn page(State(s): State<Arc<AppState>>) -> Html<String> {
    Html(page::page(&s))
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
        "name": v2::SERVER_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": v2::EXTENSIONS,
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
    let started = Instant::now();
    let (version, from) = s.admit(presented(&headers), &m, v.as_deref())?;
    let body = match v2::json::check_headers(&headers) {
        Ok(header_len) => s.read_body(&headers, body).await.map(|b| (header_len, b)),
        Err(e) => Err(e),
    };
    let request = match &body {
        Ok((header_len, bytes)) => v2::json::decode(*header_len, bytes),
        Err(e) => Err(e.clone()),
    };
    let answer = s.infer((&version, from), started, request).await?;
    v2::json::encode(&version, &answer)
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
    s.check_model_control()?;
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
    s.check_model_control()?;
    repository_body(&s, &headers, body).await?;
    s.registry.unload(&m).await?;
    Ok(axum::Json(json!({})).into_response())
}

/// Load and unload bodies may be empty or `{"parameters": {…}}`; kiln uses
/// no parameter but refuses malformed JSON.
async fn repository_body(s: &AppState, headers: &HeaderMap, body: Body) -> Result<()> {
    v2::json::check_content_type(headers, false)?;
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
        // Served from the bytes read at load, without a copy.
        Body::from(Bytes::from_owner(bytes)),
    )
        .into_response())
}

/// `GET /metrics`: with keys configured, for admin keys and keys with
/// `metrics = true` (what a Prometheus scrape config sends as its bearer
/// token).
async fn metrics(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response> {
    s.auth.check(presented(&headers), Scope::Metrics)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        s.metrics.render(s.registry.loaded_versions()),
    )
        .into_response())
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        )],
        OPENAPI,
    )
        .into_response()
}
