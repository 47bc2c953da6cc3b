//! The REST encoding of the protocol: JSON bodies, and the binary tensor
//! data extension (a JSON header of `Inference-Header-Content-Length` bytes,
//! then each input's little-endian bytes as its
//! `parameters.binary_data_size` says; answers likewise when the request
//! asks for `binary_data`).

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Answer, HEADER_LEN, Input, Request, Values};
use crate::registry::Version;
use crate::serve::error::ApiError;

/// `POST …/infer` body (its JSON part, with the binary extension).
///
/// What a body may hold is bounded so that its parsed form stays within a
/// small multiple of its size: at most [`MAX_TENSORS`] inputs and outputs,
/// [`MAX_DIMS`] dimensions, [`MAX_PARAMETERS`] parameters per map, each a
/// scalar (the protocol's bool, number or string), and tensor data read
/// straight into f32.
#[derive(Debug, Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, deserialize_with = "parameters")]
    parameters: Option<Map<String, Value>>,
    #[serde(deserialize_with = "at_most::<MAX_TENSORS, _, _>")]
    inputs: Vec<RequestInput>,
    #[serde(default, deserialize_with = "some_at_most::<MAX_TENSORS, _, _>")]
    outputs: Option<Vec<RequestOutput>>,
}

#[derive(Debug, Deserialize)]
struct RequestInput {
    name: String,
    #[serde(deserialize_with = "at_most::<MAX_DIMS, _, _>")]
    shape: Vec<i64>,
    datatype: String,
    #[serde(default, deserialize_with = "parameters")]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Debug, Deserialize)]
struct RequestOutput {
    name: String,
    #[serde(default, deserialize_with = "parameters")]
    parameters: Option<Map<String, Value>>,
}

/// Inputs, and outputs, a request may name.
const MAX_TENSORS: usize = 64;
/// Dimensions of a shape.
const MAX_DIMS: usize = 16;
/// Entries of a `parameters` map.
const MAX_PARAMETERS: usize = 64;

/// A sequence of at most `N` elements, refused as soon as it has more.
fn at_most<'de, const N: usize, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    struct Bounded<const N: usize, T>(std::marker::PhantomData<T>);
    impl<'de, const N: usize, T: Deserialize<'de>> Visitor<'de> for Bounded<N, T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {N} elements")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(x) = seq.next_element()? {
                if out.len() == N {
                    return Err(serde::de::Error::custom(format!("more than {N} elements")));
                }
                out.push(x);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded::<N, T>(std::marker::PhantomData))
}

fn some_at_most<'de, const N: usize, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    at_most::<N, D, T>(d).map(Some)
}

/// A `parameters` map: at most [`MAX_PARAMETERS`] entries, each a scalar.
fn parameters<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Map<String, Value>>, D::Error> {
    struct Params;
    impl<'de> Visitor<'de> for Params {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an object of at most {MAX_PARAMETERS} scalar parameters")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.len() == MAX_PARAMETERS {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_PARAMETERS} parameters"
                    )));
                }
                let value = map.next_value::<Scalar>()?.0;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Params).map(Some)
}

/// A parameter's value: a bool, number or string, refused (without being
/// read into memory) if it is an array or an object.
struct Scalar(Value);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a bool, a number or a string")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::from(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                Ok(Value::from(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(Value::from(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::from(v))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::from(v))
            }
        }
        d.deserialize_any(V).map(Scalar)
    }
}

/// Tensor data: a flat or nested JSON array of numbers, flattened row-major
/// into f32 (each number rounded once, from its f64 value).
#[derive(Debug, Default)]
struct Data(Vec<f32>);

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        Flatten(&mut out).deserialize(d)?;
        Ok(Data(out))
    }
}

struct Flatten<'a>(&'a mut Vec<f32>);

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number or an array of numbers")
    }
    // Integers go through f64 first, as they always did: the same f32.
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(v as f32);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f64 as f32);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f64 as f32);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten(self.0))?.is_some() {}
        Ok(())
    }
}

/// `POST …/infer` response (its JSON part).
#[derive(Debug, Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<ResponseOutput<'a>>,
}

#[derive(Debug, Serialize)]
struct ResponseOutput<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: [usize; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a [f32]>,
}

/// Checks an infer request's headers before its body is read: the
/// Content-Type, and the binary extension's header length if any.
pub(crate) fn check_headers(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    let header_len = match headers.get(HEADER_LEN) {
        None => None,
        Some(h) => Some(
            h.to_str()
                .ok()
                .and_then(|h| h.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("header {HEADER_LEN} must be a byte count"))
                })?,
        ),
    };
    check_content_type(headers, header_len.is_some())?;
    Ok(header_len)
}

/// Decodes an infer body; `header_len` is what [`check_headers`] returned.
pub(crate) fn decode(header_len: Option<usize>, body: &[u8]) -> Result<Request<'_>, ApiError> {
    let (json_part, mut binary) = match header_len {
        None => (body, &body[body.len()..]),
        Some(n) if n <= body.len() => body.split_at(n),
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "header {HEADER_LEN} is {n} but the body has only {} bytes",
                body.len()
            )));
        }
    };
    let req: InferRequest = parse_json(json_part)?;
    let mut inputs = Vec::with_capacity(req.inputs.len());
    for input in req.inputs {
        let values = match (binary_size(&input)?, input.data) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(format!(
                    "input `{}` has both `data` and parameters.binary_data_size",
                    input.name
                )));
            }
            (Some(n), None) => {
                if n > binary.len() {
                    return Err(ApiError::bad_request(format!(
                        "input `{}`: binary_data_size is {n} but only {} bytes of binary data remain",
                        input.name,
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(n);
                binary = rest;
                Values::Raw(mine)
            }
            (None, Some(d)) => Values::Numbers(d.0),
            (None, None) => Values::Absent,
        };
        inputs.push(Input {
            name: Cow::Owned(input.name),
            datatype: Cow::Owned(input.datatype),
            shape: Cow::Owned(input.shape),
            values,
        });
    }
    if !binary.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} bytes of binary data follow the JSON that no input claims (binary_data_size)",
            binary.len()
        )));
    }
    let outputs = req.outputs.unwrap_or_default();
    let all_binary = flag(&req.parameters, "binary_data_output");
    let binary_output = match outputs.first() {
        Some(o) => match o.parameters.as_ref().and_then(|p| p.get("binary_data")) {
            Some(b) => b.as_bool().unwrap_or(false),
            None => all_binary,
        },
        None => all_binary,
    };
    Ok(Request {
        id: req.id,
        inputs,
        outputs: outputs.into_iter().map(|o| Cow::Owned(o.name)).collect(),
        binary_output,
    })
}

