//! Blob records of the CNN family ([`ConvLayer`], feature `conv`). Op codes
//! and params:
//!
//! | op | layer        | params                                   |
//! |----|--------------|------------------------------------------|
//! | 7  | clip         | len, min (f32 bits), max (f32 bits)      |
//! | 8  | hard_sigmoid | len, alpha (f32 bits), beta (f32 bits)   |
//! | 9  | hard_swish   | len                                      |
//! | 10 | conv2d       | in_c, in_h, in_w, out_c, kh, kw, stride, pad, weight (off, len), bias (off, len) — weight tap-major (`in_c × kh × kw × out_c`) |
//! | 13 | conv2d, any geometry | in_c, in_h, in_w, out_c, kh, kw, stride, pad top, left, bottom, right, dilation, groups, weight (off, len), bias (off, len) — weight tap-major per group |
//! | 11 | max pool     | c, h, w, k, stride                       |
//! | 12 | avg pool     | c, h, w, k, stride                       |
//! | 33 | global_avg_pool | channels, inner                       |
//! | 34 | prelu        | inner, slope (off, len)                  |
//!
//! A convolution is written as op 10 when its geometry is plain (the same
//! padding on every side, no dilation, one group), so older blobs and the
//! blobs of older models keep their bytes; op 13 otherwise.
//!
//! A kernel without the family refuses these ops by name before reading
//! their params ([`crate::model::family`]), so it holds none of this
//! decoder.

use alloc::vec::Vec;

use super::records::{Reader, TensorRef, push_tensor};
use crate::model::family;
use crate::{ConvGeom, ConvLayer, DecodeError, Layer, PoolGeom, PoolKind};

const OP_CLIP: u32 = 7;
const OP_HARD_SIGMOID: u32 = 8;
const OP_HARD_SWISH: u32 = 9;
const OP_CONV2D: u32 = 10;
const OP_MAX_POOL: u32 = 11;
const OP_AVG_POOL: u32 = 12;
const OP_CONV2D_FULL: u32 = 13;
const OP_GLOBAL_AVG_POOL: u32 = 33;
const OP_PRELU: u32 = 34;

/// The op's name, if it is one of the family's.
pub(super) fn op_name(op: u32) -> Option<&'static str> {
    Some(match op {
        OP_CLIP => "clip",
        OP_HARD_SIGMOID => "hard_sigmoid",
        OP_HARD_SWISH => "hard_swish",
        OP_CONV2D | OP_CONV2D_FULL => "conv2d",
        OP_MAX_POOL => "max_pool",
        OP_AVG_POOL => "avg_pool",
        OP_GLOBAL_AVG_POOL => "global_avg_pool",
        OP_PRELU => "prelu",
        _ => return None,
    })
}

/// Appends the record of `layer`: op, param count, params, then its
/// tensors' references.
pub(super) fn encode<'t>(
    layer: &'t ConvLayer<'_>,
    records: &mut Vec<u32>,
    tensors: &mut Vec<(usize, TensorRef<'t>)>,
) {
    let refs: [Option<&[f32]>; 2] = match layer {
        ConvLayer::Conv2d { geom, weight, bias } => {
            if geom.plain_pad().is_some() {
                records.extend([OP_CONV2D, 12]);
                records.extend(geom.dims().map(|v| v as u32));
            } else {
                records.extend([OP_CONV2D_FULL, 17]);
                records.extend(geom.full_dims().map(|v| v as u32));
            }
            [Some(weight), Some(bias)]
        }
        ConvLayer::Pool { kind, geom: g } => {
            let op = match kind {
                PoolKind::Max => OP_MAX_POOL,
                PoolKind::Avg => OP_AVG_POOL,
            };
            records.extend([op, 5]);
            records.extend([g.c, g.h, g.w, g.k, g.stride].map(|v| v as u32));
            [None, None]
        }
        ConvLayer::PRelu { inner, slope } => {
            records.extend([OP_PRELU, 3, *inner as u32]);
            [Some(slope), None]
        }
        ConvLayer::GlobalAvgPool { channels, inner } => {
            records.extend([OP_GLOBAL_AVG_POOL, 2, *channels as u32, *inner as u32]);
            [None, None]
        }
        ConvLayer::Clip { min, max, len } => {
            records.extend([OP_CLIP, 3, *len as u32, min.to_bits(), max.to_bits()]);
            [None, None]
        }
        ConvLayer::HardSigmoid { alpha, beta, len } => {
            let (a, b) = (alpha.to_bits(), beta.to_bits());
            records.extend([OP_HARD_SIGMOID, 3, *len as u32, a, b]);
            [None, None]
        }
        ConvLayer::HardSwish { len } => {
            records.extend([OP_HARD_SWISH, 1, *len as u32]);
            [None, None]
        }
    };
    for t in refs.into_iter().flatten() {
        push_tensor(records, tensors, TensorRef::F32(t));
    }
}

/// Decodes the params of layer `index`, whose record has the family's op
/// `op` (named `name`, [`op_name`]) and `k` params.
pub(super) fn decode<'a>(
    op: u32,
    name: &'static str,
    k: usize,
    r: &mut Reader<'a>,
    index: usize,
) -> Result<Layer<'a>, DecodeError> {
    let here = family::conv(index, name)?;
    // Every record is a few scalar params, then its tensors.
    let (scalars, tensors) = match op {
        OP_CONV2D => (8, 2),
        OP_CONV2D_FULL => (13, 2),
        OP_MAX_POOL | OP_AVG_POOL => (5, 0),
        OP_PRELU => (1, 1),
        OP_GLOBAL_AVG_POOL => (2, 0),
        OP_CLIP | OP_HARD_SIGMOID => (3, 0),
        _ => (1, 0),
    };
    if k != scalars + 2 * tensors {
        return Err(DecodeError::BadParams { layer: index });
    }
    let mut d = [0usize; 13];
    for v in &mut d[..scalars] {
        *v = r.u32()? as usize;
    }
    let bits = |i: usize| f32::from_bits(d[i] as u32);
    let layer = match op {
        OP_CONV2D | OP_CONV2D_FULL => ConvLayer::Conv2d {
            geom: match op {
                OP_CONV2D => ConvGeom::new(core::array::from_fn(|i| d[i])),
                _ => ConvGeom::from_full(d),
            },
            weight: r.tensor(index)?,
            bias: r.tensor(index)?,
        },
        OP_MAX_POOL | OP_AVG_POOL => ConvLayer::Pool {
            kind: match op {
                OP_MAX_POOL => PoolKind::Max,
                _ => PoolKind::Avg,
            },
            geom: PoolGeom::new(core::array::from_fn(|i| d[i])),
        },
        OP_PRELU => ConvLayer::PRelu {
            inner: d[0],
            slope: r.tensor(index)?,
        },
        OP_GLOBAL_AVG_POOL => ConvLayer::GlobalAvgPool {
            channels: d[0],
            inner: d[1],
        },
        OP_CLIP => ConvLayer::Clip {
            len: d[0],
            min: bits(1),
            max: bits(2),
        },
        OP_HARD_SIGMOID => ConvLayer::HardSigmoid {
            len: d[0],
            alpha: bits(1),
            beta: bits(2),
        },
        _ => ConvLayer::HardSwish { len: d[0] },
    };
    Ok(Layer::Conv(layer, here))
}
