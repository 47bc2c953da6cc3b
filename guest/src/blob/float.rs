//! Blob records of the f32 layers every kernel holds, and of the joining
//! layers of graph blobs (those of the CNN family are in [`super::conv`]).
//! Op codes and params:
//!
//! | op | layer        | params                                   |
//! |----|--------------|------------------------------------------|
//! | 1  | standardize  | mean (off, len), inv_std (off, len)      |
//! | 2  | dense        | inputs, outputs, weight (off, len), bias (off, len) — weight in column panels ([`crate::kernels::packing::dense`]) |
//! | 3  | relu         | len                                      |
//! | 4  | sigmoid      | len                                      |
//! | 5  | tanh         | len                                      |
//! | 6  | softmax      | len                                      |
//! | 30 | leaky_relu   | len, alpha (f32 bits)                    |
//! | 31 | group_softmax | width, group, log (0 or 1)              |
//! | 32 | scale_shift  | inner, scale (off, len), shift (off, len) |
//! | 40 | add          | len                                      |
//! | 41 | mul          | channels, inner                          |
//! | 42 | concat       | one param per input: its values per row  |
//!
//! Codes 30–39 are the ops ONNX import needs, 40–49 the layers that join
//! tensors (graph blobs only; 7–13, 33 and 34 are the CNN family's, 20–29
//! the int8 layers, [`super::int8`]).

use alloc::vec::Vec;

use super::records::{Reader, TensorRef, push_tensor};
use crate::{Activation, DecodeError, Layer};

const OP_STANDARDIZE: u32 = 1;
const OP_DENSE: u32 = 2;
const OP_RELU: u32 = 3;
const OP_SIGMOID: u32 = 4;
const OP_TANH: u32 = 5;
const OP_SOFTMAX: u32 = 6;
const OP_LEAKY_RELU: u32 = 30;
const OP_GROUP_SOFTMAX: u32 = 31;
const OP_SCALE_SHIFT: u32 = 32;
#[cfg(feature = "dag")]
const OP_ADD: u32 = 40;
#[cfg(feature = "dag")]
const OP_MUL: u32 = 41;
#[cfg(feature = "dag")]
const OP_CONCAT: u32 = 42;

/// Appends the record of `layer` (any layer but [`Layer::Int8`],
/// [`Layer::Conv`], [`Layer::Recurrent`] and [`Layer::Trees`]): op, param
/// count, params, then its tensors' references.
pub(super) fn encode<'t>(
    layer: &'t Layer<'_>,
    records: &mut Vec<u32>,
    tensors: &mut Vec<(usize, TensorRef<'t>)>,
) {
    let refs: [Option<&[f32]>; 2] = match layer {
        // Written by `super::int8::encode`, `super::conv::encode` and
        // `super::recurrent::encode` and `super::trees::encode`.
        Layer::Int8(_) | Layer::Conv(..) | Layer::Recurrent(..) | Layer::Trees(..) => [None, None],
        Layer::Standardize { mean, inv_std } => {
            records.extend([OP_STANDARDIZE, 4]);
            [Some(mean), Some(inv_std)]
        }
        Layer::Dense {
            inputs,
            outputs,
            weight,
            bias,
        } => {
            records.extend([OP_DENSE, 6, *inputs as u32, *outputs as u32]);
            [Some(weight), Some(bias)]
        }
        Layer::Activation { kind, len } => {
            let op = match kind {
                Activation::Relu => OP_RELU,
                Activation::Sigmoid => OP_SIGMOID,
                Activation::Tanh => OP_TANH,
                Activation::Softmax => OP_SOFTMAX,
            };
            records.extend([op, 1, *len as u32]);
            [None, None]
        }
        Layer::LeakyRelu { alpha, len } => {
            records.extend([OP_LEAKY_RELU, 2, *len as u32, alpha.to_bits()]);
            [None, None]
        }
        Layer::GroupSoftmax { width, group, log } => {
            records.extend([
                OP_GROUP_SOFTMAX,
                3,
                *width as u32,
                *group as u32,
                *log as u32,
            ]);
            [None, None]
        }
        Layer::ScaleShift {
            inner,
            scale,
            shift,
        } => {
            records.extend([OP_SCALE_SHIFT, 5, *inner as u32]);
            [Some(scale), Some(shift)]
        }
        #[cfg(feature = "dag")]
        Layer::Add { len } => {
            records.extend([OP_ADD, 1, *len as u32]);
            [None, None]
        }
        #[cfg(feature = "dag")]
        Layer::Mul { channels, inner } => {
            records.extend([OP_MUL, 2, *channels as u32, *inner as u32]);
            [None, None]
        }
        #[cfg(feature = "dag")]
        Layer::Concat { parts } => {
            records.extend([OP_CONCAT, parts.len() as u32]);
            records.extend(parts.iter().map(|&p| p as u32));
            [None, None]
        }
    };
    for t in refs.into_iter().flatten() {
        push_tensor(records, tensors, TensorRef::F32(t));
    }
}

