//! Router tests without a socket: every route and every error status, driven
//! through `tower::ServiceExt::oneshot` against a real registry of real
//! modules (the demo digits module and hand-written ones). Shared fixtures
//! here; the tests by area: inference, the repository API, API keys.

mod auth;
mod grpc;
mod infer;
mod log;
mod repository;
mod routes;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::config::Config;
use super::{AppState, Options, demo, prepare, router};

/// A hand-written ABI v1 module with a `kiln.meta` section: one input value,
/// one output value, `kiln_run` given by the test.
pub(crate) fn wat_module(run_body: &str) -> Vec<u8> {
    let meta = json!({
        "abi_version": 1, "name": "t", "version": "1", "task": "regression",
        "input": {"name": "x", "datatype": "FP32", "shape": [1]},
        "output": {"name": "y", "datatype": "FP32", "shape": [1]},
        "model_sha256": "", "kiln_version": "test"
    })
    .to_string()
    .replace('"', "\\\"");
    let wat = format!(
        r#"(module
          (memory (export "memory") 1)
          (func (export "kiln_abi_version") (result i32) i32.const 1)
          (func (export "kiln_input_len") (result i32) i32.const 1)
          (func (export "kiln_output_len") (result i32) i32.const 1)
          (func (export "kiln_input") (param i32) (result i32) i32.const 64)
          (func (export "kiln_output") (result i32) i32.const 64)
          (func (export "kiln_run") (param i32) (result i32) {run_body})
          (@custom "kiln.meta" "{meta}"))"#
    );
    wat::parse_str(wat).expect("valid wat")
}

pub(crate) const LOOP: &str = "(loop br 0) i32.const 0";
pub(crate) const GROW: &str = "(loop (drop (memory.grow (i32.const 16))) (br 0)) i32.const 0";
pub(crate) const TRAP: &str = "unreachable";

fn digits_wasm() -> Vec<u8> {
    demo::builtin().unwrap().wasm.to_vec()
}

fn write(repo: &Path, rel: &str, bytes: &[u8]) {
    let p = repo.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    repo: std::path::PathBuf,
    state: Arc<AppState>,
    app: Router,
}

async fn fixture(extra_config: &str) -> Fixture {
    fixture_with("instances = 16\n", extra_config).await
}

/// [`fixture`] with `server` as the `[server]` section (besides the cache).
async fn fixture_with(server: &str, extra_config: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    write(&repo, "digits/1/model.wasm", &digits_wasm());
    write(&repo, "digits/1/model.safetensors", demo::DEMO_MODEL);
    write(&repo, "loop.wasm", &wat_module(LOOP));
    write(&repo, "grow.wasm", &wat_module(GROW));
    write(&repo, "trap.wasm", &wat_module(TRAP));
    let text = format!(
        "[server]\ncache_dir = {:?}\n{server}[models.loop]\ntimeout_ms = 100\n[models.grow]\nmemory_mib = 2\n{extra_config}",
        dir.path().join("cache")
    );
    let config = Config::parse(&text, Path::new("kiln.toml")).unwrap();
    let state = prepare(&Options {
        model_name: None,
        repo: Some(repo.clone()),
        http: "127.0.0.1:0".parse().unwrap(),
        grpc: None,
        config,
        watch: false,
        static_dir: None,
        config_path: None,
    })
    .await
    .unwrap();
    let app = router::router(state.clone());
    Fixture {
        _dir: dir,
        repo,
        state,
        app,
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .expect("error string")
            .to_string()
    }
}

async fn call(app: &Router, req: Request<Body>) -> Reply {
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(app: &Router, uri: &str) -> Reply {
    call(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, uri: &str, body: impl Into<Body>) -> Reply {
    let req = Request::post(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    call(app, req).await
}

fn digits_request(rows: &[Vec<f32>]) -> String {
    let data: Vec<f32> = rows.iter().flatten().copied().collect();
    json!({"inputs": [{"name": "input", "shape": [rows.len(), 64], "datatype": "FP32", "data": data}]})
        .to_string()
}

fn some_rows(n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|r| (0..64).map(|i| ((i * 7 + r * 3) % 17) as f32).collect())
        .collect()
}

/// The scores the native kernel gives for `rows` (the module's own blob).
fn native(rows: &[Vec<f32>]) -> Vec<u32> {
    let wasm = digits_wasm();
    let blob = crate::module::embedded_blob(&wasm).unwrap().unwrap();
    let kernel = kiln_guest::blob::decode(blob).unwrap().into_owned();
    let input: Vec<f32> = rows.iter().flatten().copied().collect();
    kernel
        .predict(&input)
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn f32_bits(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| (x.as_f64().unwrap() as f32).to_bits())
        .collect()
}
