//! `Clip`, `HardSigmoid` and `HardSwish` onto kiln's clamping activations,
//! and `Pad` (constant zeros on H and W), which is folded into the `Conv`
//! that reads it (`window.rs`): MobileNet-class graphs exported from
//! TensorFlow pad explicitly before their stride-2 convolutions.

use super::super::proto::NodeProto;
use super::super::tensor::{Attrs, Const};
use super::super::{ImportError, NodeRef};
use super::{Act, Lowering, Op, Value};

impl<'g> Lowering<'g> {
    /// `Clip` (bounds as attributes before opset 11, optional constant
    /// inputs from it; an absent bound is the float range's end, as
    /// onnxruntime has it), `HardSigmoid` (alpha 0.2, beta 0.5 by
    /// default) and `HardSwish`.
    pub(super) fn clamp(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let x = self.act(r, n, 0)?;
        let op = match n.op_type.as_str() {
            "Clip" if self.opset < 11 => {
                Op::Clip(a.float("min", f32::MIN)?, a.float("max", f32::MAX)?)
            }
            "Clip" => {
                let bound = |i: usize, default: f32| -> Result<f32, ImportError> {
                    if self.input(r, n, i)?.is_none() {
                        return Ok(default);
                    }
                    let c = self.const_f32(r, n, i)?;
                    match c.iter().next() {
                        Some(&v) if c.len() == 1 => Ok(v),
                        _ => Err(r.err(format!(
                            "input `{}` of shape {:?} must be a scalar",
                            n.input[i],
                            c.shape()
                        ))),
                    }
                };
                Op::Clip(bound(1, f32::MIN)?, bound(2, f32::MAX)?)
            }
            "HardSigmoid" => Op::HardSigmoid(a.float("alpha", 0.2)?, a.float("beta", 0.5)?),
            _ => Op::HardSwish,
        };
        match op {
            Op::Clip(lo, hi) if lo.is_nan() || hi.is_nan() || lo > hi => {
                return Err(r.err(format!("min {lo} and max {hi} do not bound a range")));
            }
            Op::HardSigmoid(alpha, beta) if !(alpha.is_finite() && beta.is_finite()) => {
                return Err(r.err(format!("alpha {alpha} and beta {beta} must be finite")));
            }
            _ => {}
        }
        let v = self.push(op, x.dims);
        self.set(n, 0, v);
        Ok(())
    }

    /// `Pad` with constant zeros on the spatial axes of a `[C, H, W]` row:
    /// remembered, and added to the padding of the `Conv` that reads it.
    pub(super) fn pad(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let x = self.act(r, n, 0)?;
        let mode = a.string("mode")?.unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(a.unsupported("mode", format!("{mode:?} (kiln folds zero padding only)")));
        }
        let (pads, value) = if self.opset < 11 {
            let p = a
                .ints("pads")?
                .ok_or_else(|| r.err("needs a `pads` attribute"))?;
            (p, a.float("value", 0.0)?)
        } else {
            if self.input(r, n, 3)?.is_some() {
                return Err(r.err("input `axes` is not supported; give pads for every axis"));
            }
            let p = self.const_i64(r, n, 1)?.iter().copied().collect();
            let value = match self.input(r, n, 2)? {
                None => 0.0,
                Some(Value::Const(Const::F32(c))) if c.len() == 1 => c.iter().copied().sum(),
                Some(_) => return Err(r.err("`constant_value` must be a scalar FLOAT constant")),
            };
            (p, value)
        };
        if value != 0.0 {
            return Err(r.err(format!("pads with {value}; kiln folds zero padding only")));
        }
        // [N, C, H, W] begins, then ends: only H and W may pad, never crop.
        let (&[c, h, w], &[0, 0, t, l, 0, 0, b, rr]) = (x.dims.as_slice(), pads.as_slice()) else {
            return Err(r.err(format!(
                "pads {pads:?} of rows {:?}: kiln folds zero padding of H and W of [N, C, H, W] only",
                x.dims
            )));
        };
        let amounts = [t, l, b, rr].map(usize::try_from);
        let [Ok(t), Ok(l), Ok(b), Ok(rr)] = amounts else {
            return Err(r.err(format!(
                "negative pads {pads:?} (cropping) are not supported"
            )));
        };
        let grow = |v: usize, a: usize, b: usize| v.checked_add(a)?.checked_add(b);
        let (Some(ph), Some(pw)) = (grow(h, t, b), grow(w, l, rr)) else {
            return Err(r.err(format!("pads {pads:?} overflow")));
        };
        let dims = vec![c, ph, pw];
        // Never current, so only the Conv that folds it can read it.
        let out = Act {
            dims,
            id: x.id,
            generation: usize::MAX,
            batch_axis: 0,
        };
        if let Some(name) = n.output.first().filter(|s| !s.is_empty()) {
            self.padded
                .insert(name.as_str(), (x, [t, l, b, rr], r.clone()));
        }
        self.set(n, 0, Value::Act(out));
        Ok(())
    }

    /// The act a `Conv` reads as input 0 and the zeros a `Pad` before it
    /// adds (none without one).
    pub(super) fn conv_input(
        &mut self,
        r: &NodeRef,
        n: &NodeProto,
    ) -> Result<(Act, [usize; 4]), ImportError> {
        match n
            .input
            .first()
            .and_then(|name| self.padded.get(name.as_str()))
        {
            Some((x, pads, _)) if x.generation == self.generations[x.id] => {
                // The Conv pushed next reads the Pad's input.
                let (x, pads) = (x.clone(), *pads);
                self.reading = x.id;
                Ok((x, pads))
            }
            Some(_) => Err(r.err(format!(
                "reads `{}`, a Pad whose input a later layer has consumed",
                n.input[0]
            ))),
            None => Ok((self.act(r, n, 0)?, [0; 4])),
        }
    }
}
