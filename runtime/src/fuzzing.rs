//! Entry points of the fuzz targets (`tests/fuzz`) and of their regression
//! tests (`tests/e2e/fuzz.rs`): each takes arbitrary bytes, drives one reader
//! the way `kiln` or `kiln serve` does, and panics only where an invariant
//! breaks (a reader panicking, a round trip changing the model, a server
//! error, a module outliving its limits). Not an API: hidden from the docs,
//! shaped by the fuzz targets.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::import::{keras, onnx};
use crate::model::ModelFile;
use crate::sandbox::{Limits, Sandbox};
use crate::serve::{self, AppState};
use kiln_guest::blob;

/// The model blob decoder: what decodes must run without panicking, and
/// encode back to a blob that decodes to the same model. An input whose
/// first byte is odd gets its declared length patched to its real one, so
/// mutations reach past the length check.
pub fn blob(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1
        && let Some(len) = bytes.get_mut(8..12)
    {
        len.copy_from_slice(&u32::try_from(rest.len()).unwrap_or(0).to_le_bytes());
    }
    let Ok(model) = blob::decode(&bytes) else {
        return;
    };
    let again = blob::encode(&model);
    let decoded = blob::decode(&again).expect("an encoded model decodes");
    assert_eq!(decoded, model, "encode then decode changed the model");
    run(&model);
}

/// One row of zeros through a decoded model, unless its buffers would be
/// huge (the kernel refuses those itself; the fuzzer need not wait).
fn run(model: &kiln_guest::Model<'_>) {
    if model.input_len() <= 1 << 16 {
        let _ = model.predict(&vec![0.0; model.input_len()]);
    }
}

/// The model file reader (safetensors header, graph JSON, tensors): a file
/// it accepts converts to a kernel model and survives a save and a re-read.
pub fn model_file(data: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    let Ok(file) = ModelFile::from_bytes(data, path) else {
        return;
    };
    let kernel = file.to_kernel().expect("an accepted model file converts");
    let bytes = file.to_bytes().expect("an accepted model file saves");
    let again = ModelFile::from_bytes(&bytes, path).expect("a saved model file reads");
    assert_eq!(again, file, "save then read changed the model file");
    run(&kernel);
}

/// ONNX import: an imported model converts to a kernel model.
pub fn onnx(data: &[u8]) {
    imported(onnx::import(data, &onnx::Options::default()).map(|i| i.model));
}

/// Keras import (`.h5`, `.keras`): an imported model converts to a kernel
/// model. The HDF5 reader and the zip reader run under the importer's
/// bounds (`import::keras::MAX_FILE_BYTES` and the HDF5 read limits).
pub fn keras(data: &[u8]) {
    imported(keras::import(data, &keras::Options::default()).map(|i| i.model));
}

/// An importer's model, if it gave one, converts to a kernel model that runs.
fn imported<E>(model: Result<ModelFile, E>) {
    let Ok(model) = model else {
        return;
    };
    let kernel = model.to_kernel().expect("an imported model converts");
    run(&kernel);
}

/// The browser package's loader (`load`: `kiln_browser::load`, which
/// this crate cannot name) against the host's readers: a model file is
/// the page accepts, the host reads as the same model; a module the page
/// accepts embeds a blob the host decodes to the same model.
pub fn browser(data: &[u8], load: impl Fn(&[u8]) -> Result<kiln_guest::Model<'static>, String>) {
    let page = load(data);
    if data.starts_with(b"\0asm") {
        if let Ok(model) = &page {
            // The page reads only the data and custom sections (it runs the
            // model itself, never the module's code): a module the host's
            // parser refuses elsewhere (a malformed code section, say) may
            // still give the page its model. A module the host parses must
            // give the host the same blob.
            let Ok(found) = crate::module::embedded_blob(data) else {
                run(model);
                return;
            };
            let blob = found.expect("a module the page loads embeds a blob the host finds");
            let host = blob::decode(blob).expect("the host decodes the page's blob");
            assert_eq!(&host, model, "page and host read the module differently");
            run(model);
        }
        return;
    }
    // The page refuses some files the host reads (int8 model files, read
    // from modules only): what it accepts, the host must read the same.
    if let Ok(p) = &page {
        let host = ModelFile::from_bytes(data, Path::new("fuzz.safetensors"))
            .and_then(|m| m.to_kernel())
            .map_err(|e| e.to_string());
        match &host {
            Ok(h) => assert_eq!(p, h, "page and host read the model file differently"),
            Err(e) => panic!("the page reads a model file the host refuses: {e}"),
        }
        run(p);
    }
}

/// Limits of [`sandbox`]: small, so that a module that honours them is quick.
const SANDBOX_LIMITS: Limits = Limits {
    memory_bytes: 16 << 20,
    deadline: Duration::from_millis(100),
    module_bytes: 1 << 20,
};

