//! Lowering ONNX nodes into kiln layers: a chain, or a graph when values
//! branch and join (residual `Add`, a squeeze-and-excitation `Mul`,
//! `Concat`).
//!
//! Every ONNX value is either a [`Const`] (folded at import time) or a
//! computed tensor, an [`Act`]: its per-row shape (the batch dimension
//! stripped), the kiln tensor that holds it (0: the input, `k + 1`: op
//! `k`'s output) and that tensor's fold generation. Ops are appended as
//! [`Op`]s with the tensors they read, and their weights stay editable so a
//! later node can fold into the last op (bias `Add`, `BatchNormalization`)
//! when it is that op's only reader; a fold makes other names of the
//! pre-fold value stale, and reading one is refused. The finished ops
//! become the model file's layers: format 1 when they form a chain, format
//! 2 (with wiring) otherwise.

mod clip;
mod dispatch;
mod edges;
mod join;
mod ml;
mod ops;
mod recurrent;
mod shape;
mod trees;
mod window;

use std::collections::{BTreeSet, HashMap};

use ndarray::{Array1, Array2, ArrayD, IxDyn};

use super::proto::{self, GraphProto, NodeProto};
use super::tensor::{self, Const};
use super::{ImportError, NodeRef, Options};
use crate::model::ModelFile;
use edges::{check_declared, class_labels, input_shape};

/// A computed value: one row's shape, the kiln tensor holding it, and the
/// fold generation of that tensor it was read at.
#[derive(Debug, Clone)]
struct Act {
    dims: Vec<usize>,
    id: usize,
    generation: usize,
    /// Where the batch axis sits in the ONNX tensor (`dims` are the other
    /// axes, in order): 0, except around recurrent ops, whose time-major
    /// tensors (`[T, N, F]`, `Y`'s `[T, D, N, H]`) keep it inside. Only
    /// recurrent ops and the shape ops read such a tensor ([`Lowering::act`]
    /// refuses it elsewhere).
    batch_axis: usize,
}

impl Act {
    fn width(&self) -> usize {
        self.dims.iter().product()
    }
}

#[derive(Debug, Clone)]
enum Value {
    Const(Const),
    Act(Act),
}

/// A kiln layer under construction.
#[derive(Debug, Clone)]
enum Op {
    /// `weight` is `[outputs, inputs]`.
    Dense {
        weight: Array2<f32>,
        bias: Array1<f32>,
    },
    ScaleShift {
        scale: Vec<f32>,
        shift: Vec<f32>,
    },
    Relu,
    Sigmoid,
    Tanh,
    LeakyRelu(f32),
    /// `min`, `max`.
    Clip(f32, f32),
    /// `alpha`, `beta`.
    HardSigmoid(f32, f32),
    HardSwish,
    /// Per-channel slopes.
    PRelu(Vec<f32>),
    /// Softmax over runs of `group` values (`None`: the whole row).
    Softmax {
        group: Option<usize>,
        log: bool,
    },
    GlobalAvgPool {
        channels: usize,
    },
    /// `weight` is `[out_c, in_c / groups, kh, kw]`; `pads` top, left,
    /// bottom, right.
    Conv {
        weight: ArrayD<f32>,
        bias: Vec<f32>,
        stride: usize,
        pads: [usize; 4],
        dilation: usize,
        groups: usize,
    },
    Pool {
        max: bool,
        kernel: usize,
        stride: usize,
    },
    /// An ONNX `RNN`, `GRU` or `LSTM` (the model file's `rnn`, `gru`,
    /// `lstm`, whose tensors are ONNX's).
    Recurrent(recurrent::Recurrent),
    /// Element-wise sum of two computed tensors.
    Add,
    /// A computed tensor times another, or a per-channel gate.
    Mul,
    /// Computed tensors along the channel axis.
    Concat,
    /// A tree ensemble's tables (ONNX-ML's tree ops).
    Trees(Box<crate::import::trees::Tables>),
}

struct Lowering<'g> {
    opset: i64,
    values: HashMap<&'g str, Value>,
    /// Optional outputs nodes left uncomputed, and which node they belong to.
    unset: HashMap<&'g str, String>,
    ops: Vec<Op>,
    /// Per op: the kiln tensors it reads.
    wires: Vec<Vec<usize>>,
    /// Per kiln tensor: bumped by every fold into its op.
    generations: Vec<usize>,
    /// Per kiln tensor: the row shape the model file's `to_kernel` tracks
    /// for it (image layers need `[C, H, W]`).
    kiln_shapes: Vec<Vec<usize>>,
    /// The kiln tensor the last [`Lowering::act`] or op gave: what a unary
    /// op pushed next reads.
    reading: usize,
    /// How many needed nodes (and graph outputs) read each value name.
    uses: HashMap<&'g str, usize>,
    /// Whether every computed input of the current node has no other
    /// reader: only then may it fold into the op that made it.
    sole: bool,
    /// The input's batch size, when the graph fixes it.
    batch: Option<usize>,
    /// The model file's input shape (a reshape before any layer may give
    /// the image shape a convolution needs).
    input_dims: Vec<usize>,
    labels: Vec<String>,
    classifier: bool,
    /// `Pad` outputs: the padded act and its zeros (top, left, bottom,
    /// right), folded into the `Conv` that reads them.
    padded: HashMap<&'g str, (Act, [usize; 4], NodeRef)>,
    notes: &'g mut Vec<String>,
}

