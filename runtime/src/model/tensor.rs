//! Tensors of a model file: f32 (weights of float models, quantization
//! scales), int8 (quantized weights) and i32 (quantized biases), stored in
//! safetensors as `F32`, `I8` and `I32` so `safetensors.numpy.load_file`
//! opens every kiln model.

use std::path::Path;

use safetensors::Dtype;

use super::ModelFileError;

/// The values of a tensor, by element type.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I8(Vec<i8>),
    I32(Vec<i32>),
}

impl TensorData {
    /// Decodes little-endian `bytes` of `dtype`; `None` for a dtype kiln
    /// does not read. The caller (safetensors) has checked the byte count.
    pub fn from_le_bytes(dtype: Dtype, bytes: &[u8]) -> Option<Self> {
        let words = || bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
        Some(match dtype {
            Dtype::F32 => TensorData::F32(words().map(f32::from_le_bytes).collect()),
            Dtype::I32 => TensorData::I32(words().map(i32::from_le_bytes).collect()),
            Dtype::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
            _ => return None,
        })
    }

    /// Little-endian bytes, as safetensors stores them.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
        }
    }

    pub fn dtype(&self) -> Dtype {
        match self {
            TensorData::F32(_) => Dtype::F32,
            TensorData::I8(_) => Dtype::I8,
            TensorData::I32(_) => Dtype::I32,
        }
    }

    /// The dtype's safetensors name.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "F32",
            TensorData::I8(_) => "I8",
            TensorData::I32(_) => "I32",
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the values take in the file.
    pub fn byte_len(&self) -> usize {
        match self {
            TensorData::I8(v) => v.len(),
            TensorData::F32(v) => v.len() * 4,
            TensorData::I32(v) => v.len() * 4,
        }
    }

    /// How many elements are exactly zero.
    pub fn zeros(&self) -> usize {
        match self {
            TensorData::F32(v) => v.iter().filter(|&&x| x == 0.0).count(),
            TensorData::I8(v) => v.iter().filter(|&&x| x == 0).count(),
            TensorData::I32(v) => v.iter().filter(|&&x| x == 0).count(),
        }
    }
}

/// A tensor: its shape and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// An f32 tensor.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Tensor {
            shape,
            data: TensorData::F32(data),
        }
    }

    pub fn i8(shape: Vec<usize>, data: Vec<i8>) -> Self {
        Tensor {
            shape,
            data: TensorData::I8(data),
        }
    }

    pub fn i32(shape: Vec<usize>, data: Vec<i32>) -> Self {
        Tensor {
            shape,
            data: TensorData::I32(data),
        }
    }

    /// The f32 values, if this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// Mutable f32 values, if this is an f32 tensor.
    pub fn as_f32_mut(&mut self) -> Option<&mut Vec<f32>> {
        match &mut self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The f32 values, or an error naming layer `layer`'s tensor `name`.
    pub(super) fn f32_data(
        &self,
        layer: usize,
        op: &'static str,
        name: &str,
    ) -> Result<&[f32], ModelFileError> {
        self.as_f32()
            .ok_or_else(|| self.dtype_err(layer, op, name, "F32"))
    }

    pub(super) fn dtype_err(
        &self,
        layer: usize,
        op: &'static str,
        name: &str,
        expected: &'static str,
    ) -> ModelFileError {
        ModelFileError::TensorDtype {
            layer,
            op,
            tensor: name.into(),
            found: self.data.dtype_name(),
            expected,
        }
    }
}

/// Bytes per element of the safetensors dtypes, by their header names.
fn dtype_size(name: &str) -> Option<usize> {
    Some(match name {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// When safetensors refuses a file whose tensor's byte range does not match
/// its shape, finds that tensor so the error can name it.
pub(super) fn explain_invalid(bytes: &[u8], path: &Path) -> Option<ModelFileError> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    for (name, info) in header.as_object()? {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info.get("dtype")?.as_str()?;
        let shape: Vec<usize> = info
            .get("shape")?
            .as_array()?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()?;
        let offsets = info.get("data_offsets")?.as_array()?;
        let (start, end) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
        let expected = shape
            .iter()
            .try_fold(dtype_size(dtype)?, |a, &d| a.checked_mul(d))?;
        let found = end.checked_sub(start)? as usize;
        if found != expected {
            return Some(ModelFileError::TensorBytes {
                path: path.into(),
                tensor: name.clone(),
                dtype: dtype.into(),
                shape,
                found,
                expected,
            });
        }
    }
    None
}
