//! Inference: JSON and binary requests, every refusal, module failures,
//! batching.

use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use super::*;

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
    // A 100 ms deadline, not a coarse one: loose enough for a loaded machine.
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
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

/// A shape whose byte count overflows: 2^56 rows of 64 values are 2^64
/// bytes, which wrapped to 0 and matched an empty binary part.
#[tokio::test]
async fn a_shape_whose_byte_count_overflows_is_a_400() {
    let f = fixture("").await;
    let header = json!({"inputs": [{"name": "input", "shape": [1u64 << 56, 64], "datatype": "FP32",
                                    "parameters": {"binary_data_size": 0}}]})
    .to_string();
    let req = Request::post("/v2/models/digits/infer")
        .header("inference-header-content-length", header.len())
        .body(Body::from(header))
        .unwrap();
    let r = call(&f.app, req).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("is too large"), "{}", r.error());
}

/// With every instance slot busy, a request is 503 with Retry-After (the
/// server is full, nothing failed), not 500.
#[tokio::test]
async fn exhausted_instance_pool_is_503() {
    let f = fixture_with("instances = 1\n", "").await;
    let one =
        json!({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]})
            .to_string();
    let app = f.app.clone();
    let looping = tokio::spawn(async move { post(&app, "/v2/models/loop/infer", one).await });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let r = post(
        &f.app,
        "/v2/models/digits/infer",
        digits_request(&some_rows(1)),
    )
    .await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.headers.contains_key("retry-after"));
    assert!(r.error().contains("instance slot"), "{}", r.error());
    assert_eq!(looping.await.unwrap().status, 504);
}

/// A NaN score cannot be JSON: the answer says so instead of sending
/// `null`; binary data carries it.
#[tokio::test]
async fn non_finite_outputs_are_not_silently_null() {
    let f = fixture("").await;
    write(
        &f.repo,
        "nan.wasm",
        &wat_module("(f32.store (i32.const 64) (f32.const nan)) i32.const 0"),
    );
    assert_eq!(
        post(&f.app, "/v2/repository/models/nan/load", "")
            .await
            .status,
        200
    );
    let one =
        json!({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]});
    let r = post(&f.app, "/v2/models/nan/infer", one.to_string()).await;
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("value 0 is NaN"), "{}", r.error());
    let binary = json!({"inputs": one["inputs"], "parameters": {"binary_data_output": true}});
    let r = post(&f.app, "/v2/models/nan/infer", binary.to_string()).await;
    assert_eq!(r.status, 200);
    let n: usize = r.headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(f32::from_le_bytes(r.body[n..n + 4].try_into().unwrap()).is_nan());
}
