//! The safetensors side of a model file's tensors: dtype mapping, and
//! naming the tensor whose byte range does not match its shape. The tensor
//! types themselves ([`TensorData`]) live in `kiln_guest::graph`.

use std::path::Path;

use safetensors::Dtype;

use super::{ModelFileError, TensorData};

/// Decodes little-endian `bytes` of `dtype`; `None` for a dtype kiln does
/// not read. The caller (safetensors) has checked the byte count.
pub(super) fn from_le_bytes(dtype: Dtype, bytes: &[u8]) -> Option<TensorData> {
    let name = match dtype {
        Dtype::F32 => "F32",
        Dtype::I32 => "I32",
        Dtype::I8 => "I8",
        _ => return None,
    };
    TensorData::from_le_bytes(name, bytes)
}

/// The safetensors dtype of `data`.
pub(super) fn dtype(data: &TensorData) -> Dtype {
    match data {
        TensorData::F32(_) => Dtype::F32,
        TensorData::I8(_) => Dtype::I8,
        TensorData::I32(_) => Dtype::I32,
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
