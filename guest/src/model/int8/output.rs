//! The two ends of an int8 layer: the [`Domain`] of the values it reads and
//! writes, and what it does with its accumulators ([`Int8Output`]).

use alloc::borrow::Cow;

use crate::ModelError;
use crate::model::check::{all_finite, check_len};

/// Where a layer's input or output lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// f32 values.
    F32,
    /// int8 values with a scale and zero point fixed in the model.
    Int8Static,
    /// int8 values with a per-row scale computed at run time (zero point 0).
    Int8Dynamic,
}

impl Domain {
    /// How errors name the domain.
    pub fn name(self) -> &'static str {
        match self {
            Domain::F32 => "f32",
            Domain::Int8Static => "int8 (static scale)",
            Domain::Int8Dynamic => "int8 (dynamic scale)",
        }
    }
}

/// What an int8 dense or convolution layer ([`super::DenseI8`],
/// [`super::ConvI8`]) does with its accumulators.
#[derive(Debug, Clone, PartialEq)]
pub enum Int8Output<'a> {
    /// Requantize to int8 per output channel
    /// ([`crate::kernels::generic::requantize_one`]); `relu` clamps below at the zero
    /// point.
    Int8 {
        multiplier: Cow<'a, [i32]>,
        shift: Cow<'a, [i32]>,
        zero_point: i32,
        relu: bool,
    },
    /// Dequantize to f32 ([`crate::kernels::dequantize`]). `input_scale` is
    /// `None` when the input was quantized dynamically (the row's scale is
    /// used).
    Float {
        input_scale: Option<f32>,
        weight_scale: Cow<'a, [f32]>,
        bias: Cow<'a, [f32]>,
    },
}

/// Whether `s` is usable as a scale: positive and finite.
pub(super) fn scale_ok(s: f32) -> bool {
    s.is_finite() && s > 0.0
}

/// Whether `z` is usable as a zero point: an int8 value.
pub(super) fn zp_ok(z: i32) -> bool {
    (-128..=127).contains(&z)
}

impl Int8Output<'_> {
    /// Checks the output parameters of a layer with `outputs` channels.
    pub(crate) fn check(&self, layer: usize, outputs: usize) -> Result<(), ModelError> {
        let bad = |what: &'static str| Err(ModelError::Quant { layer, what });
        let len = |tensor, found| check_len(layer, tensor, outputs, found);
        match self {
            Int8Output::Int8 {
                multiplier,
                shift,
                zero_point,
                ..
            } => {
                len("multiplier", multiplier.len())?;
                len("shift", shift.len())?;
                if multiplier.iter().any(|&m| m < 0) {
                    return bad("requantize multipliers must be non-negative");
                }
                if shift.iter().any(|s| !(1..=62).contains(s)) {
                    return bad("requantize shifts must be in 1..=62");
                }
                if !zp_ok(*zero_point) {
                    return bad("the output zero point must be in -128..=127");
                }
                Ok(())
            }
            Int8Output::Float {
                input_scale,
                weight_scale,
                bias,
            } => {
                len("weight_scale", weight_scale.len())?;
                len("bias", bias.len())?;
                if input_scale.is_some_and(|s| !scale_ok(s)) {
                    return bad("the input scale must be a positive, finite number");
                }
                if weight_scale.iter().any(|&s| !scale_ok(s)) {
                    return bad("weight scales must be positive, finite numbers");
                }
                if !all_finite(bias) {
                    return Err(ModelError::NotFinite {
                        layer,
                        tensor: "bias",
                    });
                }
                Ok(())
            }
        }
    }

    /// The domain of the values a layer with this output writes.
    pub(super) fn domain(&self) -> Domain {
        match self {
            Int8Output::Int8 { .. } => Domain::Int8Static,
            Int8Output::Float { .. } => Domain::F32,
        }
    }

    /// This output with every tensor copied out of the blob it borrows.
    pub fn into_owned(self) -> Int8Output<'static> {
        fn own<T: Clone>(c: Cow<'_, [T]>) -> Cow<'static, [T]> {
            Cow::Owned(c.into_owned())
        }
        match self {
            Int8Output::Int8 {
                multiplier,
                shift,
                zero_point,
                relu,
            } => Int8Output::Int8 {
                multiplier: own(multiplier),
                shift: own(shift),
                zero_point,
                relu,
            },
            Int8Output::Float {
                input_scale,
                weight_scale,
                bias,
            } => Int8Output::Float {
                input_scale,
                weight_scale: own(weight_scale),
                bias: own(bias),
            },
        }
    }
}
