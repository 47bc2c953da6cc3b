//! What a gRPC request passes before tonic decodes its message.
//!
//! tonic decodes a whole message before the handler runs, and prost turns a
//! few wire bytes into large structs: an empty `inputs` entry is 2 bytes on
//! the wire and a few hundred in memory. So the [`Gate`] runs first, on the
//! raw HTTP/2 request: it checks the API key (an unknown or missing key, or
//! a non-admin key on the repository API, is refused with no byte of the
//! body read), and for `ModelInfer` it reads the message (within the size
//! cap) and scans its protobuf wire format without allocating, refusing a
//! message with more tensors, parameters, dimensions or values than
//! [`WireLimits`] allow. Only then does tonic decode it. It also counts
//! every answer's gRPC status in the metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::http;
use http_body_util::{BodyExt, Full, Limited};
use tonic::Status;
use tonic::body::Body;

use crate::serve::auth::{Scope, presented};
use crate::serve::state::AppState;

/// How much a `ModelInferRequest` may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireLimits {
    /// Message bytes (after the 5-byte gRPC frame header).
    pub message_bytes: usize,
    /// Entries of `inputs`, of `outputs` and of `raw_input_contents`, each.
    pub tensors: usize,
    /// Entries of each `parameters` map.
    pub parameters: usize,
    /// Dimensions of each input's shape.
    pub dims: usize,
    /// Values in all typed contents together.
    pub values: usize,
}

impl WireLimits {
    /// The limits for messages of at most `message_bytes`: typed contents
    /// may hold as many values as raw FP32 bytes of that size would.
    pub(crate) fn new(message_bytes: usize) -> WireLimits {
        WireLimits {
            message_bytes,
            tensors: 64,
            parameters: 64,
            dims: 16,
            values: message_bytes / 4,
        }
    }
}

/// A gRPC service behind the checks of the module note.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> Gate<S> {
    pub fn new(inner: S, state: Arc<AppState>) -> Gate<S> {
        Gate { inner, state }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Gate<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Gate<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone is ready only after poll_ready; call the one that is.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let response = match admit(&state, req).await {
                Ok(req) => inner.call(req).await?,
                Err(status) => status.into_http(),
            };
            // An error answer carries its status in the headers (a unary
            // success carries OK in the trailers).
            let code =
                Status::from_header_map(response.headers()).map_or(tonic::Code::Ok, |s| s.code());
            state.metrics.record_grpc(code);
            Ok(response)
        })
    }
}

/// The request, once its key and (for `ModelInfer`) its message passed.
async fn admit(state: &AppState, req: http::Request<Body>) -> Result<http::Request<Body>, Status> {
    let method = req.uri().path().rsplit('/').next().unwrap_or("");
    let key = presented(req.headers());
    match method {
        "ServerLive" | "ServerReady" | "ServerMetadata" => return Ok(req),
        "RepositoryIndex" | "RepositoryModelLoad" | "RepositoryModelUnload" => {
            state.auth.check(key, Scope::Admin)
        }
        // Which model is asked for is in the message: the handler checks
        // the key's models once it is decoded.
        _ => state.auth.authenticate(key),
    }
    .map_err(|e| e.to_status())?;
    if method != "ModelInfer" {
        return Ok(req);
    }
    let limits = WireLimits::new(state.max_body);
    let (parts, body) = req.into_parts();
    let bytes = read_message(body, limits.message_bytes).await?;
    check_frame(&bytes, &limits)?;
    Ok(http::Request::from_parts(
        parts,
        Body::new(Full::new(bytes)),
    ))
}

/// The request body: one gRPC frame of at most `max` message bytes.
async fn read_message(body: Body, max: usize) -> Result<Bytes, Status> {
    match Limited::new(body, max.saturating_add(5)).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(max)),
        Err(e) => Err(match e.downcast::<Status>() {
            Ok(s) => *s,
            Err(e) => Status::cancelled(format!("reading the request: {e}")),
        }),
    }
}

fn too_large(max: usize) -> Status {
    Status::resource_exhausted(format!(
        "message is over the {max}-byte cap (server.max_body_mib in kiln.toml)"
    ))
}

/// Checks the message in a gRPC frame against `limits`. A frame that is
/// compressed or malformed is left to tonic, which refuses it.
fn check_frame(frame: &[u8], limits: &WireLimits) -> Result<(), Status> {
    let Some((&[flag, a, b, c, d], message)) = frame.split_first_chunk::<5>() else {
        return Ok(());
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len > limits.message_bytes {
        return Err(too_large(limits.message_bytes));
    }
    if flag != 0 || len != message.len() {
        return Ok(());
    }
    scan_infer_request(message, limits).map_err(Status::invalid_argument)
}

/// One field of a protobuf message: its number and payload.
enum Field<'a> {
    Varint,
    Fixed32,
    Fixed64,
    Bytes(&'a [u8]),
}

/// Reads the fields of a protobuf message without allocating.
struct Wire<'a> {
    buf: &'a [u8],
}

