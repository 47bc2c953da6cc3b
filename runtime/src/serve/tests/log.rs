//! The log as a collector sees it (JSON lines, captured): one access line
//! per request on both transports, carrying the request's id, and never a
//! key or an input value, whatever the request did.

use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use prost::Message;
use tracing_subscriber::fmt::MakeWriter;

use super::grpc::frame;
use super::*;
use crate::serve::grpc::Grpc;
use crate::serve::v2::pb::{InferTensorContents, ModelInferRequest, model_infer_request};

const KEY: &str = "user-key-SECRET-0123456789";
const WRONG_KEY: &str = "wrong-key-SECRET-9876543210";
/// A value no request here has otherwise, and how JSON and `{}` write it.
const VALUE: f32 = 1234.5677;
const VALUE_TEXT: &str = "1234.567";
/// Text inside a malformed body, which a parse error may quote.
const BODY_TEXT: &str = "SECRET-BODY-TEXT";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fn rest(uri: &str, key: &str, id: Option<&str>, body: String) -> Request<Body> {
    let mut req = Request::post(uri)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"));
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    req.body(body.into()).unwrap()
}

async fn grpc(state: &Arc<AppState>, key: &str, id: &str) -> (axum::http::HeaderMap, String) {
    let message = ModelInferRequest {
        model_name: "digits".into(),
        inputs: vec![model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, 64],
            parameters: Default::default(),
            contents: Some(InferTensorContents {
                fp32_contents: vec![VALUE; 64],
                ..Default::default()
            }),
        }],
        ..Default::default()
    };
    let req = Request::post("/inference.GRPCInferenceService/ModelInfer")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-api-key", key)
        .header("x-request-id", id)
        .body(tonic::body::Body::new(Body::from(frame(
            &message.encode_to_vec(),
        ))))
        .unwrap();
    let r = Grpc::service(state.clone()).oneshot(req).await.unwrap();
    let headers = r.headers().clone();
    let collected = r.into_body().collect().await.unwrap();
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .or(headers.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (headers, status)
}

/// The test binary's log, captured: a process-wide subscriber, since a
/// thread's own default misses callsites other tests' threads register
/// first. Other tests log into it too; the checks below pick lines by id.
fn captured() -> &'static Capture {
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        capture
    })
}

#[tokio::test]
async fn access_lines_carry_ids_and_never_keys_or_inputs() {
    let capture = captured();
    let f = fixture(&format!(
        "[[keys]]\nkey = \"{KEY}\"\nmodels = [\"digits\"]\n"
    ))
    .await;
    let rows = vec![vec![VALUE; 64]];

    // A caller's id is echoed; a request without one gets a fresh one.
    let ok = call(
        &f.app,
        rest(
            "/v2/models/digits/infer",
            KEY,
            Some("req-abc-1"),
            digits_request(&rows),
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers["x-request-id"], "req-abc-1");
    let fresh = call(
        &f.app,
        rest("/v2/models/digits/infer", KEY, None, digits_request(&rows)),
    )
    .await;
    let fresh_id = fresh.headers["x-request-id"].to_str().unwrap().to_string();
    assert!(!fresh_id.is_empty() && fresh_id != "req-abc-1");
    // An id that is not a plain token is replaced, not logged.
    let odd = call(
        &f.app,
        rest(
            "/v2/models/digits/infer",
            KEY,
            Some("a b\"c"),
            digits_request(&rows),
        ),
    )
    .await;
    assert_ne!(odd.headers["x-request-id"], "a b\"c");
    // Failures: a wrong key, and a body whose parse error may quote it.
    let denied = call(
        &f.app,
        rest(
            "/v2/models/digits/infer",
            WRONG_KEY,
            Some("req-denied"),
            digits_request(&rows),
        ),
    )
    .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    let bad = format!(
        "{{\"inputs\": [{{\"name\": \"{BODY_TEXT}\", \"shape\": [1, 64], \"datatype\": \"FP32\", \"data\": [{VALUE}, \"{BODY_TEXT}\"]}}]}}"
    );
    let malformed = call(
        &f.app,
        rest("/v2/models/digits/infer", KEY, Some("req-bad"), bad),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(
        malformed.error().contains(BODY_TEXT),
        "the test's premise: {}",
        malformed.error()
    );
    // gRPC, answered and refused.
    let (headers, status) = grpc(&f.state, KEY, "req-grpc-1").await;
    assert_eq!(
        (headers["x-request-id"].to_str().unwrap(), status.as_str()),
        ("req-grpc-1", "0")
    );
    let (_, status) = grpc(&f.state, WRONG_KEY, "req-grpc-2").await;
    assert_eq!(status, (tonic::Code::Unauthenticated as i32).to_string());

    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for secret in [KEY, WRONG_KEY, VALUE_TEXT, BODY_TEXT, "a b"] {
        assert!(
            !text.contains(secret),
            "{secret:?} reached the log:\n{text}"
        );
    }
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let access = |id: &str| {
        let hits: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["target"] == "kiln::access" && l["id"] == id)
            .collect();
        assert_eq!(hits.len(), 1, "one access line for {id}:\n{text}");
        hits[0].clone()
    };
    let line = access("req-abc-1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "/v2/models/{m}/infer");
    assert_eq!(line["model"], "digits");
    assert_eq!(line["version"], 1);
    assert!(line["micros"].as_u64().is_some() && line["bytes"].as_u64().unwrap() > 0);
    access(&fresh_id);
    assert_eq!(access("req-denied")["status"], 401);
    assert_eq!(access("req-bad")["status"], 400);
    let line = access("req-grpc-1");
    assert_eq!(line["grpc_status"], 0);
    assert_eq!(line["model"], "digits");
    assert_eq!(access("req-grpc-2")["grpc_status"], 16);
}
