//! The KServe v2 inference protocol, in one place for both transports: a
//! request decoded from REST JSON (with the binary tensor data extension,
//! [`json`]) or from gRPC ([`proto`]) becomes one [`Request`]; [`validate`]
//! checks it against a model version; the [`Answer`] is encoded back by the
//! same transport's module. The REST and gRPC handlers only adapt.
//!
//! Models take one FP32 input of shape `[batch, …row]` and give one FP32
//! output `[batch, n]`. Every check names what it refuses: the input by
//! index and name, the field, the value's position.

pub(crate) mod json;
pub(crate) mod proto;

use std::borrow::Cow;
use std::time::Duration;

use serde::Serialize;

use super::error::ApiError;
use crate::registry::Version;

/// The generated gRPC protocol types and service
/// (`proto/grpc_service.proto`).
#[allow(unreachable_pub, missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("inference");
}

/// Header of the binary tensor data extension: length of the JSON part.
pub(crate) const HEADER_LEN: &str = "inference-header-content-length";

/// The platform name kiln reports in model metadata.
pub(crate) const PLATFORM: &str = "kiln_wasm";

/// Server metadata: name, version and protocol extensions.
pub(crate) const SERVER_NAME: &str = "kiln";
pub(crate) const EXTENSIONS: [&str; 2] = ["model_repository", "binary_tensor_data"];

/// One inference request, from whichever transport.
pub struct Request<'a> {
    pub id: Option<String>,
    pub inputs: Vec<Input<'a>>,
    /// Names of the requested outputs (none: every output).
    pub outputs: Vec<Cow<'a, str>>,
    /// Whether the answer goes back as binary data (REST extension; gRPC
    /// always answers raw bytes).
    pub binary_output: bool,
}

/// Where one input's values are.
pub enum Values<'a> {
    /// Numbers from JSON, read straight into f32 (each rounded once from
    /// its f64 value, as `x as f32`).
    Numbers(Vec<f32>),
    /// FP32 values already decoded (gRPC `fp32_contents`).
    F32(&'a [f32]),
    /// Little-endian bytes (binary extension, gRPC raw contents).
    Raw(&'a [u8]),
    Absent,
}

/// One input tensor.
pub struct Input<'a> {
    pub name: Cow<'a, str>,
    pub datatype: Cow<'a, str>,
    pub shape: Cow<'a, [i64]>,
    pub values: Values<'a>,
}

/// What a version answered to a [`Request`].
pub struct Answer {
    pub id: Option<String>,
    pub binary_output: bool,
    /// Rows in, rows out.
    pub rows: usize,
    /// `rows * output_len` scores.
    pub scores: Vec<f32>,
    /// Time the request waited in the version's queue.
    pub queue: Duration,
}

/// Checks `request` against `version`'s signature and returns its rows
/// (row-major) and how many there are.
pub(crate) fn validate(
    version: &Version,
    request: Request<'_>,
) -> Result<(Vec<f32>, usize), ApiError> {
    let rows = validate_inputs(version, request.inputs)?;
    check_outputs(version, &request.outputs)?;
    Ok(rows)
}