/// Decodes the params of layer `index`, whose record has op `op` and `k`
/// params.
pub(super) fn decode<'a>(
    op: u32,
    k: usize,
    r: &mut Reader<'a>,
    index: usize,
) -> Result<Layer<'a>, DecodeError> {
    let expected = match op {
        OP_STANDARDIZE => 4,
        OP_DENSE => 6,
        OP_RELU | OP_SIGMOID | OP_TANH | OP_SOFTMAX => 1,
        OP_LEAKY_RELU => 2,
        OP_GROUP_SOFTMAX => 3,
        OP_SCALE_SHIFT => 5,
        // Graph blobs only, which kernels without `dag` refuse by version.
        #[cfg(feature = "dag")]
        OP_ADD => 1,
        #[cfg(feature = "dag")]
        OP_MUL => 2,
        // One param per input; the reader stops at the blob's end.
        #[cfg(feature = "dag")]
        OP_CONCAT => k,
        _ => return Err(DecodeError::UnknownOp { layer: index, op }),
    };
    if k != expected {
        return Err(DecodeError::BadParams { layer: index });
    }
    Ok(match op {
        OP_STANDARDIZE => Layer::Standardize {
            mean: r.tensor(index)?,
            inv_std: r.tensor(index)?,
        },
        OP_DENSE => Layer::Dense {
            inputs: r.u32()? as usize,
            outputs: r.u32()? as usize,
            weight: r.tensor(index)?,
            bias: r.tensor(index)?,
        },
        OP_LEAKY_RELU => Layer::LeakyRelu {
            len: r.u32()? as usize,
            alpha: f32::from_bits(r.u32()?),
        },
        OP_GROUP_SOFTMAX => Layer::GroupSoftmax {
            width: r.u32()? as usize,
            group: r.u32()? as usize,
            log: match r.u32()? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::BadParams { layer: index }),
            },
        },
        OP_SCALE_SHIFT => Layer::ScaleShift {
            inner: r.u32()? as usize,
            scale: r.tensor(index)?,
            shift: r.tensor(index)?,
        },
        #[cfg(feature = "dag")]
        OP_ADD => Layer::Add {
            len: r.u32()? as usize,
        },
        #[cfg(feature = "dag")]
        OP_MUL => Layer::Mul {
            channels: r.u32()? as usize,
            inner: r.u32()? as usize,
        },
        #[cfg(feature = "dag")]
        OP_CONCAT => {
            let mut parts = Vec::new();
            for _ in 0..k {
                parts.push(r.u32()? as usize);
            }
            Layer::Concat { parts }
        }
        _ => {
            let kind = match op {
                OP_RELU => Activation::Relu,
                OP_SIGMOID => Activation::Sigmoid,
                OP_TANH => Activation::Tanh,
                _ => Activation::Softmax,
            };
            Layer::Activation {
                kind,
                len: r.u32()? as usize,
            }
        }
    })
}
