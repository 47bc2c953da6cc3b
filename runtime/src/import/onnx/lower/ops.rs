//! The op handlers of [`super::Lowering`]: arithmetic, dense layers, batch
//! normalization, softmax, and turning the finished ops into a model file.
//! (Windows live in `window.rs`, `Reshape` and `Transpose` in `shape.rs`,
//! `ai.onnx.ml` ops in `ml.rs`.)

use ndarray::{Array1, ArrayD, Axis, Ix2, IxDyn};

use super::super::proto::NodeProto;
use super::super::tensor::{Attrs, Const};
use super::super::{ImportError, NodeRef, Options};
use super::{Act, Lowering, Op, Value, broadcast_row, compress};
use crate::import::common::{LayerTensors, pool, task};
use crate::model::{
    FORMAT_VERSION, GRAPH_FORMAT_VERSION, Graph, InputSpec, LayerSpec, ModelFile, Task, Wires,
};

impl<'g> Lowering<'g> {
    /// `Add`, `Sub`, `Mul`, `Div` with one constant operand (or two: folded).
    pub(super) fn binary(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let op = n.op_type.as_str();
        let mut legacy = None;
        if self.opset < 7 && a.int("broadcast", 0)? == 1 {
            let has_axis = n.attribute.iter().any(|x| x.name == "axis");
            let axis = a.int("axis", 0)?;
            if has_axis {
                legacy = Some(usize::try_from(axis).map_err(|_| a.unsupported("axis", axis))?);
            }
        }
        let (x, y) = (self.need(r, n, 0)?.clone(), self.need(r, n, 1)?.clone());
        let v = match (x, y) {
            (Value::Const(x), Value::Const(y)) => Value::Const(fold_binary(r, op, x, y, legacy)?),
            (Value::Act(_), Value::Act(_)) => return self.join_binary(r, n, op),
            (Value::Act(_), Value::Const(c)) | (Value::Const(c), Value::Act(_)) => {
                let act_first = matches!(self.need(r, n, 0)?, Value::Act(_));
                let x = self.act(r, n, if act_first { 0 } else { 1 })?;
                let Const::F32(c) = c else {
                    return Err(r.err(format!(
                        "the constant has type {}, expected FLOAT",
                        c.dtype()
                    )));
                };
                let row = broadcast_row(r, &c, &x.dims, legacy)?;
                let ones = vec![1.0; row.len()];
                let zeros = vec![0.0; row.len()];
                let (scale, shift) = match (op, act_first) {
                    ("Add", _) => (ones, row),
                    ("Sub", true) => (ones, row.iter().map(|v| -v).collect()),
                    ("Sub", false) => (vec![-1.0; row.len()], row),
                    ("Mul", _) => (row, zeros),
                    ("Div", true) => (row.iter().map(|v| 1.0 / v).collect(), zeros),
                    _ => {
                        return Err(
                            r.err("dividing a constant by the computed tensor is not supported")
                        );
                    }
                };
                // A constant added right after a dense layer is its bias.
                let pure_shift = scale.iter().all(|&s| s == 1.0);
                if pure_shift
                    && x.dims.len() == 1
                    && let Some(Op::Dense { bias, .. }) = self.foldable(&x)
                {
                    for (b, s) in bias.iter_mut().zip(&shift) {
                        *b += s;
                    }
                    self.folded(x.dims)
                } else {
                    let (scale, shift) = compress(scale, shift, &x.dims);
                    let per_channel = pure_shift && x.dims.len() == 3 && shift.len() == x.dims[0];
                    if per_channel && let Some(Op::Conv { bias, .. }) = self.foldable(&x) {
                        for (b, s) in bias.iter_mut().zip(&shift) {
                            *b += s;
                        }
                        self.folded(x.dims)
                    } else {
                        self.push(Op::ScaleShift { scale, shift }, x.dims)
                    }
                }
            }
        };
        self.set(n, 0, v);
        Ok(())
    }

    /// `Gemm`: `alpha · A·B' + beta · C` with A computed, B and C constant.
    pub(super) fn gemm(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let alpha = a.float("alpha", 1.0)?;
        let beta = a.float("beta", 1.0)?;
        let trans_a = a.int("transA", 0)?;
        let trans_b = a.int("transB", 0)?;
        if self.opset < 7 {
            a.ignore(&["broadcast"]);
        }
        if trans_a != 0 {
            return Err(a.unsupported("transA", trans_a));
        }
        let x = self.act(r, n, 0)?;
        let b = self.const_f32(r, n, 1)?;
        let b = b
            .into_dimensionality::<Ix2>()
            .map_err(|_| r.err("input B must be a 2-D constant"))?;
        let mut w = if trans_b != 0 { b } else { b.t().to_owned() };
        self.check_dense_input(r, &x, w.ncols(), w.nrows())?;
        if alpha != 1.0 {
            w.mapv_inplace(|v| v * alpha);
        }
        let m = w.nrows();
        let bias = match self.input(r, n, 2)? {
            None => Array1::zeros(m),
            Some(_) => {
                let c = self.const_f32(r, n, 2)?;
                Array1::from(broadcast_row(r, &c, &[m], None)?).mapv(|v| v * beta)
            }
        };
        let v = self.push(Op::Dense { weight: w, bias }, vec![m]);
        self.set(n, 0, v);
        Ok(())
    }

