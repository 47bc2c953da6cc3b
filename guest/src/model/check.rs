//! The checks every layer kind shares: the width limit and tensor lengths
//! and values, each failure a [`ModelError`] naming the layer.

use crate::ModelError;

/// Largest number of `f32` values a layer may produce per row.
pub const MAX_WIDTH: usize = 1 << 24;

/// Checks that a weight of `found` values holds `outputs` rows of `inputs`.
pub(crate) fn check_rows(
    layer: usize,
    inputs: usize,
    outputs: usize,
    found: usize,
) -> Result<(), ModelError> {
    let n = inputs
        .checked_mul(outputs)
        .ok_or(ModelError::TooLarge { layer })?;
    if found != n {
        return Err(ModelError::TensorLen {
            layer,
            tensor: "weight",
            expected: n,
            found,
        });
    }
    Ok(())
}

/// `Ok` when a tensor has the `expected` length.
pub(crate) fn check_len(
    layer: usize,
    tensor: &'static str,
    expected: usize,
    found: usize,
) -> Result<(), ModelError> {
    if expected == found {
        Ok(())
    } else {
        Err(ModelError::TensorLen {
            layer,
            tensor,
            expected,
            found,
        })
    }
}

/// Whether every value is finite (neither infinite nor NaN).
pub(crate) fn all_finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}

/// `Ok` when tensor `tensor` of `layer` has the `expected` length and, with
/// `scan`, only finite values.
pub(crate) fn check_tensor(
    layer: usize,
    tensor: &'static str,
    expected: usize,
    values: &[f32],
    scan: bool,
) -> Result<(), ModelError> {
    check_len(layer, tensor, expected, values.len())?;
    if scan && !all_finite(values) {
        return Err(ModelError::NotFinite { layer, tensor });
    }
    Ok(())
}
