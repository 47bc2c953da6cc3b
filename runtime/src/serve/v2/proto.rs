//! The gRPC encoding of the protocol (`inference.GRPCInferenceService`):
//! typed or raw input contents in, `raw_output_contents` (little-endian
//! FP32) out, as Triton answers and stock clients decode.

use std::borrow::Cow;

use super::pb::{self, ModelInferRequest, ModelInferResponse, model_infer_response};
use super::{Answer, Input, ModelMetadata, Request, TensorMetadata, Values, shown};
use crate::registry::Version;
use crate::serve::error::ApiError;

/// Decodes a `ModelInferRequest` (borrowing its contents).
pub(crate) fn decode(r: &ModelInferRequest) -> Result<Request<'_>, ApiError> {
    let raw = &r.raw_input_contents;
    if !raw.is_empty() && raw.len() != r.inputs.len() {
        return Err(ApiError::bad_request(format!(
            "raw_input_contents has {} entries but there are {} inputs",
            raw.len(),
            r.inputs.len()
        )));
    }
    let mut inputs = Vec::with_capacity(r.inputs.len());
    for (i, t) in r.inputs.iter().enumerate() {
        let typed = t.contents.as_ref().map(typed_fields).unwrap_or_default();
        if let Some(field) = typed.iter().find(|f| **f != contents_field(&t.datatype)) {
            return Err(ApiError::bad_request(format!(
                "input {i}: datatype {} does not go with {field} (as Triton, kiln reads {} for it)",
                shown(&t.datatype),
                contents_field(&t.datatype)
            )));
        }
        let values = match (raw.get(i), &t.contents) {
            (Some(_), Some(_)) if !typed.is_empty() => {
                return Err(ApiError::bad_request(format!(
                    "input {i} has both raw_input_contents and {}; send one",
                    typed[0]
                )));
            }
            (Some(bytes), _) => Values::Raw(bytes),
            (None, Some(c)) if !c.fp32_contents.is_empty() => Values::F32(&c.fp32_contents),
            _ => Values::Absent,
        };
        inputs.push(Input {
            name: Cow::Borrowed(&t.name),
            datatype: Cow::Borrowed(&t.datatype),
            shape: Cow::Borrowed(&t.shape),
            values,
        });
    }
    Ok(Request {
        id: Some(r.id.clone()),
        inputs,
        outputs: r.outputs.iter().map(|o| Cow::Borrowed(&*o.name)).collect(),
        binary_output: true,
    })
}

/// The typed-contents fields a tensor's contents fill.
fn typed_fields(c: &pb::InferTensorContents) -> Vec<&'static str> {
    [
        ("bool_contents", c.bool_contents.is_empty()),
        ("int_contents", c.int_contents.is_empty()),
        ("int64_contents", c.int64_contents.is_empty()),
        ("uint_contents", c.uint_contents.is_empty()),
        ("uint64_contents", c.uint64_contents.is_empty()),
        ("fp32_contents", c.fp32_contents.is_empty()),
        ("fp64_contents", c.fp64_contents.is_empty()),
        ("bytes_contents", c.bytes_contents.is_empty()),
    ]
    .into_iter()
    .filter(|(_, empty)| !empty)
    .map(|(name, _)| name)
    .collect()
}

/// The typed-contents field of a datatype (the protocol's table).
fn contents_field(datatype: &str) -> &'static str {
    match datatype {
        "BOOL" => "bool_contents",
        "INT8" | "INT16" | "INT32" => "int_contents",
        "INT64" => "int64_contents",
        "UINT8" | "UINT16" | "UINT32" => "uint_contents",
        "UINT64" => "uint64_contents",
        "FP32" => "fp32_contents",
        "FP64" => "fp64_contents",
        "BYTES" => "bytes_contents",
        _ => "no typed contents",
    }
}

/// The `ModelInferResponse` for `answer`.
pub(crate) fn encode(version: &Version, answer: Answer) -> ModelInferResponse {
    let raw_out: Vec<u8> = answer.scores.iter().flat_map(|f| f.to_le_bytes()).collect();
    ModelInferResponse {
        model_name: version.name.clone(),
        model_version: version.version.to_string(),
        id: answer.id.unwrap_or_default(),
        parameters: Default::default(),
        outputs: vec![model_infer_response::InferOutputTensor {
            name: version.meta.output.name.clone(),
            datatype: "FP32".into(),
            shape: vec![answer.rows as i64, version.output_len() as i64],
            parameters: Default::default(),
            contents: None,
        }],
        raw_output_contents: vec![raw_out],
    }
}

/// [`ModelMetadata`] as its protobuf message.
pub(crate) fn metadata(m: ModelMetadata) -> pb::ModelMetadataResponse {
    let tensor = |t: TensorMetadata| pb::model_metadata_response::TensorMetadata {
        name: t.name,
        datatype: t.datatype,
        shape: t.shape,
    };
    pb::ModelMetadataResponse {
        name: m.name,
        versions: m.versions,
        platform: m.platform,
        inputs: m.inputs.into_iter().map(tensor).collect(),
        outputs: m.outputs.into_iter().map(tensor).collect(),
    }
}