const MALFORMED: &str = "malformed ModelInferRequest";

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(MALFORMED)?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(MALFORMED.into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(MALFORMED.into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => {
                self.varint()?;
                Field::Varint
            }
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| MALFORMED)?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed32
            }
            _ => return Err(MALFORMED.into()),
        };
        Ok(Some((key >> 3, field)))
    }
}

/// Counts against one limit, naming it when exceeded.
fn count(n: &mut usize, add: usize, max: usize, what: &str) -> Result<(), String> {
    *n = n.saturating_add(add);
    if *n > max {
        Err(format!("the request has more than {max} {what}"))
    } else {
        Ok(())
    }
}

/// Varints in a packed repeated field.
fn packed_varints(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b < 0x80).count()
}

/// Checks a `ModelInferRequest` (`proto/grpc_service.proto`): fields 4
/// (parameters), 5 (inputs), 6 (outputs), 7 (raw_input_contents).
fn scan_infer_request(message: &[u8], limits: &WireLimits) -> Result<(), String> {
    let (mut inputs, mut outputs, mut raw, mut params, mut values) = (0, 0, 0, 0, 0);
    let mut wire = Wire { buf: message };
    while let Some((number, field)) = wire.next()? {
        match (number, field) {
            (4, _) => count(&mut params, 1, limits.parameters, "request parameters")?,
            (5, Field::Bytes(b)) => {
                count(&mut inputs, 1, limits.tensors, "inputs")?;
                scan_input(b, limits, &mut values)?;
            }
            (6, Field::Bytes(b)) => {
                count(&mut outputs, 1, limits.tensors, "outputs")?;
                scan_parameters(b, 2, limits)?;
            }
            (7, _) => count(&mut raw, 1, limits.tensors, "raw_input_contents entries")?,
            _ => {}
        }
    }
    Ok(())
}

/// Counts the entries of the `parameters` map (field `number`) of a message.
fn scan_parameters(message: &[u8], number: u64, limits: &WireLimits) -> Result<(), String> {
    let mut n = 0;
    let mut wire = Wire { buf: message };
    while let Some((k, _)) = wire.next()? {
        if k == number {
            count(&mut n, 1, limits.parameters, "parameters on one tensor")?;
        }
    }
    Ok(())
}

/// An `InferInputTensor`: 3 shape, 4 parameters, 5 contents.
fn scan_input(message: &[u8], limits: &WireLimits, values: &mut usize) -> Result<(), String> {
    let (mut dims, mut params) = (0, 0);
    let mut wire = Wire { buf: message };
    while let Some((number, field)) = wire.next()? {
        match (number, field) {
            (3, Field::Bytes(b)) => count(&mut dims, packed_varints(b), limits.dims, "dims")?,
            (3, _) => count(&mut dims, 1, limits.dims, "dims")?,
            (4, _) => count(
                &mut params,
                1,
                limits.parameters,
                "parameters on one tensor",
            )?,
            (5, Field::Bytes(b)) => scan_contents(b, limits, values)?,
            _ => {}
        }
    }
    Ok(())
}

/// `InferTensorContents`: 1–5 varint types, 6 fp32, 7 fp64, 8 bytes.
fn scan_contents(message: &[u8], limits: &WireLimits, values: &mut usize) -> Result<(), String> {
    let what = "tensor values in typed contents";
    let mut wire = Wire { buf: message };
    while let Some((number, field)) = wire.next()? {
        let n = match (number, field) {
            (1..=5, Field::Bytes(b)) => packed_varints(b),
            (6, Field::Bytes(b)) => b.len() / 4,
            (7, Field::Bytes(b)) => b.len() / 8,
            (1..=8, _) => 1,
            _ => 0,
        };
        count(values, n, limits.values, what)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protobuf field: key, then a length-delimited payload.
    fn field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |mut v: u64| loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        };
        put((number << 3) | 2);
        put(payload.len() as u64);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn counts_are_bounded_without_decoding() {
        let limits = WireLimits::new(16 << 20);
        // 2,000,000 empty inputs: 4 MB on the wire.
        let many: Vec<u8> = (0..2_000_000).flat_map(|_| field(5, &[])).collect();
        let e = scan_infer_request(&many, &limits).unwrap_err();
        assert_eq!(e, "the request has more than 64 inputs");
        let one = [field(1, b"digits"), field(5, &field(3, &[1, 64]))].concat();
        assert!(scan_infer_request(&one, &limits).is_ok());
        let dims = field(5, &field(3, &[1; 17]));
        assert!(
            scan_infer_request(&dims, &limits)
                .unwrap_err()
                .contains("16 dims")
        );
        let params: Vec<u8> = (0..65).flat_map(|_| field(4, &[])).collect();
        let e = scan_infer_request(&field(5, &params), &limits).unwrap_err();
        assert!(e.contains("64 parameters"), "{e}");
        // int64_contents: 1 byte per value on the wire, 8 in memory.
        let small = WireLimits::new(1 << 10);
        let contents = field(5, &field(5, &field(3, &[1; 300])));
        let e = scan_infer_request(&contents, &small).unwrap_err();
        assert!(e.contains("256 tensor values"), "{e}");
        assert_eq!(
            scan_infer_request(&[0x2a, 0x05, 1], &limits).unwrap_err(),
            MALFORMED
        );
    }
}
