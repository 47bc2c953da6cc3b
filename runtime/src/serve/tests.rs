//! Router tests without a socket: every route and every error status, driven
//! through `tower::ServiceExt::oneshot` against a real registry of real
//! modules (the demo digits module and hand-written ones).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    write(&repo, "digits/1/model.wasm", &digits_wasm());
    write(&repo, "digits/1/model.safetensors", demo::DEMO_MODEL);
    write(&repo, "loop.wasm", &wat_module(LOOP));
    write(&repo, "grow.wasm", &wat_module(GROW));
    write(&repo, "trap.wasm", &wat_module(TRAP));
    let text = format!(
        "[server]\ncache_dir = {:?}\ninstances = 16\n[models.loop]\ntimeout_ms = 100\n[models.grow]\nmemory_mib = 2\n{extra_config}",
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

#[tokio::test]
async fn health_metadata_and_index() {
    let f = fixture("").await;
    assert_eq!(get(&f.app, "/v2/health/live").await.status, 200);
    assert_eq!(get(&f.app, "/v2/health/ready").await.status, 200);
    let meta = get(&f.app, "/v2").await.json();
    assert_eq!(meta["name"], "kiln");
    let m = get(&f.app, "/v2/models/digits").await.json();
    assert_eq!(m["versions"], json!(["1"]));
    assert_eq!(
        m["inputs"][0],
        json!({"name": "input", "datatype": "FP32", "shape": [-1, 64]})
    );
    assert_eq!(m["outputs"][0]["shape"], json!([-1, 10]));
    assert_eq!(
        get(&f.app, "/v2/models/digits/versions/1").await.status,
        200
    );
    assert_eq!(get(&f.app, "/v2/models/digits/ready").await.status, 200);
    let index = post(&f.app, "/v2/repository/index", "{}").await.json();
    let names: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["digits", "grow", "loop", "trap"]);
    let page = get(&f.app, "/").await;
    let html = String::from_utf8(page.body).unwrap();
    assert!(
        html.contains("digits") && html.contains("/v2/models/digits/infer"),
        "{html}"
    );
}