    /// `MatMul` of the computed `[N, K]` tensor by a constant `[K, M]` (or `[K]`).
    pub(super) fn matmul(&mut self, r: &NodeRef, n: &'g NodeProto) -> Result<(), ImportError> {
        let x = self.act(r, n, 0)?;
        let b = self.const_f32(r, n, 1)?;
        let (w, dims) = match b.ndim() {
            2 => {
                let b = b.into_dimensionality::<Ix2>().expect("2-D");
                let m = b.ncols();
                (b.t().to_owned(), vec![m])
            }
            1 => {
                let k = b.len();
                (b.into_shape_with_order((1, k)).expect("1-D"), vec![])
            }
            _ => {
                return Err(r.err(format!(
                    "input B has shape {:?}; kiln supports a 2-D (or 1-D) constant B",
                    b.shape()
                )));
            }
        };
        self.check_dense_input(r, &x, w.ncols(), w.nrows())?;
        let m = w.nrows();
        let v = self.push(
            Op::Dense {
                weight: w,
                bias: Array1::zeros(m),
            },
            dims,
        );
        self.set(n, 0, v);
        Ok(())
    }

    fn check_dense_input(
        &self,
        r: &NodeRef,
        x: &Act,
        k: usize,
        m: usize,
    ) -> Result<(), ImportError> {
        if m == 0 || m > super::edges::kiln_guest_max_width() {
            return Err(r.err(format!("the weight has {m} outputs")));
        }
        if x.dims.len() != 1 {
            return Err(r.err(format!(
                "needs a 2-D input [N, K] but rows here have shape {:?} (add a Flatten first)",
                x.dims
            )));
        }
        if x.dims[0] != k {
            return Err(r.err(format!(
                "the weight expects {k} inputs but rows have {}",
                x.dims[0]
            )));
        }
        Ok(())
    }

