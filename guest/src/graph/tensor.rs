//! Tensors of a model file: f32 (weights of float models, quantization
//! scales), int8 (quantized weights) and i32 (quantized biases), stored in
//! safetensors as `F32`, `I8` and `I32` so `safetensors.numpy.load_file`
//! opens every kiln model.

use std::vec::Vec;

use super::ConvertError;

/// The values of a tensor, by element type.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I8(Vec<i8>),
    I32(Vec<i32>),
}

impl TensorData {
    /// Decodes the little-endian `bytes` of a tensor whose safetensors
    /// dtype is `dtype` (`"F32"`, `"I8"` or `"I32"`); `None` for a dtype
    /// kiln does not read. The caller has checked the byte count.
    pub fn from_le_bytes(dtype: &str, bytes: &[u8]) -> Option<Self> {
        let words = || bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
        Some(match dtype {
            "F32" => TensorData::F32(words().map(f32::from_le_bytes).collect()),
            "I32" => TensorData::I32(words().map(i32::from_le_bytes).collect()),
            "I8" => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
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
    ) -> Result<&[f32], ConvertError> {
        self.as_f32()
            .ok_or_else(|| self.dtype_err(layer, op, name, "F32"))
    }

    pub(super) fn dtype_err(
        &self,
        layer: usize,
        op: &'static str,
        name: &str,
        expected: &'static str,
    ) -> ConvertError {
        ConvertError::TensorDtype {
            layer,
            op,
            tensor: name.into(),
            found: self.data.dtype_name(),
            expected,
        }
    }
}