#[tokio::test]
async fn json_infer_matches_the_native_kernel_bit_for_bit() {
    let f = fixture("").await;
    let rows = some_rows(3);
    let r = post(&f.app, "/v2/models/digits/infer", digits_request(&rows)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["model_name"], "digits");
    assert_eq!(j["model_version"], "1");
    assert_eq!(j["outputs"][0]["shape"], json!([3, 10]));
    assert_eq!(f32_bits(&j["outputs"][0]["data"]), native(&rows));
    // Nested data is accepted too, and the id comes back.
    let body = json!({"id": "r1", "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [rows[0]]}]});
    let j = post(
        &f.app,
        "/v2/models/digits/versions/1/infer",
        body.to_string(),
    )
    .await
    .json();
    assert_eq!(j["id"], "r1");
    assert_eq!(f32_bits(&j["outputs"][0]["data"]), native(&rows[..1]));
}

#[tokio::test]
async fn binary_tensor_extension_round_trips() {
    let f = fixture("").await;
    let rows = some_rows(2);
    let raw: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let header = json!({
        "inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32",
                    "parameters": {"binary_data_size": raw.len()}}],
        "outputs": [{"name": "scores", "parameters": {"binary_data": true}}]
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&raw);
    let req = Request::post("/v2/models/digits/infer")
        .header("inference-header-content-length", header.len())
        .header("content-type", "application/octet-stream")
        .body(Body::from(body.clone()))
        .unwrap();
    let r = call(&f.app, req).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let n: usize = r.headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let j: Value = serde_json::from_slice(&r.body[..n]).unwrap();
    assert_eq!(j["outputs"][0]["parameters"]["binary_data_size"], 80);
    let got: Vec<u32> = r.body[n..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(got, native(&rows));

    // A byte count that does not match the shape: 400 naming the input.
    let mut short = header.clone().into_bytes();
    short.extend_from_slice(&raw);
    let short_header = header.replace(&format!("{}", raw.len()), &format!("{}", raw.len() - 4));
    let mut body = short_header.clone().into_bytes();
    body.extend_from_slice(&raw[..raw.len() - 4]);
    let req = Request::post("/v2/models/digits/infer")
        .header("inference-header-content-length", short_header.len())
        .body(Body::from(body))
        .unwrap();
    let r = call(&f.app, req).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("byte size mismatch"), "{}", r.error());
    assert!(r.error().contains("expected 512 bytes"), "{}", r.error());
}

#[tokio::test]
async fn bad_inputs_are_400s_naming_the_field() {
    let f = fixture("").await;
    let row = some_rows(1).remove(0);
    let cases: Vec<(String, &str)> = vec![
        ("{\"inputs\": [".into(), "invalid JSON"),
        ("{\"inputs\": [{\"name\": \"input\", \"shape\": [1, 64], \"datatype\": \"FP32\", \"data\": [NaN]}]}".into(), "invalid JSON"),
        (json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ["NaN"]}]}).to_string(), "inputs[0].data"),
        (json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32"}], "extra": 1}).to_string(), "no data"),
        (json!({"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": row}]}).to_string(), "shape [1] does not match"),
        (json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "INT64", "data": row}]}).to_string(), "datatype INT64"),
        (json!({"inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32", "data": row}]}).to_string(), "data has 64 values but shape [2, 64] needs 128"),
        (json!({"inputs": []}).to_string(), "expected 1 input but got 0"),
        (json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row},
                           {"name": "other", "shape": [1, 64], "datatype": "FP32", "data": row}]}).to_string(), "expected 1 input but got 2"),
        (json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": row}]}).to_string(), "unexpected input `pixels`"),
        (json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}], "outputs": [{"name": "probs"}]}).to_string(), "unknown output `probs`"),
        (json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![1e39_f64; 64]}]}).to_string(), "inf"),
        (json!({"input": []}).to_string(), "missing field `inputs`"),
    ];
    for (body, needle) in cases {
        let r = post(&f.app, "/v2/models/digits/infer", body.clone()).await;
        assert_eq!(
            r.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            r.error().contains(needle),
            "{body}: {} lacks {needle}",
            r.error()
        );
    }
    // A NaN in binary data is refused too.
    let mut raw: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
    raw[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let header = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                    "parameters": {"binary_data_size": 256}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&raw);
    let req = Request::post("/v2/models/digits/infer")
        .header("inference-header-content-length", header.len())
        .body(Body::from(body))
        .unwrap();
    let r = call(&f.app, req).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("value 2 is NaN"), "{}", r.error());
}

#[tokio::test]
async fn json_nested_150000_deep_is_a_400() {
    let f = fixture("").await;
    let deep = "[".repeat(150_000) + &"]".repeat(150_000);
    let body = format!(
        r#"{{"inputs":[{{"name":"input","shape":[1,64],"datatype":"FP32","data":{deep}}}]}}"#
    );
    let r = post(&f.app, "/v2/models/digits/infer", body).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("recursion limit"), "{}", r.error());
    let r = post(&f.app, "/v2/repository/index", "[".repeat(150_000)).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn not_found_payload_too_large_unsupported_media_type() {
    let f = fixture("").await;
    let body = digits_request(&some_rows(1));
    let r = post(&f.app, "/v2/models/nope/infer", body.clone()).await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("unknown model `nope`"));
    let r = post(&f.app, "/v2/models/digits/versions/7/infer", body.clone()).await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("no version `7`"));
    assert_eq!(get(&f.app, "/v2/models/nope").await.status, 404);
    assert_eq!(get(&f.app, "/nowhere").await.status, 404);

    // 16 MiB + 1 byte.
    let big = vec![b' '; (16 << 20) + 1];
    let r = post(&f.app, "/v2/models/digits/infer", big).await;
    assert_eq!(r.status, 413);
    assert!(r.error().contains("cap"));

    let req = Request::post("/v2/models/digits/infer")
        .header("content-type", "text/plain")
        .body(Body::from(body))
        .unwrap();
    let r = call(&f.app, req).await;
    assert_eq!(r.status, 415);
    assert!(r.error().contains("text/plain"));
}