/// Lowers the `needed` nodes of `graph` into a model file computing `output`.
pub(super) fn lower(
    graph: &GraphProto,
    opset: i64,
    needed: &BTreeSet<usize>,
    output: &str,
    options: &Options,
    notes: &mut Vec<String>,
) -> Result<ModelFile, ImportError> {
    let mut values = HashMap::new();
    for init in &graph.initializer {
        values.insert(init.name.as_str(), Value::Const(tensor::decode(init)?));
    }
    let inputs: Vec<&proto::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !values.contains_key(i.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
        return Err(ImportError::Graph(format!(
            "the graph has {} inputs {names:?}; kiln models take exactly one",
            names.len()
        )));
    };
    let (batch, batch_axis, dims) = input_shape(input)?;
    values.insert(
        input.name.as_str(),
        Value::Act(Act {
            dims: dims.clone(),
            id: 0,
            generation: 0,
            batch_axis,
        }),
    );
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for &i in needed {
        for name in &graph.node[i].input {
            *uses.entry(name.as_str()).or_default() += 1;
        }
    }
    *uses.entry(output).or_default() += 1;

    let mut l = Lowering {
        opset,
        values,
        unset: HashMap::new(),
        ops: Vec::new(),
        wires: Vec::new(),
        generations: vec![0],
        kiln_shapes: vec![dims.clone()],
        reading: 0,
        uses,
        sole: true,
        batch,
        input_dims: dims,
        labels: Vec::new(),
        classifier: false,
        padded: HashMap::new(),
        notes,
    };
    for &i in needed {
        let node = &graph.node[i];
        let r = NodeRef {
            index: i,
            name: node.name.clone(),
            op: node.op_type.clone(),
        };
        l.node(&r, node)?;
    }
    if let Some((.., pad)) = l.padded.get(output) {
        return Err(
            pad.err("its output is the graph's; kiln folds a Pad only into the Conv that reads it")
        );
    }
    let out = match l.values.get(output) {
        Some(Value::Act(a)) if a.batch_axis != 0 => {
            return Err(ImportError::Graph(format!(
                "output `{output}` has its batch at axis {}; kiln's outputs are batch-first \
                 (transpose the batch to the front)",
                a.batch_axis
            )));
        }
        Some(Value::Act(a)) if a.generation == l.generations[a.id] && a.id == l.ops.len() => {
            a.clone()
        }
        Some(Value::Act(_)) => {
            return Err(ImportError::Graph(format!(
                "output `{output}` is an intermediate value that later layers overwrite"
            )));
        }
        Some(Value::Const(_)) => {
            return Err(ImportError::Graph(format!(
                "output `{output}` is a constant: it does not depend on the input"
            )));
        }
        None => {
            return Err(ImportError::Graph(format!(
                "no node produces output `{output}`"
            )));
        }
    };
    if let Some(info) = graph.output.iter().find(|o| o.name == output) {
        check_declared(info, &out)?;
    }
    if l.labels.is_empty() {
        l.labels = class_labels(graph, output, &l.values);
    }
    l.finish(input.name.clone(), options)
}

impl<'g> Lowering<'g> {
    fn value(&self, node: &NodeRef, name: &str) -> Result<&Value, ImportError> {
        self.values.get(name).ok_or_else(|| match self.unset.get(name) {
            Some(by) => node.err(format!(
                "reads `{name}`, {by}, which kiln does not compute"
            )),
            None => node.err(format!(
                "reads `{name}`, which no earlier node produces (is the graph topologically sorted?)"
            )),
        })
    }

