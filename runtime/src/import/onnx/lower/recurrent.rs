//! ONNX `RNN`, `GRU` and `LSTM` → the model file's `rnn`, `gru` and `lstm`,
//! whose tensors are ONNX's own (`W`, `R`, `B`), so the lowering checks
//! and copies them.
//!
//! Supported: `forward` and `bidirectional`, the default activations
//! (others, `clip`, `input_forget` and peepholes are refused naming the
//! node), `sequence_lens` absent or constant at the full length, initial
//! states absent or constant zero, `layout` 0 (`X` `[T, N, F]`, a
//! time-major tensor whose batch is its second axis) and 1 (`[N, T, F]`).
//! The layer outputs `Y` (kiln's `sequence`: `[T, D, N, H]` in layout 0,
//! `[N, T, D, H]` in layout 1) or `Y_h` (the final states: `[D, N, H]`,
//! `[N, D, H]`), whichever the graph reads; either way a row holds what
//! kiln's layer writes, and the shape ops after it (`Transpose`,
//! `Squeeze`, `Reshape`) only move the batch axis ([`super::shape`]).

use ndarray::ArrayD;

use super::super::proto::NodeProto;
use super::super::tensor::{Attrs, Const};
use super::super::{ImportError, NodeRef};
use super::{Act, Lowering, Op, Value, a_has};
use crate::import::common::LayerTensors;
use crate::model::{Direction, LayerSpec};
use kiln_guest::Cell;

/// A recurrent layer: its op (`rnn`, `gru`, `lstm`), fields and ONNX
/// tensors.
#[derive(Debug, Clone)]
pub(super) struct Recurrent {
    op: &'static str,
    hidden: usize,
    direction: Direction,
    sequence: bool,
    linear_before_reset: bool,
    /// `[D, G·H, F]`, `[D, G·H, H]`, `[D, 2·G·H]`.
    w: ArrayD<f32>,
    r: ArrayD<f32>,
    b: ArrayD<f32>,
}

impl Recurrent {
    /// The model file's layer, its tensors added to `t`.
    pub(super) fn spec(self, t: &mut LayerTensors<'_>) -> LayerSpec {
        let mut add = |name: &str, a: ArrayD<f32>| {
            let shape = a.shape().to_vec();
            t.add(name, shape, a.into_iter().collect())
        };
        let (w, r, b) = (add("w", self.w), add("r", self.r), add("b", self.b));
        let (hidden, direction, sequence) = (self.hidden, self.direction, self.sequence);
        let cell = match self.op {
            "rnn" => Cell::Rnn,
            "gru" => Cell::Gru {
                linear_before_reset: self.linear_before_reset,
            },
            _ => Cell::Lstm,
        };
        LayerSpec::recurrent(cell, hidden, [w, r, b], direction, sequence)
    }
}