#[tokio::test]
async fn trap_is_500_deadline_is_504_memory_cap_is_500() {
    let f = fixture("").await;
    let one =
        json!({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]})
            .to_string();
    let r = post(&f.app, "/v2/models/trap/infer", one.clone()).await;
    assert_eq!(r.status, 500);
    assert!(r.error().contains("trapped"), "{}", r.error());
    let started = std::time::Instant::now();
    let r = post(&f.app, "/v2/models/loop/infer", one.clone()).await;
    assert_eq!(r.status, 504);
    assert!(r.error().contains("deadline"), "{}", r.error());
    assert!(started.elapsed() < std::time::Duration::from_millis(100 + 400));
    let r = post(&f.app, "/v2/models/grow/infer", one).await;
    assert_eq!(r.status, 500);
    assert!(
        r.error().contains("memory cap of 2097152 bytes"),
        "{}",
        r.error()
    );
    // The others kept serving.
    let r = post(
        &f.app,
        "/v2/models/digits/infer",
        digits_request(&some_rows(1)),
    )
    .await;
    assert_eq!(r.status, 200);
    let metrics = String::from_utf8(get(&f.app, "/metrics").await.body).unwrap();
    assert!(
        metrics.contains("nv_inference_request_failure{model=\"loop\",version=\"1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nv_inference_request_success{model=\"digits\",version=\"1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kiln_http_responses_total{code=\"504\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn draining_server_is_503() {
    let f = fixture("").await;
    f.state.draining.store(true, Ordering::Relaxed);
    let r = get(&f.app, "/v2/health/ready").await;
    assert_eq!(r.status, 503);
    assert!(r.headers.contains_key("retry-after"));
    let r = post(
        &f.app,
        "/v2/models/digits/infer",
        digits_request(&some_rows(1)),
    )
    .await;
    assert_eq!(r.status, 503);
    assert!(r.error().contains("shutting down"));
    assert_eq!(get(&f.app, "/v2/health/live").await.status, 200);
}

#[tokio::test]
async fn model_that_fails_to_load_is_503_and_server_not_ready() {
    let fx = fixture("").await;
    // A module importing a function: refused at load.
    let importing =
        wat::parse_str(r#"(module (import "env" "f" (func)) (memory (export "memory") 1))"#)
            .unwrap();
    write(&fx.repo, "bad.wasm", &importing);
    let r = post(&fx.app, "/v2/repository/models/bad/load", "").await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("imports `env::f`"), "{}", r.error());
    let r = post(&fx.app, "/v2/models/bad/infer", "{}").await;
    assert_eq!(r.status, 503);
    assert_eq!(get(&fx.app, "/v2/health/ready").await.status, 503);
    assert_eq!(get(&fx.app, "/v2/models/bad/ready").await.status, 503);
}

#[tokio::test]
async fn load_unload_and_failed_reload_keeps_serving() {
    let f = fixture("").await;
    let body = digits_request(&some_rows(1));
    assert_eq!(
        post(&f.app, "/v2/repository/models/digits/unload", "")
            .await
            .status,
        200
    );
    assert_eq!(
        post(&f.app, "/v2/models/digits/infer", body.clone())
            .await
            .status,
        404
    );
    let index = post(&f.app, "/v2/repository/index", "").await.json();
    assert_eq!(
        index[0],
        json!({"name": "digits", "state": "UNAVAILABLE", "reason": "unloaded"})
    );
    assert_eq!(
        post(
            &f.app,
            "/v2/repository/models/digits/load",
            "{\"parameters\": {}}"
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(&f.app, "/v2/models/digits/infer", body.clone())
            .await
            .status,
        200
    );

    // Version 2 is garbage: the load fails and version 1 keeps serving.
    write(&f.repo, "digits/2/model.wasm", b"\0asm\x01\0\0\0garbage");
    let r = post(&f.app, "/v2/repository/models/digits/load", "").await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("version 2"), "{}", r.error());
    let j = post(&f.app, "/v2/models/digits/infer", body.clone())
        .await
        .json();
    assert_eq!(j["model_version"], "1");

    // A good version 2 replaces version 1 (policy latest:1).
    write(&f.repo, "digits/2/model.wasm", &digits_wasm());
    assert_eq!(
        post(&f.app, "/v2/repository/models/digits/load", "")
            .await
            .status,
        200
    );
    let j = post(&f.app, "/v2/models/digits/infer", body.clone())
        .await
        .json();
    assert_eq!(j["model_version"], "2");
    assert_eq!(
        post(&f.app, "/v2/models/digits/versions/1/infer", body)
            .await
            .status,
        404
    );
    assert_eq!(
        post(&f.app, "/v2/repository/models/nothing/load", "")
            .await
            .status,
        404
    );
    assert_eq!(
        post(&f.app, "/v2/repository/models/nothing/unload", "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn version_policy_serves_several_versions() {
    let f = fixture("[models.digits]\nversions = \"all\"\n").await;
    write(&f.repo, "digits/3/model.wasm", &digits_wasm());
    assert_eq!(
        post(&f.app, "/v2/repository/models/digits/load", "")
            .await
            .status,
        200
    );
    let m = get(&f.app, "/v2/models/digits").await.json();
    assert_eq!(m["versions"], json!(["1", "3"]));
    let body = digits_request(&some_rows(1));
    for v in ["1", "3"] {
        let j = post(
            &f.app,
            &format!("/v2/models/digits/versions/{v}/infer"),
            body.clone(),
        )
        .await
        .json();
        assert_eq!(j["model_version"], v);
    }
    let j = post(&f.app, "/v2/models/digits/infer", body).await.json();
    assert_eq!(j["model_version"], "3");
    // Every route's `/versions/{v}` twin (one handler each) finds the
    // version, and refuses one that is not loaded.
    for (v, status) in [("1", 200), ("3", 200), ("9", 404)] {
        for route in ["", "/ready", "/model.wasm"] {
            let uri = if route == "/model.wasm" {
                format!("/models/digits/versions/{v}{route}")
            } else {
                format!("/v2/models/digits/versions/{v}{route}")
            };
            assert_eq!(get(&f.app, &uri).await.status, status, "{uri}");
        }
    }
}

#[tokio::test]
async fn api_keys_401_403() {
    let f = fixture(
        "[[keys]]\nkey = \"user-key-0123456789\"\nmodels = [\"digits\"]\n[[keys]]\nkey = \"admin-key-0123456789\"\nadmin = true\n",
    )
    .await;
    let body = digits_request(&some_rows(1));
    let with = |key: Option<&str>, uri: &str, body: &str| {
        let mut r = Request::post(uri).header("content-type", "application/json");
        if let Some(k) = key {
            r = r.header("authorization", format!("Bearer {k}"));
        }
        r.body(Body::from(body.to_string())).unwrap()
    };
    let r = call(&f.app, with(None, "/v2/models/digits/infer", &body)).await;
    assert_eq!(r.status, 401);
    assert!(r.headers.contains_key("www-authenticate"));
    assert_eq!(
        call(
            &f.app,
            with(
                Some("nope-nope-nope-nope"),
                "/v2/models/digits/infer",
                &body
            )
        )
        .await
        .status,
        401
    );
    assert_eq!(
        call(
            &f.app,
            with(
                Some("user-key-0123456789"),
                "/v2/models/digits/infer",
                &body
            )
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            &f.app,
            with(Some("user-key-0123456789"), "/v2/models/trap/infer", &body)
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            &f.app,
            with(Some("user-key-0123456789"), "/v2/repository/index", "")
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            &f.app,
            with(Some("admin-key-0123456789"), "/v2/repository/index", "")
        )
        .await
        .status,
        200
    );
    let req = Request::get("/v2/models/digits")
        .header("x-api-key", "user-key-0123456789")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&f.app, req).await.status, 200);
    // Health stays open for probes.
    assert_eq!(get(&f.app, "/v2/health/ready").await.status, 200);
}

#[tokio::test]
async fn model_files_can_be_downloaded() {
    let f = fixture("").await;
    let r = get(&f.app, "/models/digits/model.wasm").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, digits_wasm());
    assert_eq!(r.headers["content-type"], "application/wasm");
    let r = get(&f.app, "/models/digits/versions/1/model.safetensors").await;
    assert_eq!(r.body, demo::DEMO_MODEL);
    assert_eq!(
        get(&f.app, "/models/trap/model.safetensors").await.status,
        404
    );
    assert_eq!(get(&f.app, "/models/digits/secret.txt").await.status, 404);
}

