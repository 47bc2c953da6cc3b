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