    /// Input `i` of `n`, if present and non-empty.
    fn input(&self, r: &NodeRef, n: &NodeProto, i: usize) -> Result<Option<&Value>, ImportError> {
        match n.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self.value(r, name).map(Some),
        }
    }

    fn need(&self, r: &NodeRef, n: &NodeProto, i: usize) -> Result<&Value, ImportError> {
        self.input(r, n, i)?
            .ok_or_else(|| r.err(format!("input {i} is missing")))
    }

    /// Computed input `i`, batch-first, checking it is not stale; unary
    /// ops pushed next read it.
    fn act(&mut self, r: &NodeRef, n: &NodeProto, i: usize) -> Result<Act, ImportError> {
        let a = self.any_act(r, n, i)?;
        if a.batch_axis != 0 {
            return Err(r.err(format!(
                "reads `{}`, whose batch is at axis {} (a recurrent op's time-major tensor); \
                 kiln runs this op on batch-first tensors only (transpose the batch to the front)",
                n.input[i], a.batch_axis
            )));
        }
        Ok(a)
    }

    /// [`Lowering::act`] wherever its batch axis is (recurrent and shape
    /// ops).
    fn any_act(&mut self, r: &NodeRef, n: &NodeProto, i: usize) -> Result<Act, ImportError> {
        match self.need(r, n, i)? {
            Value::Act(a) if a.generation == self.generations[a.id] => {
                let a = a.clone();
                self.reading = a.id;
                Ok(a)
            }
            Value::Act(_) => Err(r.err(format!(
                "reads `{}`, the value before a batch normalization or bias that kiln folded \
                 into the layer making it; kiln cannot also keep the unfolded value",
                n.input[i]
            ))),
            Value::Const(_) => Err(r.err(format!(
                "input `{}` is a constant where kiln expects the computed tensor",
                n.input[i]
            ))),
        }
    }

    fn const_f32(&self, r: &NodeRef, n: &NodeProto, i: usize) -> Result<ArrayD<f32>, ImportError> {
        match self.need(r, n, i)? {
            Value::Const(Const::F32(a)) => Ok(a.clone()),
            Value::Const(c) => Err(r.err(format!(
                "input `{}` has type {}, expected FLOAT",
                n.input[i],
                c.dtype()
            ))),
            Value::Act(_) => Err(r.err(format!(
                "input `{}` must be a constant (an initializer); kiln cannot use a computed value here",
                n.input[i]
            ))),
        }
    }

    fn const_i64(&self, r: &NodeRef, n: &NodeProto, i: usize) -> Result<ArrayD<i64>, ImportError> {
        match self.need(r, n, i)? {
            Value::Const(Const::I64(a)) => Ok(a.clone()),
            _ => Err(r.err(format!(
                "input `{}` must be a constant INT64 tensor",
                n.input[i]
            ))),
        }
    }

    fn set(&mut self, n: &'g NodeProto, i: usize, v: Value) {
        if let Some(name) = n.output.get(i).filter(|s| !s.is_empty()) {
            self.values.insert(name.as_str(), v);
        }
    }

    /// Appends unary `op` reading the last act read; returns the new act
    /// with `dims`.
    fn push(&mut self, op: Op, dims: Vec<usize>) -> Value {
        let input = self.reading;
        let kiln_shape = match op {
            Op::Dense { .. } | Op::GlobalAvgPool { .. } | Op::Trees(_) => {
                vec![dims.iter().product()]
            }
            Op::Conv { .. } | Op::Pool { .. } => dims.clone(),
            _ => self.kiln_shapes[input].clone(),
        };
        self.push_reading(op, vec![input], dims, kiln_shape)
    }

    /// Appends `op` reading kiln tensors `inputs`; returns the new act.
    fn push_reading(
        &mut self,
        op: Op,
        inputs: Vec<usize>,
        dims: Vec<usize>,
        kiln_shape: Vec<usize>,
    ) -> Value {
        self.ops.push(op);
        self.wires.push(inputs);
        self.generations.push(0);
        self.kiln_shapes.push(kiln_shape);
        let id = self.ops.len();
        self.reading = id;
        Value::Act(Act {
            dims,
            id,
            generation: 0,
            batch_axis: 0,
        })
    }

    /// The last op, if `act` is its (current) output and the current node
    /// its only reader — the one layer a node may fold into.
    fn foldable(&mut self, act: &Act) -> Option<&mut Op> {
        let last = act.id == self.ops.len() && act.id > 0;
        if last && self.sole && act.generation == self.generations[act.id] {
            self.ops.last_mut()
        } else {
            None
        }
    }

    /// Marks a fold into the last op: earlier names for its output go stale.
    fn folded(&mut self, dims: Vec<usize>) -> Value {
        let id = self.ops.len();
        self.generations[id] += 1;
        self.reading = id;
        Value::Act(Act {
            dims,
            id,
            generation: self.generations[id],
            batch_axis: 0,
        })
    }
}

/// Whether node `n` carries attribute `name`.
fn a_has(n: &NodeProto, name: &str) -> bool {
    n.attribute.iter().any(|a| a.name == name)
}