/// The HTTP response for `answer`: JSON, or JSON then the scores' bytes.
/// JSON has no NaN or infinity: a score that is one is an error saying so
/// (the binary extension and gRPC carry every f32).
pub(crate) fn encode(version: &Version, answer: &Answer) -> Result<Response, ApiError> {
    let binary = answer.binary_output;
    if let Some(i) = answer
        .scores
        .iter()
        .position(|v| !v.is_finite())
        .filter(|_| !binary)
    {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "output `{}` value {i} is {}, which JSON cannot carry; ask for the output \
                 as binary data (parameters.binary_data) or use gRPC to receive it",
                version.meta.output.name, answer.scores[i]
            ),
        ));
    }
    let raw: Vec<u8> = if binary {
        answer.scores.iter().flat_map(|f| f.to_le_bytes()).collect()
    } else {
        Vec::new()
    };
    let response = InferResponse {
        model_name: &version.name,
        model_version: version.version.to_string(),
        id: answer.id.as_deref(),
        outputs: vec![ResponseOutput {
            name: &version.meta.output.name,
            datatype: "FP32",
            shape: [answer.rows, version.output_len()],
            parameters: binary.then(|| json!({ "binary_data_size": raw.len() })),
            data: (!binary).then_some(&answer.scores[..]),
        }],
    };
    let mut json_bytes = serde_json::to_vec(&response).expect("response serialises");
    if binary {
        let len = json_bytes.len();
        json_bytes.extend_from_slice(&raw);
        Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (
                    header::HeaderName::from_static(HEADER_LEN),
                    HeaderValue::from(len),
                ),
            ],
            json_bytes,
        )
            .into_response())
    } else {
        Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json_bytes,
        )
            .into_response())
    }
}

/// 415 unless the body is JSON (or, with the binary extension, octet-stream).
pub(crate) fn check_content_type(headers: &HeaderMap, binary: bool) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    let ok = essence == "application/json"
        || (binary && essence == "application/octet-stream")
        || essence.is_empty();
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type `{essence}` is not supported: send application/json{}",
                if binary {
                    " or application/octet-stream"
                } else {
                    ""
                }
            ),
        ))
    }
}

/// Parses JSON, naming the field of the first error; serde_json's nesting
/// limit (128) turns absurdly deep documents into a 400.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON body at `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// Whether `parameters[key]` is `true`.
fn flag(parameters: &Option<Map<String, Value>>, key: &str) -> bool {
    parameters
        .as_ref()
        .and_then(|p| p.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `parameters.binary_data_size` of an input, if any.
fn binary_size(input: &RequestInput) -> Result<Option<usize>, ApiError> {
    match input
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_size"))
    {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "input `{}`: parameters.binary_data_size must be a non-negative integer",
                    input.name
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_flattens_nested_arrays() {
        let d: Data = serde_json::from_str("[[1, 2.5], [3, -4e2]]").unwrap();
        assert_eq!(d.0, vec![1.0_f32, 2.5, 3.0, -400.0]);
        let e = serde_json::from_str::<Data>("[1, \"NaN\"]").unwrap_err();
        assert!(e.to_string().contains("expected a number"), "{e}");
    }

    /// What a body may hold is bounded: no parameter may be an array (read
    /// as a JSON value, a 16 MiB array of zeros took ~256 MB), and inputs,
    /// outputs, dimensions and parameters are counted.
    #[test]
    fn parsed_bodies_stay_small() {
        let zeros = vec!["0"; 8 << 20].join(",");
        let body = format!(
            r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","parameters":{{"p":[{zeros}]}}}}]}}"#
        );
        let e = parse_json::<InferRequest>(body.as_bytes()).unwrap_err();
        assert!(
            e.message.contains("a bool, a number or a string"),
            "{}",
            e.message
        );
        let input = r#"{"name":"x","shape":[1],"datatype":"FP32"}"#;
        let many = format!(r#"{{"inputs":[{}]}}"#, vec![input; 65].join(","));
        let e = parse_json::<InferRequest>(many.as_bytes()).unwrap_err();
        assert!(e.message.contains("more than 64 elements"), "{}", e.message);
        let dims = format!(
            r#"{{"inputs":[{{"name":"x","shape":[{}],"datatype":"FP32"}}]}}"#,
            vec!["1"; 17].join(",")
        );
        let e = parse_json::<InferRequest>(dims.as_bytes()).unwrap_err();
        assert!(e.message.contains("more than 16 elements"), "{}", e.message);
        let d: Data = serde_json::from_str("[16777217, 0.1]").unwrap();
        assert_eq!(d.0, [16777217_f64 as f32, 0.1_f64 as f32]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(150_000) + &"]".repeat(150_000);
        let body =
            format!(r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{deep}}}]}}"#);
        let e = serde_json::from_str::<InferRequest>(&body).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
    }
}