fn validate_inputs(
    version: &Version,
    inputs: Vec<Input<'_>>,
) -> Result<(Vec<f32>, usize), ApiError> {
    let meta = &version.meta;
    let expected = &meta.input.name;
    if inputs.len() != 1 {
        let mut names: Vec<String> = inputs.iter().take(4).map(|i| shown(&i.name)).collect();
        if inputs.len() > 4 {
            names.push("…".into());
        }
        return Err(ApiError::bad_request(format!(
            "expected 1 input but got {} ({names:?}); model `{}` takes `{expected}`",
            inputs.len(),
            version.name
        )));
    }
    let input = inputs.into_iter().next().expect("one input");
    if input.name != *expected {
        return Err(ApiError::bad_request(format!(
            "unexpected input `{}`: model `{}` has one input, `{expected}`; input `{expected}` is missing",
            shown(&input.name),
            version.name
        )));
    }
    let at = format!("input `{expected}`");
    if input.datatype != "FP32" {
        return Err(ApiError::bad_request(format!(
            "{at}: datatype {} does not match the model's FP32",
            shown(&input.datatype)
        )));
    }
    // Dimensions fit i32: checked at load (`sandbox`).
    let row_shape: Vec<i64> = meta.input.shape.iter().map(|&d| dim(d)).collect();
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
            v
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
            let expected = count.checked_mul(4).ok_or_else(|| {
                ApiError::bad_request(format!("{at}: shape {:?} is too large", input.shape))
            })?;
            if bytes.len() != expected {
                return Err(ApiError::bad_request(format!(
                    "{at}: input byte size mismatch: expected {expected} bytes for shape {:?}, got {}",
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
    check_finite(&at, &values, version.row_len(), meta)?;
    Ok((values, rows))
}

/// Refuses an infinity anywhere, and a NaN except in the features the
/// model routes missing values of (`kiln.meta`'s `missing`: tree
/// ensembles, docs/trees.md), naming the feature.
fn check_finite(
    at: &str,
    values: &[f32],
    row_len: usize,
    meta: &crate::module::ModuleMeta,
) -> Result<(), ApiError> {
    let missing_ok = |i: usize| meta.missing.contains(&(i % row_len.max(1)));
    let Some(i) = values
        .iter()
        .enumerate()
        .position(|(i, v)| !(v.is_finite() || (v.is_nan() && missing_ok(i))))
    else {
        return Ok(());
    };
    let v = values[i];
    if v.is_nan() {
        let f = i % row_len.max(1);
        let name = meta
            .features
            .get(f)
            .map_or(String::new(), |n| format!(" `{}`", shown(n)));
        let why = if meta.missing.is_empty() {
            "this model routes no missing values"
        } else {
            "the model learned no direction for a missing value of it"
        };
        return Err(ApiError::bad_request(format!(
            "{at}: value {i} is NaN: feature {f}{name} cannot be missing ({why})"
        )));
    }
    Err(ApiError::bad_request(format!(
        "{at}: value {i} is {v}; inputs must be finite FP32 numbers"
    )))
}

/// Checks requested output names.
fn check_outputs(version: &Version, names: &[Cow<'_, str>]) -> Result<(), ApiError> {
    for name in names {
        if *name != version.meta.output.name {
            return Err(ApiError::bad_request(format!(
                "unknown output `{}`: model `{}` has one output, `{}`",
                shown(name),
                version.name,
                version.meta.output.name
            )));
        }
    }
    Ok(())
}

/// A dimension of `kiln.meta` as the protocol's i64 (every one fits: the
/// sandbox refuses a module with a dimension over i32 at load).
fn dim(d: usize) -> i64 {
    i64::try_from(d).unwrap_or(i64::MAX)
}

/// A name the client sent, as an error message shows it: at most 64
/// characters.
pub(super) fn shown(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_string(),
    }
}

/// `GET /v2/models/{m}` body.
#[derive(Debug, Serialize)]
pub(crate) struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

impl ModelMetadata {
    pub(crate) fn of(version: &Version, versions: &[u64]) -> ModelMetadata {
        let m = &version.meta;
        let tensor = |t: &crate::module::TensorMeta| TensorMetadata {
            name: t.name.clone(),
            datatype: t.datatype.clone(),
            shape: std::iter::once(-1)
                .chain(t.shape.iter().map(|&d| dim(d)))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A NaN passes only in the features `kiln.meta` lists as `missing`,
    /// row after row; elsewhere it is refused naming the feature, and an
    /// infinity everywhere.
    #[test]
    fn nan_is_accepted_only_where_the_model_routes_it() {
        let mut meta: crate::module::ModuleMeta = serde_json::from_value(serde_json::json!({
            "abi_version": 1, "name": "t", "version": "1", "task": "regression",
            "input": {"name": "x", "datatype": "FP32", "shape": [3]},
            "output": {"name": "scores", "datatype": "FP32", "shape": [1]},
            "features": ["a", "b", "c"], "missing": [0, 2],
            "model_sha256": "", "kiln_version": ""
        }))
        .unwrap();
        let nan = f32::NAN;
        let check = |v: &[f32], meta: &crate::module::ModuleMeta| {
            check_finite("input `x`", v, 3, meta).map_err(|e| e.message)
        };
        assert!(check(&[nan, 1.0, nan, 0.0, 2.0, nan], &meta).is_ok());
        let err = check(&[0.0, 1.0, 2.0, 0.0, nan, 1.0], &meta).unwrap_err();
        assert!(
            err.contains("value 4 is NaN: feature 1 `b` cannot be missing"),
            "{err}"
        );
        let err = check(&[f32::INFINITY, 1.0, 2.0], &meta).unwrap_err();
        assert!(err.contains("value 0 is inf"), "{err}");
        meta.missing.clear();
        let err = check(&[nan, 1.0, 2.0], &meta).unwrap_err();
        assert!(err.contains("routes no missing values"), "{err}");
    }
}
