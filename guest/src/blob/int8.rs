//! Blob records of the int8 layers (op codes 20–29). Op codes and params:
//!
//! | op | layer                  | params                                                    |
//! |----|------------------------|-----------------------------------------------------------|
//! | 20 | quantize               | len, scale (f32 bits), zero_point (i32)                   |
//! | 21 | quantize_dynamic       | len                                                       |
//! | 22 | dense_i8 → int8        | inputs, outputs, weight (i8, packed), bias (i32), multiplier (i32), shift (i32), zero_point, relu (0/1) |
//! | 23 | dense_i8 → f32         | inputs, outputs, weight (i8, packed), bias (i32), weight_scale (f32), bias_f32 (f32), dynamic (0/1), input_scale (f32 bits) |
//! | 24 | conv2d_i8 → int8       | in_c, in_h, in_w, out_c, kh, kw, stride, pad, input_zero_point, weight (i8, packed filters: 4 channels × tap pairs), bias (i32), multiplier (i32), shift (i32), zero_point, relu (0/1) |
//! | 25 | conv2d_i8 → f32        | in_c, in_h, in_w, out_c, kh, kw, stride, pad, input_zero_point, weight (i8, packed filters: 4 channels × tap pairs), bias (i32), weight_scale (f32), bias_f32 (f32), input_scale (f32 bits) |
//! | 26 | pool_i8                | kind (0 max, 1 avg), c, h, w, k, stride                  |
//!
//! Tensors are (offset, element count) pairs like the f32 ones; int8 data
//! takes one byte per element.

use alloc::vec::Vec;

use super::records::{Reader, TensorRef, push_tensor};
#[cfg(feature = "int8-conv")]
use crate::{ConvGeom, ConvI8, PoolGeom, PoolI8};
use crate::{DecodeError, DenseI8, Int8Layer, Int8Output, Layer, PoolKind};

const OP_QUANTIZE: u32 = 20;
const OP_QUANTIZE_DYNAMIC: u32 = 21;
const OP_DENSE_I8_TO_I8: u32 = 22;
const OP_DENSE_I8_TO_F32: u32 = 23;
const OP_CONV_I8_TO_I8: u32 = 24;
const OP_CONV_I8_TO_F32: u32 = 25;
const OP_POOL_I8: u32 = 26;

/// Whether `op` belongs to the int8 range (20–29).
pub(super) fn is_int8_op(op: u32) -> bool {
    (20..=29).contains(&op)
}

/// Appends the record of `layer`: op, param count, params and tensor
/// references.
pub(super) fn encode<'t>(
    layer: &'t Int8Layer<'_>,
    records: &mut Vec<u32>,
    tensors: &mut Vec<(usize, TensorRef<'t>)>,
) {
    match layer {
        Int8Layer::Quantize {
            len,
            scale,
            zero_point,
        } => records.extend([
            OP_QUANTIZE,
            3,
            *len as u32,
            scale.to_bits(),
            *zero_point as u32,
        ]),
        Int8Layer::QuantizeDynamic { len } => records.extend([OP_QUANTIZE_DYNAMIC, 1, *len as u32]),
        Int8Layer::Dense(d) => {
            let op = match d.output {
                Int8Output::Int8 { .. } => OP_DENSE_I8_TO_I8,
                Int8Output::Float { .. } => OP_DENSE_I8_TO_F32,
            };
            records.extend([op, 12, d.inputs as u32, d.outputs as u32]);
            push_tensor(records, tensors, TensorRef::I8(&d.weight));
            push_tensor(records, tensors, TensorRef::I32(&d.bias));
            push_output(&d.output, records, tensors);
            if let Int8Output::Float { input_scale, .. } = d.output {
                records.extend([
                    u32::from(input_scale.is_none()),
                    input_scale.unwrap_or(0.0).to_bits(),
                ]);
            }
        }
        Int8Layer::Conv(c) => {
            let g = &c.geom;
            let (op, k) = match c.output {
                Int8Output::Int8 { .. } => (OP_CONV_I8_TO_I8, 19),
                Int8Output::Float { .. } => (OP_CONV_I8_TO_F32, 18),
            };
            records.extend([op, k]);
            records.extend(g.dims().map(|v| v as u32));
            records.push(c.input_zero_point as u32);
            push_tensor(records, tensors, TensorRef::I8(&c.weight));
            push_tensor(records, tensors, TensorRef::I32(&c.bias));
            push_output(&c.output, records, tensors);
            if let Int8Output::Float { input_scale, .. } = c.output {
                // `Model::new` refuses a conv without a static scale.
                records.push(input_scale.unwrap_or(0.0).to_bits());
            }
        }
        Int8Layer::Pool(p) => {
            let g = &p.geom;
            let kind = match p.kind {
                PoolKind::Max => 0,
                PoolKind::Avg => 1,
            };
            records.extend([OP_POOL_I8, 6, kind]);
            records.extend([g.c, g.h, g.w, g.k, g.stride].map(|v| v as u32));
        }
    }
}

/// The output record shared by dense and convolution layers: multiplier,
/// shift, zero point and relu flag of an int8 output, or the weight scales
/// and f32 bias of a float one (whose input scale each layer writes after,
/// in its own form).
fn push_output<'t>(
    output: &'t Int8Output<'_>,
    records: &mut Vec<u32>,
    tensors: &mut Vec<(usize, TensorRef<'t>)>,
) {
    match output {
        Int8Output::Int8 {
            multiplier,
            shift,
            zero_point,
            relu,
        } => {
            push_tensor(records, tensors, TensorRef::I32(multiplier));
            push_tensor(records, tensors, TensorRef::I32(shift));
            records.extend([*zero_point as u32, u32::from(*relu)]);
        }
        Int8Output::Float {
            weight_scale, bias, ..
        } => {
            push_tensor(records, tensors, TensorRef::F32(weight_scale));
            push_tensor(records, tensors, TensorRef::F32(bias));
        }
    }
}