/// `Sandbox::load` on arbitrary wasm: a module is refused, or it loads and a
/// prediction returns (scores or an error) within the deadline plus slack.
pub fn sandbox(wasm: &[u8]) {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    let sandbox = SANDBOX.get_or_init(|| Sandbox::new(SANDBOX_LIMITS).expect("sandbox"));
    let Ok(module) = sandbox.load(wasm) else {
        return;
    };
    let input = vec![0.0; module.input_len().min(1 << 16)];
    let t0 = Instant::now();
    let _ = sandbox.predict(&module, &input);
    let took = t0.elapsed();
    assert!(
        took < SANDBOX_LIMITS.deadline + Duration::from_secs(2),
        "a prediction ran {took:?} under a {:?} deadline",
        SANDBOX_LIMITS.deadline
    );
}

/// A `kiln serve` of the built-in digits model, without sockets: requests go
/// to its router and gRPC service as `tower` calls.
pub struct Server {
    rt: tokio::runtime::Runtime,
    state: Arc<AppState>,
    _cache: tempfile::TempDir,
}

impl Server {
    /// The one server of this process.
    pub fn get() -> &'static Server {
        static SERVER: OnceLock<Server> = OnceLock::new();
        SERVER.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime");
            let cache = tempfile::tempdir().expect("cache dir");
            let text = format!("[server]\ncache_dir = {:?}\n", cache.path());
            let config = serve::Config::parse(&text, Path::new("kiln.toml")).expect("fuzz config");
            let opts = serve::Options {
                repo: None,
                model_name: None,
                http: "127.0.0.1:0".parse().expect("address"),
                grpc: None,
                config,
                watch: false,
                static_dir: None,
                config_path: None,
            };
            let state = rt.block_on(serve::prepare(&opts)).expect("digits server");
            Server {
                rt,
                state,
                _cache: cache,
            }
        })
    }

    /// `POST /v2/models/digits/infer`. `data` is a 2-byte little-endian
    /// `Inference-Header-Content-Length` (`0xffff`: none) and the body; the
    /// answer must not be a server error, except the one by design: scores
    /// that are NaN or infinite, which JSON cannot carry (docs/serving.md).
    pub fn rest_infer(&self, data: &[u8]) {
        let (header, body) = match data {
            [a, b, body @ ..] => (u16::from_le_bytes([*a, *b]), body),
            _ => return,
        };
        let mut req = Request::post("/v2/models/digits/infer").header(
            "content-type",
            if header == u16::MAX {
                "application/json"
            } else {
                "application/octet-stream"
            },
        );
        if header != u16::MAX {
            req = req.header("inference-header-content-length", header.to_string());
        }
        let req = req.body(Body::from(body.to_vec())).expect("request");
        let app = serve::router(self.state.clone());
        let (status, body) = self.rt.block_on(async {
            let r = app.oneshot(req).await.expect("infallible");
            let status = r.status();
            let body = r.into_body().collect().await.expect("body").to_bytes();
            (status, body)
        });
        let text = String::from_utf8_lossy(&body);
        let unencodable =
            status == StatusCode::INTERNAL_SERVER_ERROR && text.contains("which JSON cannot carry");
        assert!(!status.is_server_error() || unencodable, "{status}: {text}");
        if status == StatusCode::OK && header == u16::MAX {
            serde_json::from_slice::<serde_json::Value>(&body).expect("a 200 answers JSON");
        }
    }

    /// `ModelInfer` over gRPC with `data` as the protobuf message; the
    /// answer must not be `INTERNAL` or `UNKNOWN`.
    pub fn grpc_infer(&self, data: &[u8]) {
        let Ok(len) = u32::try_from(data.len()) else {
            return;
        };
        let mut frame = Vec::with_capacity(data.len() + 5);
        frame.push(0);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(data);
        let req = Request::post("/inference.GRPCInferenceService/ModelInfer")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(tonic::body::Body::new(Body::from(frame)))
            .expect("request");
        let service = serve::Grpc::service(self.state.clone());
        let code = self.rt.block_on(async {
            let r = service.oneshot(req).await.expect("infallible");
            let head = r.headers().get("grpc-status").cloned();
            let collected = r.into_body().collect().await.expect("body");
            let tail = collected
                .trailers()
                .and_then(|t| t.get("grpc-status").cloned());
            let message = collected
                .trailers()
                .and_then(|t| t.get("grpc-message").cloned());
            (head.or(tail), message)
        });
        let (status, message) = code;
        let status = status.map(|s| s.to_str().unwrap_or("?").to_owned());
        assert!(
            !matches!(status.as_deref(), Some("13" | "2")),
            "gRPC status {status:?}: {message:?}"
        );
    }
}
