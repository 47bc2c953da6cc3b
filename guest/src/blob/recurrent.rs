//! Blob records of the recurrent family ([`RecurrentLayer`], feature
//! `rnn`). Op codes and params:
//!
//! | op | layer | params |
//! |----|-------|--------|
//! | 50 | rnn   | steps, features, hidden, flags, w (off, len), r (off, len), b (off, len) |
//! | 51 | gru   | the same |
//! | 52 | lstm  | the same |
//!
//! `flags`: bit 0 bidirectional, bit 1 sequence output, bit 2 (GRU only)
//! `linear_before_reset`, bit 3 int8 weights; any other bit is refused.
//! `w` and `r` are packed as [`RecurrentLayer`] keeps them, `b` is ONNX's
//! `[Wb, Rb]` per direction. With int8 weights the tensors are `w` (i8),
//! `w_scale` (f32), `w_fold` (i32), `r` (i8), `r_scale`, `r_fold`, `b`
//! ([`RecurrentI8`]): 18 params instead of 10.
//!
//! A kernel without the family refuses these ops by name before reading
//! their params ([`crate::model::family`]), so it holds none of this
//! decoder; one without `int8-rnn` refuses int8 weights the same way.

use alloc::vec::Vec;

use super::records::{Reader, TensorRef, push_tensor};
use crate::model::family;
use crate::{
    Cell, DecodeError, Layer, RecurrentGeom, RecurrentI8, RecurrentLayer, RecurrentWeights,
};

const OP_RNN: u32 = 50;
const OP_GRU: u32 = 51;
const OP_LSTM: u32 = 52;

const BIDIRECTIONAL: u32 = 1;
const SEQUENCE: u32 = 2;
const LINEAR_BEFORE_RESET: u32 = 4;
const INT8: u32 = 8;

/// The op's name, if it is one of the family's.
pub(super) fn op_name(op: u32) -> Option<&'static str> {
    Some(match op {
        OP_RNN => "rnn",
        OP_GRU => "gru",
        OP_LSTM => "lstm",
        _ => return None,
    })
}

/// Appends the record of `layer`: op, param count, params, then its
/// tensors' references.
pub(super) fn encode<'t>(
    layer: &'t RecurrentLayer<'_>,
    records: &mut Vec<u32>,
    tensors: &mut Vec<(usize, TensorRef<'t>)>,
) {
    let g = &layer.geom;
    let (op, lbr) = match g.cell {
        Cell::Rnn => (OP_RNN, false),
        Cell::Gru {
            linear_before_reset,
        } => (OP_GRU, linear_before_reset),
        Cell::Lstm => (OP_LSTM, false),
    };
    let int8 = matches!(layer.weights, RecurrentWeights::Int8(..));
    let flags = [
        (g.bidirectional, BIDIRECTIONAL),
        (g.sequence, SEQUENCE),
        (lbr, LINEAR_BEFORE_RESET),
        (int8, INT8),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |flags, (_, bit)| flags | bit);
    records.extend([op, if int8 { 18 } else { 10 }]);
    records.extend([g.steps, g.features, g.hidden].map(|v| v as u32));
    records.push(flags);
    match &layer.weights {
        RecurrentWeights::F32 { w, r } => {
            push_tensor(records, tensors, TensorRef::F32(w));
            push_tensor(records, tensors, TensorRef::F32(r));
        }
        RecurrentWeights::Int8(q, _) => {
            for (w, scale, fold) in [(&q.w, &q.w_scale, &q.w_fold), (&q.r, &q.r_scale, &q.r_fold)] {
                push_tensor(records, tensors, TensorRef::I8(w));
                push_tensor(records, tensors, TensorRef::F32(scale));
                push_tensor(records, tensors, TensorRef::I32(fold));
            }
        }
    }
    push_tensor(records, tensors, TensorRef::F32(&layer.b));
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
    let here = family::rnn(index, name)?;
    let bad = DecodeError::BadParams { layer: index };
    if k < 4 {
        return Err(bad);
    }
    let [steps, features, hidden] = [r.u32()?, r.u32()?, r.u32()?].map(|v| v as usize);
    let flags = r.u32()?;
    let known = match op {
        OP_GRU => BIDIRECTIONAL | SEQUENCE | LINEAR_BEFORE_RESET | INT8,
        _ => BIDIRECTIONAL | SEQUENCE | INT8,
    };
    let int8 = flags & INT8 != 0;
    if flags & !known != 0 || k != if int8 { 18 } else { 10 } {
        return Err(bad);
    }
    let cell = match op {
        OP_RNN => Cell::Rnn,
        OP_GRU => Cell::Gru {
            linear_before_reset: flags & LINEAR_BEFORE_RESET != 0,
        },
        _ => Cell::Lstm,
    };
    let geom = RecurrentGeom {
        cell,
        steps,
        features,
        hidden,
        bidirectional: flags & BIDIRECTIONAL != 0,
        sequence: flags & SEQUENCE != 0,
    };
    let weights = if int8 {
        let here = family::int8_rnn(index, name)?;
        let i8s = |r: &mut Reader<'a>| r.typed(index, |[b]: [u8; 1]| b as i8);
        let i32s = |r: &mut Reader<'a>| r.typed(index, i32::from_le_bytes);
        RecurrentWeights::Int8(
            RecurrentI8 {
                w: i8s(r)?,
                w_scale: r.tensor(index)?,
                w_fold: i32s(r)?,
                r: i8s(r)?,
                r_scale: r.tensor(index)?,
                r_fold: i32s(r)?,
            },
            here,
        )
    } else {
        RecurrentWeights::F32 {
            w: r.tensor(index)?,
            r: r.tensor(index)?,
        }
    };
    let layer = RecurrentLayer {
        geom,
        weights,
        b: r.tensor(index)?,
    };
    Ok(Layer::Recurrent(layer, here))
}
