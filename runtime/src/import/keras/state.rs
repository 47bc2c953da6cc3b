//! The state of a Keras lowering: the values the layers pass on ([`Val`],
//! in Keras's order or as channel planes, [`Order`]), the kiln ops under
//! construction ([`Op`]), and [`Lowering`] with the config accessors every
//! layer uses. The layers themselves are in `lower.rs` and its siblings.

use std::collections::HashMap;

use ndarray::Array2;
use serde_json::Value;

use super::config::KLayer;
use super::{KerasError, recurrent};
use crate::model::LayerSpec;

/// How kiln holds a value relative to Keras's row-major order of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// The same order.
    Plain,
    /// The `[h, w, c]` image Keras holds channels-last, held as `c` planes
    /// of `h × w` (and still so after a Keras `Flatten` or `Reshape`).
    Planes { h: usize, w: usize, c: usize },
}

/// A kiln layer under construction.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// `weight` is `[outputs, inputs]`.
    Dense {
        weight: Array2<f32>,
        bias: Vec<f32>,
    },
    /// `weight` is `[out_c, in_c / groups, kh, kw]` (flattened); `pads`
    /// top, left, bottom, right.
    Conv {
        weight: Vec<f32>,
        shape: [usize; 4],
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
    GlobalAvgPool {
        channels: usize,
    },
    ScaleShift {
        scale: Vec<f32>,
        shift: Vec<f32>,
    },
    /// The same values with a new kiln shape.
    Reshape(Vec<usize>),
    /// `rnn`, `gru` or `lstm`.
    Recurrent(Box<recurrent::Recurrent>),
    /// A layer without tensors (activations, and the joins `add`, `mul`,
    /// `concat`).
    Plain(LayerSpec),
}

/// A Keras tensor as kiln holds it.
#[derive(Debug, Clone)]
pub(super) struct Val {
    /// The kiln tensor: 0 the input, `k + 1` op `k`'s output.
    pub(super) id: usize,
    /// The Keras per-row shape.
    pub(super) keras: Vec<usize>,
    pub(super) order: Order,
    /// The shape kiln's `to_kernel` tracks (`[C, H, W]` for images).
    pub(super) kiln: Vec<usize>,
    /// Zeros a `ZeroPadding2D` adds (top, left, bottom, right), not yet
    /// applied: the convolution that reads this value takes them as its
    /// padding. `keras` includes them, `order` and `kiln` do not.
    pub(super) pads: [usize; 4],
    /// Only element-wise ops since the input: its kiln shape may still
    /// become an image's.
    pub(super) elementwise: bool,
    /// No other layer reads the kiln tensor: an affine layer may fold
    /// into the dense or convolution op that writes it.
    pub(super) sole: bool,
}

/// The lowering's state: the current layer and value, and the ops so far.
pub(super) struct Lowering<'a> {
    pub(super) layer: &'a KLayer,
    /// The Keras per-row shape of the current value.
    pub(super) keras: Vec<usize>,
    pub(super) order: Order,
    /// The shape kiln's `to_kernel` tracks (`[C, H, W]` for images).
    pub(super) kiln: Vec<usize>,
    /// The current value's kiln tensor, [`Val::pads`], [`Val::elementwise`]
    /// and [`Val::sole`].
    pub(super) id: usize,
    pub(super) pads: [usize; 4],
    pub(super) elementwise: bool,
    pub(super) sole: bool,
    pub(super) input_dims: Vec<usize>,
    pub(super) ops: Vec<Op>,
    /// Per op: the kiln tensors it reads.
    pub(super) wires: Vec<Vec<usize>>,
    /// Every Keras tensor so far, by the name of the layer making it.
    pub(super) values: HashMap<String, Val>,
    /// How many layers read each Keras tensor.
    pub(super) uses: HashMap<String, usize>,
}