impl<'g> Lowering<'g> {
    pub(super) fn recurrent(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let (op, gates, defaults): (&str, usize, &[&str]) = match n.op_type.as_str() {
            "RNN" => ("rnn", 1, &["Tanh"]),
            "GRU" => ("gru", 3, &["Sigmoid", "Tanh"]),
            _ => ("lstm", 4, &["Sigmoid", "Tanh", "Tanh"]),
        };
        let hidden = a.int("hidden_size", 0)?;
        let hidden = usize::try_from(hidden)
            .ok()
            .filter(|&h| h > 0)
            .ok_or_else(|| r.err(format!("hidden_size {hidden} must be positive")))?;
        let (direction, d) = match a.string("direction")?.as_deref() {
            None | Some("forward") => (Direction::Forward, 1),
            Some("bidirectional") => (Direction::Bidirectional, 2),
            Some(other) => return Err(a.unsupported("direction", other)),
        };
        if let Some(acts) = a.strings("activations")? {
            let want: Vec<&str> = defaults
                .iter()
                .copied()
                .cycle()
                .take(d * defaults.len())
                .collect();
            let same = acts.len() == want.len()
                && acts
                    .iter()
                    .zip(&want)
                    .all(|(a, w)| a.eq_ignore_ascii_case(w));
            if !same {
                return Err(a.unsupported(
                    "activations",
                    format!("{acts:?} (kiln implements the defaults, {want:?})"),
                ));
            }
        }
        // Parameters of the non-default activations only.
        a.ignore(&["activation_alpha", "activation_beta"]);
        if a_has(n, "clip") {
            let clip = a.float("clip", 0.0)?;
            return Err(a.unsupported("clip", clip));
        }
        let input_forget = a.int("input_forget", 0)?;
        if input_forget != 0 {
            return Err(a.unsupported("input_forget", input_forget));
        }
        let linear_before_reset = match a.int("linear_before_reset", 0)? {
            0 => false,
            1 if op == "gru" => true,
            v => return Err(a.unsupported("linear_before_reset", v)),
        };
        let layout = a.int("layout", 0)?;
        let x = self.any_act(r, n, 0)?;
        let (t_n, f) = match (layout, x.batch_axis, x.dims.as_slice()) {
            (0, 1, &[t, f]) | (1, 0, &[t, f]) => (t, f),
            (0 | 1, ..) => {
                let want = ["[T, N, F] with the batch N second", "[N, T, F]"][layout as usize];
                return Err(r.err(format!(
                    "X must be {want} in layout {layout}; `{}` has rows of {:?} with the batch at axis {}",
                    n.input[0], x.dims, x.batch_axis
                )));
            }
            _ => return Err(a.unsupported("layout", layout)),
        };
        if self.kiln_shapes[x.id] != x.dims {
            if x.id == 0 {
                // A reshape of the input into steps: the model file's
                // input takes that shape.
                self.input_dims = x.dims.clone();
                self.kiln_shapes[0] = x.dims.clone();
            } else {
                return Err(r.err(format!(
                    "X is a reshape of a computed tensor (rows of {:?}) into steps; kiln's recurrent layers read the input or another recurrent layer's steps",
                    self.kiln_shapes[x.id]
                )));
            }
        }
        let gh = gates * hidden;
        let weight = |i: usize, shape: [usize; 3]| -> Result<ArrayD<f32>, ImportError> {
            let w = self.const_f32(r, n, i)?;
            if w.shape() != shape {
                return Err(r.err(format!(
                    "input {i} `{}` has shape {:?}, expected {shape:?}",
                    n.input[i],
                    w.shape()
                )));
            }
            Ok(w)
        };
        let w = weight(1, [d, gh, f])?;
        let rr = weight(2, [d, gh, hidden])?;
        let b = match self.input(r, n, 3)? {
            None => ArrayD::zeros(vec![d, 2 * gh]),
            Some(_) => {
                let b = self.const_f32(r, n, 3)?;
                if b.shape() != [d, 2 * gh] {
                    return Err(r.err(format!(
                        "input 3 `{}` (B) has shape {:?}, expected {:?}",
                        n.input[3],
                        b.shape(),
                        [d, 2 * gh]
                    )));
                }
                b
            }
        };
        self.no_extras(r, n, op, t_n)?;
        // Y or Y_h, whichever the graph reads (Y_c is never computed).
        let read = |i: usize| {
            n.output
                .get(i)
                .filter(|o| !o.is_empty())
                .is_some_and(|o| self.uses.get(o.as_str()).copied().unwrap_or(0) > 0)
        };
        let sequence = read(0);
        if sequence && read(1) {
            return Err(r.err(
                "the graph reads both Y and Y_h; a kiln recurrent layer outputs one of them",
            ));
        }
        let state = d * hidden;
        let (dims, kiln_shape) = if sequence {
            (vec![t_n, d, hidden], vec![t_n, state])
        } else {
            (vec![d, hidden], vec![state])
        };
        let layer = Recurrent {
            op,
            hidden,
            direction,
            sequence,
            linear_before_reset,
            w,
            r: rr,
            b,
        };
        self.push_reading(Op::Recurrent(layer), vec![x.id], dims.clone(), kiln_shape);
        // Layout 0: Y is [T, D, N, H], Y_h [D, N, H]; layout 1 batch-first.
        let batch_axis = match (layout, sequence) {
            (0, true) => 2,
            (0, false) => 1,
            _ => 0,
        };
        let out = Act {
            dims,
            id: self.ops.len(),
            generation: 0,
            batch_axis,
        };
        self.set(n, usize::from(!sequence), Value::Act(out));
        Ok(())
    }

    /// Refuses what kiln's layer does not compute: `sequence_lens` other
    /// than a constant `t_n` everywhere, non-zero initial states, non-zero
    /// peepholes (`P`, LSTM).
    fn no_extras(
        &self,
        r: &NodeRef,
        n: &NodeProto,
        op: &str,
        t_n: usize,
    ) -> Result<(), ImportError> {
        let name = |i: usize| n.input.get(i).cloned().unwrap_or_default();
        match self.input(r, n, 4)? {
            None => {}
            Some(Value::Const(Const::I64(lens))) if lens.iter().all(|&l| l == t_n as i64) => {}
            Some(_) => {
                return Err(r.err(format!(
                    "sequence_lens `{}` must be absent or a constant {t_n} (every sequence full-length)",
                    name(4)
                )));
            }
        }
        let last = if op == "lstm" { 7 } else { 5 };
        for (i, what) in [(5, "initial_h"), (6, "initial_c"), (7, "P (peepholes)")] {
            if i > last {
                break;
            }
            match self.input(r, n, i)? {
                None => {}
                Some(Value::Const(Const::F32(v))) if v.iter().all(|&v| v == 0.0) => {}
                Some(_) => {
                    return Err(r.err(format!(
                        "{what} `{}` must be absent or a constant zero",
                        name(i)
                    )));
                }
            }
        }
        Ok(())
    }
}
