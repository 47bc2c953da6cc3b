//! Blob records of the f32 layers. Op codes and params:
//!
//! | op | layer        | params                                   |
//! |----|--------------|------------------------------------------|
//! | 1  | standardize  | mean (off, len), inv_std (off, len)      |
//! | 2  | dense        | inputs, outputs, weight (off, len), bias (off, len) — weight in column panels ([`crate::kernels::packing::dense`]) |
//! | 3  | relu         | len                                      |
//! | 4  | sigmoid      | len                                      |
//! | 5  | tanh         | len                                      |
//! | 6  | softmax      | len                                      |
//! | 10 | conv2d       | in_c, in_h, in_w, out_c, kh, kw, stride, pad, weight (off, len), bias (off, len) — weight tap-major (`in_c × kh × kw × out_c`) |
//! | 11 | max pool     | c, h, w, k, stride                       |
//! | 12 | avg pool     | c, h, w, k, stride                       |
//! | 30 | leaky_relu   | len, alpha (f32 bits)                    |
//! | 31 | group_softmax | width, group, log (0 or 1)              |
//! | 32 | scale_shift  | inner, scale (off, len), shift (off, len) |
//! | 33 | global_avg_pool | channels, inner                       |
//! | 34 | prelu        | inner, slope (off, len)                  |
//!
//! Codes 10–19 are convolution and pooling layers, 30–39 the ops ONNX import
//! needs (20–29 are the int8 layers, [`super::int8`]).

use alloc::vec::Vec;

use super::records::{Reader, TensorRef, push_tensor};
use crate::{Activation, ConvGeom, DecodeError, Layer, PoolGeom, PoolKind};

const OP_STANDARDIZE: u32 = 1;
const OP_DENSE: u32 = 2;
const OP_RELU: u32 = 3;
const OP_SIGMOID: u32 = 4;
const OP_TANH: u32 = 5;
const OP_SOFTMAX: u32 = 6;
const OP_CONV2D: u32 = 10;
const OP_MAX_POOL: u32 = 11;
const OP_AVG_POOL: u32 = 12;
const OP_LEAKY_RELU: u32 = 30;
const OP_GROUP_SOFTMAX: u32 = 31;
const OP_SCALE_SHIFT: u32 = 32;
const OP_GLOBAL_AVG_POOL: u32 = 33;
const OP_PRELU: u32 = 34;

/// Appends the record of `layer` (any layer but [`Layer::Int8`]): op, param
/// count, params, then its tensors' references.
pub(super) fn encode<'t>(
    layer: &'t Layer<'_>,
    records: &mut Vec<u32>,
    tensors: &mut Vec<(usize, TensorRef<'t>)>,
) {
    let refs: [Option<&[f32]>; 2] = match layer {
        // Written by `super::int8::encode`.
        Layer::Int8(_) => [None, None],
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
        Layer::Conv2d { geom, weight, bias } => {
            let g = geom;
            records.extend([OP_CONV2D, 12]);
            records.extend(g.dims().map(|v| v as u32));
            [Some(weight), Some(bias)]
        }
        Layer::Pool { kind, geom: g } => {
            let op = match kind {
                PoolKind::Max => OP_MAX_POOL,
                PoolKind::Avg => OP_AVG_POOL,
            };
            records.extend([op, 5]);
            records.extend([g.c, g.h, g.w, g.k, g.stride].map(|v| v as u32));
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
        Layer::PRelu { inner, slope } => {
            records.extend([OP_PRELU, 3, *inner as u32]);
            [Some(slope), None]
        }
        Layer::GlobalAvgPool { channels, inner } => {
            records.extend([OP_GLOBAL_AVG_POOL, 2, *channels as u32, *inner as u32]);
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
        OP_CONV2D => 12,
        OP_MAX_POOL | OP_AVG_POOL => 5,
        OP_LEAKY_RELU | OP_GLOBAL_AVG_POOL => 2,
        OP_GROUP_SOFTMAX | OP_PRELU => 3,
        OP_SCALE_SHIFT => 5,
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
        OP_CONV2D => {
            let mut d = [0usize; 8];
            for v in &mut d {
                *v = r.u32()? as usize;
            }
            Layer::Conv2d {
                geom: ConvGeom::new(d),
                weight: r.tensor(index)?,
                bias: r.tensor(index)?,
            }
        }
        OP_MAX_POOL | OP_AVG_POOL => {
            let mut d = [0usize; 5];
            for v in &mut d {
                *v = r.u32()? as usize;
            }
            Layer::Pool {
                kind: if op == OP_MAX_POOL {
                    PoolKind::Max
                } else {
                    PoolKind::Avg
                },
                geom: PoolGeom::new(d),
            }
        }
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
        OP_PRELU => Layer::PRelu {
            inner: r.u32()? as usize,
            slope: r.tensor(index)?,
        },
        OP_GLOBAL_AVG_POOL => Layer::GlobalAvgPool {
            channels: r.u32()? as usize,
            inner: r.u32()? as usize,
        },
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
