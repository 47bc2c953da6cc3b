//! Bench-only: the serving ceiling for `bench/serve.sh`. A bare axum server
//! that reads the request body and answers a fixed JSON body of the size of
//! a digits inference response; no model, no sandbox. Prints
//! `hello: http=ADDR` on stdout.
//!
//!     cargo run --release --example hello_axum -- 127.0.0.1:0

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

const BODY: &str = r#"{"model_name":"digits","model_version":"1","outputs":[{"name":"scores","datatype":"FP32","shape":[1,10],"data":[1.2e-7,3.4e-9,0.0001,0.99,2.1e-6,4.4e-8,1.0e-9,3.3e-5,0.0002,7.7e-7]}]}"#;

async fn answer(body: Bytes) -> impl IntoResponse {
    std::hint::black_box(body);
    ([(header::CONTENT_TYPE, "application/json")], BODY)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("hello: http={}", listener.local_addr()?);
    let app = Router::new().route("/{*path}", post(answer));
    axum::serve(listener, app).await
}
