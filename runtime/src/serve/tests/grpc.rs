//! The gRPC service as served (behind its gate), driven without a socket:
//! keys are checked before a message is read, and messages are bounded
//! before tonic decodes them.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use http_body_util::BodyExt;
use tonic::Code;

use super::*;
use crate::serve::grpc::Grpc;

const KEYS: &str = "[[keys]]\nkey = \"user-key-0123456789\"\nmodels = [\"digits\"]\n";

/// A gRPC call of `method` with `key`, carrying `body` (frames included).
async fn grpc_call(
    state: &Arc<AppState>,
    method: &str,
    key: Option<&str>,
    body: axum::body::Body,
) -> (tonic::Status, Bytes) {
    let mut req = axum::http::Request::post(format!("/inference.GRPCInferenceService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = req.body(tonic::body::Body::new(body)).unwrap();
    let r = Grpc::service(state.clone()).oneshot(req).await.unwrap();
    let in_headers = tonic::Status::from_header_map(r.headers());
    let collected = r.into_body().collect().await.unwrap();
    let trailers = collected
        .trailers()
        .and_then(tonic::Status::from_header_map);
    let status = in_headers
        .or(trailers)
        .unwrap_or_else(|| tonic::Status::ok(""));
    (status, collected.to_bytes())
}

/// One gRPC frame holding `message`.
pub(super) fn frame(message: &[u8]) -> Vec<u8> {
    let mut f = vec![0];
    f.extend_from_slice(&(message.len() as u32).to_be_bytes());
    f.extend_from_slice(message);
    f
}

/// A length-delimited protobuf field.
fn field(number: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 128);
    [&[number << 3 | 2, payload.len() as u8][..], payload].concat()
}

#[tokio::test]
async fn unknown_key_is_refused_before_the_message_is_read() {
    let f = fixture(KEYS).await;
    let read = Arc::new(AtomicBool::new(false));
    let tripwire = read.clone();
    let body = axum::body::Body::from_stream(futures_util::stream::once(async move {
        tripwire.store(true, Ordering::SeqCst);
        Ok::<_, Infallible>(Bytes::from(frame(&field(1, b"digits"))))
    }));
    for key in [None, Some("nope-nope-nope-nope")] {
        let body = axum::body::Body::from_stream(futures_util::stream::once(async {
            Ok::<_, Infallible>(Bytes::from(frame(&field(1, b"digits"))))
        }));
        let (status, _) = grpc_call(&f.state, "ModelInfer", key, body).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    let (status, _) = grpc_call(&f.state, "ModelInfer", None, body).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(!read.load(Ordering::SeqCst), "the body was read");
    // A model key may not use the repository API: refused unread too.
    let (status, _) = grpc_call(
        &f.state,
        "RepositoryIndex",
        Some("user-key-0123456789"),
        axum::body::Body::from(frame(&[])),
    )
    .await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // Health stays open.
    let (status, _) = grpc_call(&f.state, "ServerLive", None, frame(&[]).into()).await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
}

#[tokio::test]
async fn many_empty_inputs_are_refused_before_decoding_with_a_short_message() {
    let f = fixture(KEYS).await;
    // 2,000,000 empty inputs: 4 MB that prost would expand to ~600 MB.
    let mut message = field(1, b"digits");
    for _ in 0..2_000_000 {
        message.extend_from_slice(&[5 << 3 | 2, 0]);
    }
    let key = Some("user-key-0123456789");
    let (status, _) = grpc_call(&f.state, "ModelInfer", key, frame(&message).into()).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(status.message(), "the request has more than 64 inputs");

    // Within the limits, the message is decoded and answered: 64 inputs
    // with long names get a 400-style answer of bounded length.
    let name = "n".repeat(100);
    let mut message = field(1, b"digits");
    for _ in 0..64 {
        message.extend(field(5, &field(1, name.as_bytes())));
    }
    let (status, _) = grpc_call(&f.state, "ModelInfer", key, frame(&message).into()).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("expected 1 input but got 64"));
    assert!(status.message().len() < 1024, "{}", status.message().len());
}

/// A message prost cannot decode is the caller's fault: `INVALID_ARGUMENT`
/// naming the field, never tonic's `INTERNAL`.
#[tokio::test]
async fn undecodable_messages_are_invalid_arguments_naming_the_field() {
    let f = fixture("").await;
    let not_utf8 = b"\xff\xfe";
    let cases = [
        (field(1, not_utf8), "ModelInferRequest.model_name"),
        (
            [field(1, b"digits"), field(5, &field(2, not_utf8))].concat(),
            "InferInputTensor.datatype",
        ),
        // Field 1 (model_name) sent as a varint.
        (vec![1 << 3, 7], "ModelInferRequest.model_name"),
    ];
    for (message, named) in cases {
        let (status, _) = grpc_call(&f.state, "ModelInfer", None, frame(&message).into()).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(named), "{status:?}");
    }
    let (status, _) = grpc_call(
        &f.state,
        "ModelReady",
        None,
        frame(&field(1, not_utf8)).into(),
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn a_message_over_the_cap_is_resource_exhausted() {
    let f = fixture("").await;
    let big = frame(&vec![0; (16 << 20) + 1]);
    let (status, _) = grpc_call(&f.state, "ModelInfer", None, big.into()).await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("16777216-byte cap"), "{status:?}");
}

/// Typed contents must match the datatype, and raw contents may not come
/// with typed ones (Triton refuses both).
#[tokio::test]
async fn contents_must_agree_with_the_datatype() {
    use crate::serve::v2::pb::{InferTensorContents, ModelInferRequest, model_infer_request};
    use prost::Message;
    let f = fixture("").await;
    let input = |contents| model_infer_request::InferInputTensor {
        name: "input".into(),
        datatype: "FP32".into(),
        shape: vec![1, 64],
        parameters: Default::default(),
        contents: Some(contents),
    };
    let request = |contents, raw: Vec<Vec<u8>>| ModelInferRequest {
        model_name: "digits".into(),
        inputs: vec![input(contents)],
        raw_input_contents: raw,
        ..Default::default()
    };
    let int64 = InferTensorContents {
        int64_contents: vec![1; 64],
        ..Default::default()
    };
    let fp32 = InferTensorContents {
        fp32_contents: vec![1.0; 64],
        ..Default::default()
    };
    let call = |r: ModelInferRequest| {
        let state = f.state.clone();
        async move {
            let body = frame(&r.encode_to_vec());
            grpc_call(&state, "ModelInfer", None, body.into()).await.0
        }
    };
    let s = call(request(int64, vec![])).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(
        s.message().contains("does not go with int64_contents"),
        "{s:?}"
    );
    let s = call(request(fp32.clone(), vec![vec![0; 256]])).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(
        s.message()
            .contains("both raw_input_contents and fp32_contents"),
        "{s:?}"
    );
    let s = call(request(fp32, vec![])).await;
    assert_eq!(s.code(), Code::Ok, "{s:?}");
    // gRPC answers are counted in the metrics.
    let text = f.state.metrics.render(0);
    assert!(
        text.contains("kiln_grpc_responses_total{code=\"Ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("kiln_grpc_responses_total{code=\"InvalidArgument\"} 2"),
        "{text}"
    );
}