/// Decodes layer `index`, whose record has the int8 op `op` and `k` params.
pub(super) fn decode<'a>(
    op: u32,
    k: usize,
    r: &mut Reader<'a>,
    index: usize,
) -> Result<Layer<'a>, DecodeError> {
    // Left out without `int8-conv` (see `crate::ConvI8`); refused before
    // decoding so that the decoder, too, stays out.
    #[cfg(not(feature = "int8-conv"))]
    if matches!(op, OP_CONV_I8_TO_I8 | OP_CONV_I8_TO_F32 | OP_POOL_I8) {
        return Err(DecodeError::Model(crate::ModelError::Quant {
            layer: index,
            what: crate::model::NOT_HERE,
        }));
    }
    let expected = match op {
        OP_QUANTIZE => 3,
        OP_QUANTIZE_DYNAMIC => 1,
        OP_DENSE_I8_TO_I8 | OP_DENSE_I8_TO_F32 => 12,
        OP_CONV_I8_TO_I8 => 19,
        OP_CONV_I8_TO_F32 => 18,
        OP_POOL_I8 => 6,
        _ => return Err(DecodeError::UnknownOp { layer: index, op }),
    };
    if k != expected {
        return Err(DecodeError::BadParams { layer: index });
    }
    let layer = match op {
        OP_QUANTIZE => Int8Layer::Quantize {
            len: r.u32()? as usize,
            scale: f32::from_bits(r.u32()?),
            zero_point: r.u32()? as i32,
        },
        OP_QUANTIZE_DYNAMIC => Int8Layer::QuantizeDynamic {
            len: r.u32()? as usize,
        },
        #[cfg(feature = "int8-conv")]
        OP_CONV_I8_TO_I8 | OP_CONV_I8_TO_F32 => decode_conv(op, r, index)?,
        #[cfg(feature = "int8-conv")]
        OP_POOL_I8 => {
            let kind = match r.u32()? {
                0 => PoolKind::Max,
                1 => PoolKind::Avg,
                _ => return Err(DecodeError::BadParams { layer: index }),
            };
            let mut d = [0usize; 5];
            for v in &mut d {
                *v = r.u32()? as usize;
            }
            Int8Layer::Pool(PoolI8::new(index, kind, PoolGeom::new(d)).map_err(DecodeError::Model)?)
        }
        _ => {
            let inputs = r.u32()? as usize;
            let outputs = r.u32()? as usize;
            let weight = r.typed(index, |b: [u8; 1]| b[0] as i8)?;
            let bias = r.typed(index, i32::from_le_bytes)?;
            let output = if op == OP_DENSE_I8_TO_I8 {
                int8_output(r, index)?
            } else {
                let weight_scale = r.tensor(index)?;
                let bias = r.tensor(index)?;
                let dynamic = r.u32()?;
                let scale = f32::from_bits(r.u32()?);
                let input_scale = match dynamic {
                    0 => Some(scale),
                    1 => None,
                    _ => return Err(DecodeError::BadParams { layer: index }),
                };
                Int8Output::Float {
                    input_scale,
                    weight_scale,
                    bias,
                }
            };
            Int8Layer::Dense(DenseI8 {
                inputs,
                outputs,
                weight,
                bias,
                output,
            })
        }
    };
    Ok(Layer::Int8(layer))
}

/// The [`Int8Output::Int8`] record of a dense or conv layer (what
/// `push_output` writes).
#[inline(always)]
fn int8_output<'a>(r: &mut Reader<'a>, index: usize) -> Result<Int8Output<'a>, DecodeError> {
    let multiplier = r.typed(index, i32::from_le_bytes)?;
    let shift = r.typed(index, i32::from_le_bytes)?;
    let zero_point = r.u32()? as i32;
    let relu = match r.u32()? {
        0 => false,
        1 => true,
        _ => return Err(DecodeError::BadParams { layer: index }),
    };
    Ok(Int8Output::Int8 {
        multiplier,
        shift,
        zero_point,
        relu,
    })
}

#[cfg(feature = "int8-conv")]
fn decode_conv<'a>(
    op: u32,
    r: &mut Reader<'a>,
    index: usize,
) -> Result<Int8Layer<'a>, DecodeError> {
    let mut d = [0usize; 8];
    for v in &mut d {
        *v = r.u32()? as usize;
    }
    let geom = ConvGeom::new(d);
    let input_zero_point = r.u32()? as i32;
    let weight = r.typed(index, |b: [u8; 1]| b[0] as i8)?;
    let bias = r.typed(index, i32::from_le_bytes)?;
    let output = if op == OP_CONV_I8_TO_I8 {
        int8_output(r, index)?
    } else {
        Int8Output::Float {
            weight_scale: r.tensor(index)?,
            bias: r.tensor(index)?,
            input_scale: Some(f32::from_bits(r.u32()?)),
        }
    };
    Ok(Int8Layer::Conv(ConvI8 {
        geom: geom.into(),
        weight,
        bias,
        input_zero_point,
        output,
        here: (),
    }))
}