    /// Inference-mode `BatchNormalization`: folded into a dense layer right
    /// before it, a per-channel scale and shift otherwise.
    pub(super) fn batch_norm(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let eps = a.float("epsilon", 1e-5)?;
        a.ignore(&["momentum", "is_test"]);
        if self.opset < 9 {
            let spatial = a.int("spatial", 1)?;
            if spatial != 1 {
                return Err(a.unsupported("spatial", spatial));
            }
        }
        let training = a.int("training_mode", 0)?;
        if training != 0 {
            return Err(a.unsupported("training_mode", training));
        }
        let x = self.act(r, n, 0)?;
        let Some(&channels) = x.dims.first() else {
            return Err(r.err("needs an input of shape [N, C, ...]"));
        };
        let mut p = Vec::new();
        for (i, what) in ["scale", "B", "mean", "var"].into_iter().enumerate() {
            let t = self.const_f32(r, n, i + 1)?;
            if t.len() != channels || t.ndim() != 1 {
                return Err(r.err(format!(
                    "{what} has shape {:?}, expected [{channels}]",
                    t.shape()
                )));
            }
            p.push(t.into_iter().collect::<Vec<f32>>());
        }
        let (gamma, beta, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
        let s: Vec<f32> = gamma
            .iter()
            .zip(var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let t: Vec<f32> = beta
            .iter()
            .zip(mean)
            .zip(&s)
            .map(|((b, m), s)| b - m * s)
            .collect();
        let v = if x.dims.len() == 3
            && let Some(Op::Conv { weight, bias, .. }) = self.foldable(&x)
        {
            for (o, mut filter) in weight.axis_iter_mut(Axis(0)).enumerate() {
                filter.mapv_inplace(|w| w * s[o]);
                bias[o] = bias[o] * s[o] + t[o];
            }
            self.notes
                .push(format!("{r}: folded into the convolution before it"));
            self.folded(x.dims)
        } else if x.dims.len() == 1
            && let Some(Op::Dense { weight, bias }) = self.foldable(&x)
        {
            for (o, mut row) in weight.axis_iter_mut(Axis(0)).enumerate() {
                row.mapv_inplace(|w| w * s[o]);
                bias[o] = bias[o] * s[o] + t[o];
            }
            self.notes
                .push(format!("{r}: folded into the dense layer before it"));
            self.folded(x.dims)
        } else {
            self.push(Op::ScaleShift { scale: s, shift: t }, x.dims)
        };
        self.set(n, 0, v);
        Ok(())
    }

    /// `Softmax` / `LogSoftmax` over the whole row or its last axis.
    pub(super) fn softmax(
        &mut self,
        r: &NodeRef,
        n: &'g NodeProto,
        a: &mut Attrs<'_>,
    ) -> Result<(), ImportError> {
        let log = n.op_type == "LogSoftmax";
        let x = self.act(r, n, 0)?;
        let rank = x.dims.len() as i64 + 1;
        let legacy = self.opset < 13;
        let axis = a.int("axis", if legacy { 1 } else { -1 })?;
        let ax = if axis < 0 { axis + rank } else { axis };
        if !(1..rank).contains(&ax) {
            return Err(a.unsupported("axis", axis));
        }
        let ax = ax as usize - 1; // into the row's dims
        let group = if legacy {
            // Opsets < 13 flatten to 2-D at `axis`.
            x.dims[ax..].iter().product()
        } else {
            if x.dims[ax + 1..].iter().product::<usize>() != 1 {
                return Err(r.err(format!(
                    "attribute `axis` = {axis} is not supported for rows of shape {:?}: kiln \
                     computes softmax over the last axis only",
                    x.dims
                )));
            }
            x.dims[ax]
        };
        let group = (group != x.width()).then_some(group);
        let v = self.push(Op::Softmax { group, log }, x.dims);
        self.set(n, 0, v);
        Ok(())
    }

    /// The model file for the finished ops: a chain (format 1) when each
    /// reads the one before, a graph (format 2) otherwise.
    pub(super) fn finish(self, input: String, options: &Options) -> Result<ModelFile, ImportError> {
        let dims = self.input_dims;
        let chain = self.wires.iter().enumerate().all(|(k, w)| *w == [k]);
        let name = |t: usize| match t {
            0 => input.clone(),
            t => format!("layer{}", t - 1),
        };
        let wiring: Vec<Wires> = if chain {
            Vec::new()
        } else {
            self.wires
                .iter()
                .enumerate()
                .map(|(k, w)| Wires {
                    inputs: w.iter().map(|&t| name(t)).collect(),
                    output: name(k + 1),
                })
                .collect()
        };
        let mut layers = Vec::new();
        let mut tensors = std::collections::BTreeMap::new();
        let ends_in_softmax = matches!(self.ops.last(), Some(Op::Softmax { .. }));
        for (index, op) in self.ops.into_iter().enumerate() {
            let mut t = LayerTensors {
                tensors: &mut tensors,
                index,
            };
            layers.push(match op {
                Op::Dense { weight, bias } => t.dense(weight, bias.to_vec()),
                Op::ScaleShift { scale, shift } => t.scale_shift(scale, shift),
                Op::Relu => LayerSpec::Relu,
                Op::Sigmoid => LayerSpec::Sigmoid,
                Op::Tanh => LayerSpec::Tanh,
                Op::LeakyRelu(alpha) => LayerSpec::LeakyRelu { alpha },
                Op::Clip(min, max) => LayerSpec::Clip { min, max },
                Op::HardSigmoid(alpha, beta) => LayerSpec::HardSigmoid { alpha, beta },
                Op::HardSwish => LayerSpec::HardSwish,
                Op::PRelu(slope) => {
                    let c = slope.len();
                    LayerSpec::PRelu {
                        slope: t.add("slope", vec![c], slope),
                    }
                }
                Op::Softmax {
                    group: None,
                    log: false,
                } => LayerSpec::Softmax,
                Op::Softmax {
                    group: Some(group),
                    log: false,
                } => LayerSpec::GroupSoftmax { group },
                Op::Softmax { group, log: true } => LayerSpec::LogSoftmax { group },
                Op::GlobalAvgPool { channels } => LayerSpec::GlobalAvgPool { channels },
                Op::Conv {
                    weight,
                    bias,
                    stride,
                    pads,
                    dilation,
                    groups,
                } => {
                    let weight = (weight.shape().to_vec(), weight.into_iter().collect());
                    t.conv2d(weight, bias, stride, pads, dilation, groups)
                }
                Op::Pool {
                    max,
                    kernel,
                    stride,
                } => pool(max, kernel, stride),
                Op::Recurrent(rec) => rec.spec(&mut t),
                Op::Add => LayerSpec::Add,
                Op::Mul => LayerSpec::Mul,
                Op::Concat => LayerSpec::Concat,
                Op::Trees(tables) => tables.spec(&mut t),
            });
        }
        let task = task(options.task, self.classifier || ends_in_softmax);
        let graph = Graph {
            format: if chain {
                FORMAT_VERSION
            } else {
                GRAPH_FORMAT_VERSION
            },
            name: options.name.clone(),
            version: "1".into(),
            task,
            input: InputSpec {
                name: input,
                shape: if dims.is_empty() { vec![1] } else { dims },
                features: Vec::new(),
            },
            target: None,
            labels: Vec::new(),
            layers,
            wiring,
        };
        let mut model = ModelFile { graph, tensors };
        let outputs = model.to_kernel()?.output_len();
        if task == Task::Classification && self.labels.len() == outputs {
            model.graph.labels = self.labels;
        }
        Ok(model)
    }
}

/// Elementwise arithmetic on two constants (shape computations, weights
/// built from several initializers).
fn fold_binary(
    r: &NodeRef,
    op: &str,
    x: Const,
    y: Const,
    legacy: Option<usize>,
) -> Result<Const, ImportError> {
    let bad = || r.err("constant operands do not broadcast together");
    let align = |x: &[usize], y: ArrayD<f32>| -> Result<ArrayD<f32>, ImportError> {
        match legacy {
            Some(axis) => {
                let mut shape = vec![1; axis];
                shape.extend(y.shape());
                shape.resize(x.len().max(shape.len()), 1);
                y.into_shape_with_order(IxDyn(&shape)).map_err(|_| bad())
            }
            None => Ok(y),
        }
    };
    match (x, y) {
        (Const::F32(x), Const::F32(y)) => {
            let y = align(x.shape(), y)?;
            let z = match op {
                "Add" => ndarray_op(&x, &y, |a, b| a + b),
                "Sub" => ndarray_op(&x, &y, |a, b| a - b),
                "Mul" => ndarray_op(&x, &y, |a, b| a * b),
                _ => ndarray_op(&x, &y, |a, b| a / b),
            };
            z.map(Const::F32).ok_or_else(bad)
        }
        (Const::I64(x), Const::I64(y)) if legacy.is_none() => {
            let z = match op {
                "Add" => ndarray_op(&x, &y, |a, b| a.wrapping_add(b)),
                "Sub" => ndarray_op(&x, &y, |a, b| a.wrapping_sub(b)),
                "Mul" => ndarray_op(&x, &y, |a, b| a.wrapping_mul(b)),
                _ => ndarray_op(&x, &y, |a, b| a.checked_div(b).unwrap_or(0)),
            };
            z.map(Const::I64).ok_or_else(bad)
        }
        _ => Err(r.err("constant operands have different or unsupported types")),
    }
}

/// `f` applied elementwise after numpy broadcasting, `None` if the shapes
/// do not broadcast.
fn ndarray_op<T: Copy>(x: &ArrayD<T>, y: &ArrayD<T>, f: impl Fn(T, T) -> T) -> Option<ArrayD<T>> {
    let rank = x.ndim().max(y.ndim());
    let pad = |s: &[usize]| {
        let mut v = vec![1; rank - s.len()];
        v.extend(s);
        v
    };
    let (sx, sy) = (pad(x.shape()), pad(y.shape()));
    let mut shape = Vec::with_capacity(rank);
    for (&a, &b) in sx.iter().zip(&sy) {
        shape.push(match (a, b) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => return None,
        });
    }
    let size = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    if size > 1 << 28 {
        return None;
    }
    let xb = x.broadcast(IxDyn(&shape))?;
    let yb = y.broadcast(IxDyn(&shape))?;
    let data: Vec<T> = xb.iter().zip(yb.iter()).map(|(&a, &b)| f(a, b)).collect();
    ArrayD::from_shape_vec(IxDyn(&shape), data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_constant_arithmetic_with_broadcasting() {
        let r = NodeRef {
            index: 0,
            name: String::new(),
            op: "Add".into(),
        };
        let x = Const::F32(ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![1.0, 2.0]).unwrap());
        let y = Const::F32(ArrayD::from_shape_vec(IxDyn(&[3]), vec![10.0, 20.0, 30.0]).unwrap());
        let Const::F32(z) = fold_binary(&r, "Add", x, y, None).unwrap() else {
            panic!("not f32")
        };
        assert_eq!(z.shape(), [2, 3]);
        assert_eq!(
            z.iter().copied().collect::<Vec<_>>(),
            [11.0, 21.0, 31.0, 12.0, 22.0, 32.0]
        );
        let big = |n| Const::F32(ArrayD::zeros(IxDyn(&[n, 1])));
        let wide = |n| Const::F32(ArrayD::zeros(IxDyn(&[1, n])));
        assert!(fold_binary(&r, "Mul", big(1 << 15), wide(1 << 15), None).is_err());
    }
}
