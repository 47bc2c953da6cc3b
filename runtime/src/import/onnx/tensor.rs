//! Constant tensors (initializers, `Constant` nodes, attributes) and node
//! attributes, read totally: a tensor whose data disagrees with its shape,
//! an unsupported data type or an attribute nobody asked for is an error
//! naming the tensor or the node.

use std::collections::BTreeMap;

use ndarray::{ArrayD, IxDyn};

use super::proto::{self, AttributeProto, TensorProto, attribute_type, data_type};
use super::{ImportError, NodeRef};

/// Largest constant the importer materialises (2^28 values, 1 GiB of f32).
const MAX_ELEMENTS: usize = 1 << 28;

/// A constant tensor, as floats (weights) or integers (shapes, indices).
#[derive(Debug, Clone)]
pub(crate) enum Const {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
    /// String tensors only ever name classes (scikit-learn labels).
    Str(Vec<String>),
}

impl Const {
    pub(crate) fn shape(&self) -> Vec<usize> {
        match self {
            Const::F32(a) => a.shape().to_vec(),
            Const::I64(a) => a.shape().to_vec(),
            Const::Str(s) => vec![s.len()],
        }
    }

    pub(crate) fn dtype(&self) -> &'static str {
        match self {
            Const::F32(_) => "FLOAT",
            Const::I64(_) => "INT64",
            Const::Str(_) => "STRING",
        }
    }
}

fn tensor_err(tensor: &str, problem: impl Into<String>) -> ImportError {
    ImportError::Tensor {
        tensor: if tensor.is_empty() {
            "(unnamed)".into()
        } else {
            tensor.into()
        },
        problem: problem.into(),
    }
}

/// Decodes a `TensorProto`, checking its data against its dims.
/// `FLOAT` and `DOUBLE` become f32; `INT64`, `INT32` and `BOOL` become i64.
pub(crate) fn decode(t: &TensorProto) -> Result<Const, ImportError> {
    let name = t.name.as_str();
    if t.data_location == proto::DATA_LOCATION_EXTERNAL || !t.external_data.is_empty() {
        return Err(tensor_err(
            name,
            "its data is stored in an external file, which kiln does not read; \
             save the model with all tensors inside (onnx.save_model(..., save_as_external_data=False))",
        ));
    }
    if t.segment.is_some() {
        return Err(tensor_err(name, "segmented tensors are not supported"));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        let d =
            usize::try_from(d).map_err(|_| tensor_err(name, format!("negative dimension {d}")))?;
        dims.push(d);
    }
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| tensor_err(name, format!("shape {dims:?} is too large")))?;
    let raw = t.raw_data.as_deref();
    let mismatch = |found: usize, what: &str| {
        tensor_err(
            name,
            format!(
                "shape {dims:?} needs {count} values but its {what} holds {found}; the file is corrupt"
            ),
        )
    };
    let from_raw = |width: usize| -> Result<Option<&[u8]>, ImportError> {
        match raw {
            Some(r) if r.len() != count * width => Err(tensor_err(
                name,
                format!(
                    "shape {dims:?} needs {} bytes of raw data but it holds {}; the file is corrupt",
                    count * width,
                    r.len()
                ),
            )),
            r => Ok(r),
        }
    };
    let shape = IxDyn(&dims);
    let f32s = |v: Vec<f32>| {
        ArrayD::from_shape_vec(shape.clone(), v).map_err(|e| tensor_err(name, e.to_string()))
    };
    let i64s = |v: Vec<i64>| {
        ArrayD::from_shape_vec(shape.clone(), v).map_err(|e| tensor_err(name, e.to_string()))
    };
    match t.data_type {
        data_type::FLOAT => {
            let v = match from_raw(4)? {
                Some(r) => r
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                None if t.float_data.len() == count => t.float_data.clone(),
                None => return Err(mismatch(t.float_data.len(), "float_data")),
            };
            Ok(Const::F32(f32s(v)?))
        }
        data_type::DOUBLE => {
            let v = match from_raw(8)? {
                Some(r) => r
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                    .collect(),
                None if t.double_data.len() == count => {
                    t.double_data.iter().map(|&d| d as f32).collect()
                }
                None => return Err(mismatch(t.double_data.len(), "double_data")),
            };
            Ok(Const::F32(f32s(v)?))
        }
        data_type::INT64 => {
            let v = match from_raw(8)? {
                Some(r) => r
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
                None if t.int64_data.len() == count => t.int64_data.clone(),
                None => return Err(mismatch(t.int64_data.len(), "int64_data")),
            };
            Ok(Const::I64(i64s(v)?))
        }
        data_type::INT32 | data_type::BOOL | data_type::UINT8 | data_type::INT8 => {
            let width = if t.data_type == data_type::INT32 {
                4
            } else {
                1
            };
            let v = match from_raw(width)? {
                Some(r) if width == 4 => r
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
                Some(r) if t.data_type == data_type::INT8 => {
                    r.iter().map(|&b| b as i8 as i64).collect()
                }
                Some(r) => r.iter().map(|&b| b as i64).collect(),
                None if t.int32_data.len() == count => {
                    t.int32_data.iter().map(|&v| v as i64).collect()
                }
                None => return Err(mismatch(t.int32_data.len(), "int32_data")),
            };
            Ok(Const::I64(i64s(v)?))
        }
        data_type::STRING => {
            if t.string_data.len() != count {
                return Err(mismatch(t.string_data.len(), "string_data"));
            }
            Ok(Const::Str(
                t.string_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ))
        }
        other => Err(tensor_err(
            name,
            format!(
                "data type {} ({other}) is not supported (kiln imports FLOAT weights)",
                data_type::name(other)
            ),
        )),
    }
}

