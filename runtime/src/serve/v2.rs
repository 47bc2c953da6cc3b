//! KServe v2 inference requests and responses: the JSON types, the binary
//! tensor data extension, and the checks every input passes before it
//! reaches a module (shared by REST and gRPC).
//!
//! Models take one FP32 input of shape `[batch, …row]` and give one FP32
//! output `[batch, n]`. Every check names what it refuses: the input by
//! index and name, the field, the value's position.

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::registry::Version;

/// `POST …/infer` body (its JSON part, with the binary extension).
#[derive(Debug, Deserialize)]
pub struct InferRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    pub inputs: Vec<RequestInput>,
    #[serde(default)]
    pub outputs: Option<Vec<RequestOutput>>,
}

#[derive(Debug, Deserialize)]
pub struct RequestInput {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub data: Option<Data>,
}

#[derive(Debug, Deserialize)]
pub struct RequestOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
}

/// Tensor data: a flat or nested JSON array of numbers, flattened row-major.
#[derive(Debug, Default)]
pub struct Data(pub Vec<f64>);

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        Flatten(&mut out).deserialize(d)?;
        Ok(Data(out))
    }
}

struct Flatten<'a>(&'a mut Vec<f64>);

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
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.0.reserve(n);
        }
        while seq.next_element_seed(Flatten(self.0))?.is_some() {}
        Ok(())
    }
}

/// Where one input's values are.
pub enum Values<'a> {
    /// Numbers from JSON (or from gRPC typed contents).
    Numbers(Vec<f64>),
    /// FP32 values already decoded (gRPC `fp32_contents`).
    F32(&'a [f32]),
    /// Little-endian bytes (binary extension, gRPC raw contents).
    Raw(&'a [u8]),
    Absent,
}

/// One input tensor, from whichever protocol.
pub struct Input<'a> {
    pub name: &'a str,
    pub datatype: &'a str,
    pub shape: &'a [i64],
    pub values: Values<'a>,
}

/// Checks `inputs` against `version`'s signature and returns its rows
/// (row-major) and how many there are.
pub fn validate(version: &Version, inputs: Vec<Input<'_>>) -> Result<(Vec<f32>, usize), ApiError> {
    let meta = &version.meta;
    let expected = &meta.input.name;
    if inputs.len() != 1 {
        let names: Vec<&str> = inputs.iter().map(|i| i.name).collect();
        return Err(ApiError::bad_request(format!(
            "expected 1 input but got {} ({names:?}); model `{}` takes `{expected}`",
            inputs.len(),
            version.name
        )));
    }
    let input = inputs.into_iter().next().expect("one input");
    if input.name != expected {
        return Err(ApiError::bad_request(format!(
            "unexpected input `{}`: model `{}` has one input, `{expected}`; input `{expected}` is missing",
            input.name, version.name
        )));
    }
    let at = format!("input `{expected}`");
    if input.datatype != "FP32" {
        return Err(ApiError::bad_request(format!(
            "{at}: datatype {} does not match the model's FP32",
            input.datatype
        )));
    }
    let row_shape: Vec<i64> = meta.input.shape.iter().map(|&d| d as i64).collect();
    let shape_ok = input.shape.len() == row_shape.len() + 1
        && input.shape[0] > 0
        && input.shape[1..] == row_shape[..];
    if !shape_ok {
        return Err(ApiError::bad_request(format!(
            "{at}: shape {:?} does not match the model's [-1{}] (a batch of rows)",
            input.shape,
            row_shape
                .iter()
                .map(|d| format!(", {d}"))
                .collect::<String>()
        )));
    }
    let rows = input.shape[0] as usize;
    let count = rows.checked_mul(version.row_len()).ok_or_else(|| {
        ApiError::bad_request(format!("{at}: shape {:?} is too large", input.shape))
    })?;
    let values: Vec<f32> = match input.values {
        Values::Numbers(v) => {
            if v.len() != count {
                return Err(ApiError::bad_request(format!(
                    "{at}: data has {} values but shape {:?} needs {count}",
                    v.len(),
                    input.shape
                )));
            }
            v.into_iter().map(|x| x as f32).collect()
        }
        Values::F32(v) => {
            if v.len() != count {
                return Err(ApiError::bad_request(format!(
                    "{at}: fp32_contents has {} values but shape {:?} needs {count}",
                    v.len(),
                    input.shape
                )));
            }
            v.to_vec()
        }
        Values::Raw(bytes) => {
            if bytes.len() != count * 4 {
                return Err(ApiError::bad_request(format!(
                    "{at}: input byte size mismatch: expected {} bytes for shape {:?}, got {}",
                    count * 4,
                    input.shape,
                    bytes.len()
                )));
            }
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
        Values::Absent => {
            return Err(ApiError::bad_request(format!(
                "{at}: no data (give `data`, or `parameters.binary_data_size` with binary data)"
            )));
        }
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(ApiError::bad_request(format!(
            "{at}: value {i} is {}; inputs must be finite FP32 numbers",
            values[i]
        )));
    }
    Ok((values, rows))
}

/// Checks requested output names.
pub fn check_outputs<'a>(
    version: &Version,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), ApiError> {
    for name in names {
        if name != version.meta.output.name {
            return Err(ApiError::bad_request(format!(
                "unknown output `{name}`: model `{}` has one output, `{}`",
                version.name, version.meta.output.name
            )));
        }
    }
    Ok(())
}

/// `GET /v2/models/{m}` body.
#[derive(Debug, Serialize)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

#[derive(Debug, Serialize)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// The platform name kiln reports in model metadata.
pub const PLATFORM: &str = "kiln_wasm";

impl ModelMetadata {
    pub fn of(version: &Version, versions: &[u64]) -> ModelMetadata {
        let m = &version.meta;
        let tensor = |t: &crate::module::TensorMeta| TensorMetadata {
            name: t.name.clone(),
            datatype: t.datatype.clone(),
            shape: std::iter::once(-1)
                .chain(t.shape.iter().map(|&d| d as i64))
                .collect(),
        };
        ModelMetadata {
            name: version.name.clone(),
            versions: versions.iter().map(u64::to_string).collect(),
            platform: PLATFORM.into(),
            inputs: vec![tensor(&m.input)],
            outputs: vec![tensor(&m.output)],
        }
    }
}

/// `POST …/infer` response (its JSON part).
#[derive(Debug, Serialize)]
pub struct InferResponse<'a> {
    pub model_name: &'a str,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    pub outputs: Vec<ResponseOutput<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ResponseOutput<'a> {
    pub name: &'a str,
    pub datatype: &'static str,
    pub shape: [usize; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a [f32]>,
}

/// Whether `parameters[key]` is `true`.
pub fn flag(parameters: &Option<Map<String, Value>>, key: &str) -> bool {
    parameters
        .as_ref()
        .and_then(|p| p.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `parameters.binary_data_size` of an input, if any.
pub fn binary_size(input: &RequestInput) -> Result<Option<usize>, ApiError> {
    match input
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_size"))
    {
        None => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
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
        assert_eq!(d.0, vec![1.0, 2.5, 3.0, -400.0]);
        let e = serde_json::from_str::<Data>("[1, \"NaN\"]").unwrap_err();
        assert!(e.to_string().contains("expected a number"), "{e}");
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
