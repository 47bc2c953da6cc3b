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
//! `linear_before_reset`; any other bit is refused. `w` and `r` are packed
//! as [`RecurrentLayer`] keeps them, `b` is ONNX's `[Wb, Rb]` per
//! direction.
//!
//! A kernel without the family refuses these ops by name before reading
//! their params ([`crate::model::family`]), so it holds none of this
//! decoder.

use alloc::vec::Vec;

use super::records::{Reader, TensorRef, push_tensor};
use crate::model::family;
use crate::{Cell, DecodeError, Layer, RecurrentGeom, RecurrentLayer};

const OP_RNN: u32 = 50;
const OP_GRU: u32 = 51;
const OP_LSTM: u32 = 52;

const BIDIRECTIONAL: u32 = 1;
const SEQUENCE: u32 = 2;
const LINEAR_BEFORE_RESET: u32 = 4;

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
    let flags = [
        (g.bidirectional, BIDIRECTIONAL),
        (g.sequence, SEQUENCE),
        (lbr, LINEAR_BEFORE_RESET),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |flags, (_, bit)| flags | bit);
    records.extend([op, 10]);
    records.extend([g.steps, g.features, g.hidden].map(|v| v as u32));
    records.push(flags);
    for t in [&layer.w, &layer.r, &layer.b] {
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
    let here = family::rnn(index, name)?;
    let bad = DecodeError::BadParams { layer: index };
    if k != 10 {
        return Err(bad);
    }
    let [steps, features, hidden] = [r.u32()?, r.u32()?, r.u32()?].map(|v| v as usize);
    let flags = r.u32()?;
    let known = match op {
        OP_GRU => BIDIRECTIONAL | SEQUENCE | LINEAR_BEFORE_RESET,
        _ => BIDIRECTIONAL | SEQUENCE,
    };
    if flags & !known != 0 {
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
    let layer = RecurrentLayer {
        geom,
        w: r.tensor(index)?,
        r: r.tensor(index)?,
        b: r.tensor(index)?,
    };
    Ok(Layer::Recurrent(layer, here))
}