/// A node's attributes. Every attribute must be read (or explicitly
/// ignored) before [`Attrs::finish`], which refuses the rest by name: an
/// attribute kiln does not understand never changes a model silently.
pub(crate) struct Attrs<'a> {
    node: &'a NodeRef,
    map: BTreeMap<&'a str, &'a AttributeProto>,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(node: &'a NodeRef, attrs: &'a [AttributeProto]) -> Result<Self, ImportError> {
        let mut map = BTreeMap::new();
        for a in attrs {
            if !a.ref_attr_name.is_empty() {
                return Err(node.err(format!(
                    "attribute `{}` refers to a function attribute, which is not supported",
                    a.name
                )));
            }
            if map.insert(a.name.as_str(), a).is_some() {
                return Err(node.err(format!("attribute `{}` is given twice", a.name)));
            }
        }
        Ok(Attrs { node, map })
    }

    fn take(&mut self, name: &str, want: i32) -> Result<Option<&'a AttributeProto>, ImportError> {
        let Some(a) = self.map.remove(name) else {
            return Ok(None);
        };
        if a.r#type != want && a.r#type != attribute_type::UNDEFINED {
            return Err(self.node.err(format!(
                "attribute `{name}` has type {}, expected {want}",
                a.r#type
            )));
        }
        Ok(Some(a))
    }

    pub(crate) fn int(&mut self, name: &str, default: i64) -> Result<i64, ImportError> {
        Ok(self
            .take(name, attribute_type::INT)?
            .map_or(default, |a| a.i))
    }

    pub(crate) fn float(&mut self, name: &str, default: f32) -> Result<f32, ImportError> {
        Ok(self
            .take(name, attribute_type::FLOAT)?
            .map_or(default, |a| a.f))
    }

    pub(crate) fn ints(&mut self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self
            .take(name, attribute_type::INTS)?
            .map(|a| a.ints.clone()))
    }

    pub(crate) fn floats(&mut self, name: &str) -> Result<Option<Vec<f32>>, ImportError> {
        Ok(self
            .take(name, attribute_type::FLOATS)?
            .map(|a| a.floats.clone()))
    }

    pub(crate) fn string(&mut self, name: &str) -> Result<Option<String>, ImportError> {
        Ok(self
            .take(name, attribute_type::STRING)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    pub(crate) fn strings(&mut self, name: &str) -> Result<Option<Vec<String>>, ImportError> {
        Ok(self.take(name, attribute_type::STRINGS)?.map(|a| {
            a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        }))
    }

    pub(crate) fn tensor(&mut self, name: &str) -> Result<Option<Const>, ImportError> {
        match self.take(name, attribute_type::TENSOR)? {
            Some(a) => match &a.t {
                Some(t) => Ok(Some(decode(t)?)),
                None => Err(self.node.err(format!("attribute `{name}` holds no tensor"))),
            },
            None => Ok(None),
        }
    }

    /// Drops attributes that do not change inference results (momentum of
    /// a batch norm, legacy in-place hints).
    pub(crate) fn ignore(&mut self, names: &[&str]) {
        self.map.retain(|k, _| !names.contains(k));
    }

    /// Refuses any attribute not read.
    pub(crate) fn finish(self) -> Result<(), ImportError> {
        match self.map.into_iter().next() {
            None => Ok(()),
            Some((name, a)) => Err(self.node.err(format!(
                "attribute `{name}`{} is not supported",
                describe(a)
            ))),
        }
    }

    /// The error for an attribute value kiln does not implement.
    pub(crate) fn unsupported(&self, name: &str, value: impl std::fmt::Display) -> ImportError {
        self.node
            .err(format!("attribute `{name}` = {value} is not supported"))
    }
}

/// ` = value` for short attributes, for error messages.
fn describe(a: &AttributeProto) -> String {
    match a.r#type {
        attribute_type::INT => format!(" = {}", a.i),
        attribute_type::FLOAT => format!(" = {}", a.f),
        attribute_type::STRING => format!(" = {:?}", String::from_utf8_lossy(&a.s)),
        attribute_type::INTS => format!(" = {:?}", a.ints),
        attribute_type::GRAPH => " (a subgraph)".into(),
        _ => String::new(),
    }
}