impl Lowering<'_> {
    pub(super) fn err(&self, problem: impl Into<String>) -> KerasError {
        KerasError::Layer {
            layer: self.layer.name.clone(),
            class: self.layer.class.clone(),
            problem: problem.into(),
        }
    }

    pub(super) fn width(&self) -> usize {
        self.keras.iter().product()
    }

    /// For each kiln position, the Keras row-major position it holds.
    pub(super) fn keras_index(&self) -> Vec<usize> {
        match self.order {
            Order::Plain => (0..self.width()).collect(),
            Order::Planes { h, w, c } => (0..c)
                .flat_map(|ci| (0..h * w).map(move |p| p * c + ci))
                .collect(),
        }
    }

    /// Appends `op` reading the current value, which becomes its output.
    pub(super) fn push(&mut self, op: Op) {
        self.push_reading(op, vec![self.id]);
    }

    /// Appends `op` reading kiln tensors `inputs`; its output becomes the
    /// current value's tensor.
    pub(super) fn push_reading(&mut self, op: Op, inputs: Vec<usize>) {
        if !matches!(op, Op::ScaleShift { .. } | Op::Plain(_)) || inputs.len() > 1 {
            self.elementwise = false;
        }
        if let Op::Reshape(shape) = &op {
            self.kiln = shape.clone();
        }
        self.ops.push(op);
        self.wires.push(inputs);
        self.id = self.ops.len();
        self.sole = true;
    }

    /// The dense or convolution op writing the current value, when an
    /// affine map may fold into it (nothing else reads its output).
    pub(super) fn fold_target(&mut self) -> Option<&mut Op> {
        if !self.sole || self.id == 0 || self.pads != [0; 4] {
            return None;
        }
        self.ops
            .get_mut(self.id - 1)
            .filter(|op| matches!(op, Op::Dense { .. } | Op::Conv { .. }))
    }

    /// The current value.
    pub(super) fn val(&self) -> Val {
        Val {
            id: self.id,
            keras: self.keras.clone(),
            order: self.order,
            kiln: self.kiln.clone(),
            pads: self.pads,
            elementwise: self.elementwise,
            sole: self.sole,
        }
    }

    /// Makes `v` the current value.
    pub(super) fn load(&mut self, v: Val) {
        self.id = v.id;
        self.keras = v.keras;
        self.order = v.order;
        self.kiln = v.kiln;
        self.pads = v.pads;
        self.elementwise = v.elementwise;
        self.sole = v.sole;
    }

    /// The Keras tensors the current layer reads.
    pub(super) fn inputs(&self) -> Result<Vec<Val>, KerasError> {
        self.layer
            .reads
            .iter()
            .map(|name| {
                let mut v = self.values.get(name).cloned().ok_or_else(|| {
                    self.err(format!("it reads `{name}`, which no earlier layer makes"))
                })?;
                v.sole = v.sole && self.uses.get(name).copied().unwrap_or(0) <= 1;
                Ok(v)
            })
            .collect()
    }

    /// A config field, or the error naming it.
    pub(super) fn field(&self, name: &str) -> Result<&Value, KerasError> {
        self.layer
            .config
            .get(name)
            .ok_or_else(|| self.err(format!("its config has no `{name}`")))
    }

    pub(super) fn usize_field(&self, name: &str) -> Result<usize, KerasError> {
        let v = self.field(name)?;
        v.as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| self.err(format!("`{name}` = {v} is not a positive integer")))
    }

    pub(super) fn f32_field(&self, name: &str, default: f32) -> Result<f32, KerasError> {
        match self.layer.config.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .map(|v| v as f32)
                .filter(|v| v.is_finite())
                .ok_or_else(|| self.err(format!("`{name}` = {v} is not a number"))),
        }
    }

    pub(super) fn bool_field(&self, name: &str, default: bool) -> Result<bool, KerasError> {
        match self.layer.config.get(name) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.err(format!("`{name}` = {v} is not true or false"))),
        }
    }

    /// Refuses any value of config field `name` but the ones in `allowed`
    /// (an absent or null field passes).
    pub(super) fn only(&self, name: &str, allowed: &[Value]) -> Result<(), KerasError> {
        match self.layer.config.get(name) {
            None | Some(Value::Null) => Ok(()),
            Some(v) if allowed.contains(v) => Ok(()),
            Some(v) => Err(self.err(format!("`{name}` = {v} is not supported"))),
        }
    }
}
