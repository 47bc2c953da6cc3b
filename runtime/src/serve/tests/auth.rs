//! API keys: 401 without a known key, 403 without the right.

use axum::body::Body;
use axum::http::Request;

use super::*;

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

/// With keys configured, the landing page (open to anyone) names no model,
/// version or failure reason; without keys (loopback only) it lists them.
#[tokio::test]
async fn landing_page_lists_nothing_with_keys() {
    let f = fixture("[[keys]]\nkey = \"admin-key-0123456789\"\nadmin = true\n").await;
    write(&f.repo, "bad.wasm", b"\0asm\x01\0\0\0garbage");
    let r = call(
        &f.app,
        Request::post("/v2/repository/models/bad/load")
            .header("authorization", "Bearer admin-key-0123456789")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 400);
    let page = String::from_utf8(get(&f.app, "/").await.body).unwrap();
    for secret in ["digits", "trap", "bad", "garbage", f.repo.to_str().unwrap()] {
        assert!(!page.contains(secret), "the page shows {secret:?}: {page}");
    }
    assert!(page.contains("/v2/repository/index"), "{page}");
}

/// With keys configured, `/metrics` needs a key that may read it: an admin
/// key or one with `metrics = true` (a Prometheus scrape key, which may do
/// nothing else); a model key is refused.
#[tokio::test]
async fn metrics_need_a_metrics_or_admin_key() {
    let f = fixture(
        "[[keys]]\nkey = \"user-key-0123456789\"\nmodels = [\"digits\"]\n\
         [[keys]]\nkey = \"scrape-key-0123456789\"\nmetrics = true\n\
         [[keys]]\nkey = \"admin-key-0123456789\"\nadmin = true\n",
    )
    .await;
    let metrics = |key: Option<&str>| {
        let mut r = Request::get("/metrics");
        if let Some(k) = key {
            r = r.header("authorization", format!("Bearer {k}"));
        }
        call(&f.app, r.body(Body::empty()).unwrap())
    };
    let r = metrics(None).await;
    assert_eq!(r.status, 401);
    assert!(!String::from_utf8_lossy(&r.body).contains("digits"));
    assert_eq!(metrics(Some("user-key-0123456789")).await.status, 403);
    for key in ["scrape-key-0123456789", "admin-key-0123456789"] {
        let r = metrics(Some(key)).await;
        assert_eq!(r.status, 200, "{key}");
        assert!(String::from_utf8_lossy(&r.body).contains("kiln_models_loaded"));
    }
    // The scrape key may not infer or use the repository API.
    let r = call(
        &f.app,
        Request::post("/v2/models/digits/infer")
            .header("x-api-key", "scrape-key-0123456789")
            .header("content-type", "application/json")
            .body(Body::from(digits_request(&some_rows(1))))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);
    // Without keys (loopback only) the metrics are open.
    let open = fixture("").await;
    assert_eq!(get(&open.app, "/metrics").await.status, 200);
}