#[tokio::test]
async fn concurrent_single_rows_are_batched() {
    let f = fixture("[models.digits]\nmax_batch = 16\nmax_queue_delay_us = 20000\n").await;
    let rows = some_rows(16);
    let mut tasks = Vec::new();
    for row in rows.clone() {
        let app = f.app.clone();
        tasks.push(tokio::spawn(async move {
            post(&app, "/v2/models/digits/infer", digits_request(&[row])).await
        }));
    }
    for (t, row) in tasks.into_iter().zip(&rows) {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200);
        // Each request gets its own row's scores back.
        assert_eq!(
            f32_bits(&r.json()["outputs"][0]["data"]),
            native(std::slice::from_ref(row))
        );
    }
    let v = f.state.registry.get("digits", None).unwrap();
    let (ok, failed, inferences, executions) = v.metrics.counts();
    assert_eq!((ok, failed, inferences), (16, 0, 16));
    assert!(
        executions < 16,
        "16 concurrent rows took {executions} kiln_run calls"
    );
}

#[tokio::test]
async fn hot_swap_under_concurrent_load_loses_no_request() {
    let f = fixture("").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (app, stop) = (f.app.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let (mut ok, mut versions) = (0, std::collections::BTreeSet::new());
            while !stop.load(Ordering::Relaxed) {
                let r = post(
                    &app,
                    "/v2/models/digits/infer",
                    digits_request(&some_rows(1)),
                )
                .await;
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                versions.insert(r.json()["model_version"].as_str().unwrap().to_string());
                ok += 1;
            }
            (ok, versions)
        }));
    }
    for v in 2..=4 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        write(&f.repo, &format!("digits/{v}/model.wasm"), &digits_wasm());
        let r = post(&f.app, "/v2/repository/models/digits/load", "").await;
        assert_eq!(r.status, 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0;
    for c in clients {
        let (ok, versions) = c.await.unwrap();
        total += ok;
        seen.extend(versions);
    }
    assert!(total > 50, "only {total} requests");
    assert!(seen.contains("1") && seen.contains("4"), "{seen:?}");
}

#[tokio::test]
async fn static_dir_replaces_the_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>demo page</p>").unwrap();
    let config = Config::parse(
        &format!(
            "[server]\ncache_dir = {:?}\ninstances = 4\n",
            dir.path().join("c")
        ),
        Path::new("k"),
    )
    .unwrap();
    let s = prepare(&Options {
        model_name: None,
        repo: None,
        http: "127.0.0.1:0".parse().unwrap(),
        grpc: None,
        config,
        watch: false,
        static_dir: Some(dir.path().into()),
    })
    .await
    .unwrap();
    let app = router::router(s);
    let r = get(&app, "/").await;
    assert_eq!(String::from_utf8(r.body).unwrap(), "<p>demo page</p>");
    // The built-in demo model is served as `digits`.
    assert_eq!(get(&app, "/v2/models/digits/ready").await.status, 200);
    assert_eq!(get(&app, "/index.html").await.status, 200);
}