/// `v` expanded to rows of `dims` (per-row shape), numpy-broadcast: `shape`
/// is right-aligned against `[batch] + dims` and must not vary along the
/// batch or enlarge the row.
fn broadcast_row(
    r: &NodeRef,
    c: &ArrayD<f32>,
    dims: &[usize],
    legacy_axis: Option<usize>,
) -> Result<Vec<f32>, ImportError> {
    let full_rank = dims.len() + 1;
    let mut shape = c.shape().to_vec();
    if let Some(axis) = legacy_axis {
        // Opset < 7 broadcasting: `shape` is aligned at `axis`.
        if axis + shape.len() > full_rank {
            return Err(r.err(format!(
                "constant of shape {shape:?} cannot broadcast at axis {axis}"
            )));
        }
        shape.resize(full_rank - axis, 1);
    }
    if shape.len() > full_rank {
        return Err(r.err(format!(
            "constant of shape {shape:?} has more dimensions than the input [N, {dims:?}]"
        )));
    }
    if shape.len() == full_rank {
        if shape[0] != 1 {
            return Err(r.err(format!(
                "constant of shape {shape:?} varies along the batch dimension"
            )));
        }
        shape.remove(0);
    }
    let c = c
        .view()
        .into_shape_with_order(IxDyn(&shape))
        .map_err(|e| r.err(e.to_string()))?;
    let expanded = c.broadcast(IxDyn(dims)).ok_or_else(|| {
        r.err(format!(
            "constant of shape {:?} does not broadcast to rows of shape {dims:?} (or would enlarge them)",
            c.shape()
        ))
    })?;
    Ok(expanded.iter().copied().collect())
}

/// The fewest channels that represent the per-element `scale` and `shift`
/// of rows shaped `dims`: one, the leading dimension, or every element.
fn compress(scale: Vec<f32>, shift: Vec<f32>, dims: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let width = scale.len();
    if width == 0 {
        return (scale, shift);
    }
    let uniform = |v: &[f32], inner: usize| {
        v.chunks(inner.max(1))
            .all(|ch| ch.iter().all(|x| x.to_bits() == ch[0].to_bits()))
    };
    if uniform(&scale, width) && uniform(&shift, width) {
        return (vec![scale[0]], vec![shift[0]]);
    }
    if let Some(&c) = dims.first()
        && c > 0
        && width.is_multiple_of(c)
    {
        let inner = width / c;
        if inner > 1 && uniform(&scale, inner) && uniform(&shift, inner) {
            let pick = |v: &[f32]| v.iter().step_by(inner).copied().collect();
            return (pick(&scale), pick(&shift));
        }
    }
    (scale, shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeRef {
        NodeRef {
            index: 0,
            name: "n".into(),
            op: "Add".into(),
        }
    }

    fn arr(shape: &[usize], v: Vec<f32>) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }

    #[test]
    fn broadcasts_constants_to_the_row() {
        let r = node();
        // Per channel of a [2, 3] row: [2, 1] and [1, 2, 1] both work.
        let c = arr(&[2, 1], vec![1.0, 2.0]);
        assert_eq!(
            broadcast_row(&r, &c, &[2, 3], None).unwrap(),
            [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
        let c = arr(&[1, 2, 1], vec![1.0, 2.0]);
        assert_eq!(broadcast_row(&r, &c, &[2, 3], None).unwrap().len(), 6);
        // Legacy (opset < 7) alignment at axis 1.
        let c = arr(&[2], vec![1.0, 2.0]);
        assert_eq!(
            broadcast_row(&r, &c, &[2, 3], Some(1)).unwrap(),
            [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
        // Varying along the batch, enlarging the row, or mismatching: refused.
        let c = arr(&[4, 3], vec![0.0; 12]);
        assert!(broadcast_row(&r, &c, &[3], None).is_err());
        let c = arr(&[5], vec![0.0; 5]);
        assert!(broadcast_row(&r, &c, &[1], None).is_err());
        let c = arr(&[2], vec![0.0; 2]);
        assert!(broadcast_row(&r, &c, &[2, 3], None).is_err());
    }

    #[test]
    fn compresses_to_the_fewest_channels() {
        let (s, t) = compress(vec![2.0; 6], vec![1.0; 6], &[2, 3]);
        assert_eq!((s.len(), t.len()), (1, 1));
        let (s, t) = compress(
            vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0],
            vec![0.0, 0.0, 0.0, 5.0, 5.0, 5.0],
            &[2, 3],
        );
        assert_eq!((s, t), (vec![1.0, 2.0], vec![0.0, 5.0]));
        let (s, _) = compress(vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0], vec![0.0; 6], &[2, 3]);
        assert_eq!(s.len(), 6);
    }
}
