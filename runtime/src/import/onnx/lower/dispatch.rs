//! The dispatch of one ONNX node to its lowering: the ops simple enough to
//! lower in place, and the hand-off of the others to their homes (`clip`,
//! `edges`, `join`, `ml`, `ops`, `recurrent`, `shape`, `window`).

use ndarray::{ArrayD, IxDyn};

use super::super::proto::{self, NodeProto};
use super::super::tensor::{Attrs, Const};
use super::super::{ImportError, NodeRef};
use super::{Act, Lowering, Op, Value, a_has, broadcast_row, compress};

impl<'g> Lowering<'g> {
    pub(super) fn node(&mut self, r: &NodeRef, n: &'g NodeProto) -> Result<(), ImportError> {
        let mut a = Attrs::new(r, &n.attribute)?;
        match n.domain.as_str() {
            "" | "ai.onnx" => {}
            "ai.onnx.ml" => return self.ml_node(r, n, a),
            d => return Err(r.err(format!("domain `{d}` is not supported"))),
        }
        // Attributes of legacy opsets that only hinted at in-place updates.
        a.ignore(&["consumed_inputs"]);
        self.sole = n.input.iter().all(|name| {
            !matches!(self.values.get(name.as_str()), Some(Value::Act(_)))
                || self.uses.get(name.as_str()).copied().unwrap_or(0) <= 1
        });
        match n.op_type.as_str() {
            "Identity" => {
                let v = self.need(r, n, 0)?.clone();
                self.set(n, 0, v);
            }
            "Dropout" => {
                a.ignore(&["ratio", "is_test", "seed"]);
                if let Some(Value::Const(Const::I64(t))) = self.input(r, n, 2)?
                    && t.iter().any(|&v| v != 0)
                {
                    return Err(r.err("training_mode = true is not supported"));
                }
                let v = self.need(r, n, 0)?.clone();
                self.set(n, 0, v);
            }
            "Cast" => {
                let to = a.int("to", 0)?;
                let v = match (self.need(r, n, 0)?.clone(), to as i32) {
                    (v @ Value::Act(_), proto::data_type::FLOAT) => v,
                    (Value::Const(Const::I64(c)), proto::data_type::FLOAT) => {
                        Value::Const(Const::F32(c.mapv(|v| v as f32)))
                    }
                    (v @ Value::Const(Const::F32(_)), proto::data_type::FLOAT) => v,
                    (Value::Const(Const::F32(c)), proto::data_type::INT64) => {
                        Value::Const(Const::I64(c.mapv(|v| v as i64)))
                    }
                    (v @ Value::Const(Const::I64(_)), proto::data_type::INT64) => v,
                    _ => {
                        return Err(a.unsupported("to", proto::data_type::name(to as i32)));
                    }
                };
                self.set(n, 0, v);
            }
            "Constant" => {
                let value = if let Some(t) = a.tensor("value")? {
                    t
                } else if let Some(v) = a.floats("value_floats")? {
                    Const::F32(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).expect("1-D"))
                } else if let Some(v) = a.ints("value_ints")? {
                    Const::I64(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).expect("1-D"))
                } else if a_has(n, "value_float") {
                    Const::F32(ArrayD::from_elem(IxDyn(&[]), a.float("value_float", 0.0)?))
                } else if a_has(n, "value_int") {
                    Const::I64(ArrayD::from_elem(IxDyn(&[]), a.int("value_int", 0)?))
                } else {
                    return Err(
                        r.err("needs a `value`, `value_float(s)` or `value_int(s)` attribute")
                    );
                };
                a.finish()?;
                self.set(n, 0, Value::Const(value));
                return Ok(());
            }
            "Clip" | "HardSigmoid" | "HardSwish" => self.clamp(r, n, &mut a)?,
            "Pad" => self.pad(r, n, &mut a)?,
            "Relu" | "Sigmoid" | "Tanh" | "LeakyRelu" | "Neg" => {
                let x = self.act(r, n, 0)?;
                let op = match n.op_type.as_str() {
                    "Relu" => Op::Relu,
                    "Sigmoid" => Op::Sigmoid,
                    "Tanh" => Op::Tanh,
                    "LeakyRelu" => Op::LeakyRelu(a.float("alpha", 0.01)?),
                    _ => Op::ScaleShift {
                        scale: vec![-1.0],
                        shift: vec![0.0],
                    },
                };
                let v = self.push(op, x.dims);
                self.set(n, 0, v);
            }
            "Add" | "Sub" | "Mul" | "Div" => self.binary(r, n, &mut a)?,
            "PRelu" => {
                let x = self.act(r, n, 0)?;
                let slope = self.const_f32(r, n, 1)?;
                // Before opset 7 a 1-D slope is one value per channel (axis 1).
                let legacy = (self.opset < 7
                    && slope.ndim() == 1
                    && slope.len() > 1
                    && x.dims.first() == Some(&slope.len()))
                .then_some(1);
                let slope = broadcast_row(r, &slope, &x.dims, legacy)?;
                let zeros = vec![0.0; slope.len()];
                let (slope, _) = compress(slope, zeros, &x.dims);
                let v = self.push(Op::PRelu(slope), x.dims);
                self.set(n, 0, v);
            }
            "Gemm" => self.gemm(r, n, &mut a)?,
            "MatMul" => self.matmul(r, n)?,
            "BatchNormalization" => self.batch_norm(r, n, &mut a)?,
            "Softmax" | "LogSoftmax" => self.softmax(r, n, &mut a)?,
            "Flatten" => {
                let x = self.act(r, n, 0)?;
                let rank = x.dims.len() as i64 + 1;
                let axis = a.int("axis", 1)?;
                let axis = if axis < 0 { axis + rank } else { axis };
                if !(1..=rank).contains(&axis)
                    || x.dims[..(axis - 1) as usize].iter().product::<usize>() != 1
                {
                    return Err(a.unsupported("axis", axis));
                }
                let dims = vec![x.width()];
                self.set(n, 0, Value::Act(Act { dims, ..x }));
            }
            "Conv" | "MaxPool" | "AveragePool" => self.windowed(r, n, &mut a)?,
            "Concat" => self.concat(r, n, &mut a)?,
            "ReduceMean" => self.reduce_mean(r, n, &mut a)?,
            "Reshape" => self.reshape(r, n, &mut a)?,
            "Transpose" => self.transpose(r, n, &mut a)?,
            "Squeeze" => self.squeeze(r, n, &mut a)?,
            "RNN" | "GRU" | "LSTM" => self.recurrent(r, n, &mut a)?,
            "GlobalAveragePool" => {
                let x = self.act(r, n, 0)?;
                if x.dims.len() < 2 {
                    return Err(r.err(format!(
                        "needs an input of shape [N, C, spatial...], got rows of {:?}",
                        x.dims
                    )));
                }
                let channels = x.dims[0];
                let mut dims = vec![1; x.dims.len()];
                dims[0] = channels;
                let v = self.push(Op::GlobalAvgPool { channels }, dims);
                self.set(n, 0, v);
            }
            op => {
                return Err(r.err(format!(
                    "op `{op}` is not supported (see docs/onnx.md for the ops kiln imports)"
                )));
            }
        }
        a.finish()?;
        self.mark_unset(r, n);
        Ok(())
    }

    /// Remembers outputs a node does not compute (Dropout's mask, a batch
    /// norm's running statistics), so reading one names the node.
    pub(super) fn mark_unset(&mut self, r: &NodeRef, n: &'g NodeProto) {
        for (i, out) in n.output.iter().enumerate() {
            if !out.is_empty() && !self.values.contains_key(out.as_str()) {
                self.unset
                    .insert(out.as_str(), format!("output {i} of {r}"));
            }
        }
    }
}
