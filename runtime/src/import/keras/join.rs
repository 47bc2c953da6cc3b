//! The layers that join tensors — `Add`, `Multiply` and `Concatenate` —
//! onto kiln's `add`, `mul` (element-wise, or a squeeze-and-excitation
//! gate: `[h, w, c]` times `[1, 1, c]`) and `concat` (channels); and the
//! Keras 3 operations a functional model records for arithmetic on
//! tensors (`x + 3.0`, `x * (1 / 6)`, `x + y`): a number makes an affine
//! map (folded like a batch normalization), a second tensor a join.

use super::KerasError;
use super::state::{Lowering, Op, Order, Val};
use crate::model::LayerSpec;

/// The layer classes [`Lowering::join`] lowers.
pub(super) const JOINS: &[&str] = &["Add", "Multiply", "Concatenate"];

/// Keras's other merge layers, refused by name (before their inputs are
/// counted).
pub(super) const REFUSED: &[&str] = &["Subtract", "Average", "Maximum", "Minimum", "Dot"];

impl Lowering<'_> {
    /// `Add` or `Multiply` of two or more tensors, or `Concatenate`.
    pub(super) fn join(&mut self, inputs: Vec<Val>) -> Result<(), KerasError> {
        if inputs.len() < 2 {
            return Err(self.err(format!(
                "it reads {} tensor; a join needs two or more",
                inputs.len()
            )));
        }
        if inputs.iter().any(|v| v.pads != [0; 4]) {
            return Err(self.err(
                "it reads a ZeroPadding2D's output; kiln folds zero padding only into the \
                 convolution that reads it",
            ));
        }
        if self.layer.class == "Concatenate" {
            return self.concat(inputs);
        }
        let spec = match self.layer.class.as_str() {
            "Add" => LayerSpec::Add,
            _ => LayerSpec::Mul,
        };
        let mut it = inputs.into_iter();
        let mut acc = it.next().unwrap_or_else(|| unreachable!("two or more"));
        for next in it {
            acc = self.binary(spec.clone(), acc, next)?;
        }
        self.load(acc);
        Ok(())
    }

    /// `x op y` for kiln's `add` or `mul`: tensors of one shape, or (`mul`)
    /// an image and a per-channel gate, in either order.
    fn binary(&mut self, spec: LayerSpec, x: Val, y: Val) -> Result<Val, KerasError> {
        let same = x.keras == y.keras && x.order == y.order && x.kiln == y.kiln;
        // A `[1, 1, c]` (or `[c]`) gate for an image of c channels.
        let gate = |g: &Val, x: &Val| {
            let c = x.keras.last();
            x.keras.len() == 3
                && matches!(x.order, Order::Planes { .. })
                && (g.keras.iter().rev().skip(1).all(|&d| d == 1) && g.keras.last() == c)
                && g.kiln.iter().product::<usize>() == *c.unwrap_or(&0)
        };
        let (x, y) = match spec {
            _ if same => (x, y),
            LayerSpec::Mul if gate(&y, &x) => (x, y),
            LayerSpec::Mul if gate(&x, &y) => (y, x),
            _ => {
                return Err(self.err(format!(
                    "inputs of shapes {:?} and {:?}: kiln {} tensors of one shape{}",
                    x.keras,
                    y.keras,
                    if spec == LayerSpec::Add {
                        "adds"
                    } else {
                        "multiplies"
                    },
                    if spec == LayerSpec::Mul {
                        ", or an image by a [1, 1, channels] gate"
                    } else {
                        ""
                    }
                )));
            }
        };
        self.load(x.clone());
        self.push_reading(Op::Plain(spec), vec![x.id, y.id]);
        Ok(self.val())
    }

    /// `Concatenate` along the last axis: of vectors (each held in
    /// Keras's order), or of images of one height and width (channel
    /// planes). A part whose kiln tensor has another shape is reshaped.
    fn concat(&mut self, inputs: Vec<Val>) -> Result<(), KerasError> {
        let first = &inputs[0];
        let rank = first.keras.len();
        let axis = self
            .layer
            .config
            .get("axis")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(-1);
        if axis != -1 && axis != rank as i64 {
            return Err(self.err(format!(
                "`axis` = {axis}: kiln concatenates the last (channels) axis only"
            )));
        }
        // Vectors in Keras's order, or images as planes of one size.
        let plain = |v: &Val| match v.order {
            Order::Plain => true,
            Order::Planes { h, w, c } => h * w == 1 || c == 1,
        };
        let hw = |v: &Val| match v.order {
            Order::Planes { h, w, .. } if v.keras.len() == 3 => Some([h, w]),
            _ => None,
        };
        let fits = |v: &Val| match rank {
            1 => v.keras.len() == 1 && plain(v),
            3 => hw(v).is_some() && hw(v) == hw(first) && v.keras[..2] == first.keras[..2],
            _ => false,
        };
        if !inputs.iter().all(fits) {
            let shapes: Vec<&Vec<usize>> = inputs.iter().map(|v| &v.keras).collect();
            return Err(self.err(format!(
                "inputs of shapes {shapes:?}: kiln concatenates vectors, or images of one \
                 height and width, along their channels"
            )));
        }
        let mut ids = Vec::with_capacity(inputs.len());
        let mut channels = 0;
        for v in &inputs {
            let c = v.keras[rank - 1];
            let want = match hw(v) {
                Some([h, w]) if rank == 3 => vec![c, h, w],
                _ => vec![c],
            };
            if v.kiln != want {
                self.load(v.clone());
                self.push(Op::Reshape(want));
            } else {
                self.load(v.clone());
            }
            ids.push(self.id);
            channels += c;
        }
        self.load(first.clone());
        self.push_reading(Op::Plain(LayerSpec::Concat), ids);
        self.keras[rank - 1] = channels;
        (self.kiln, self.order) = match hw(first) {
            Some([h, w]) if rank == 3 => {
                (vec![channels, h, w], Order::Planes { h, w, c: channels })
            }
            _ => (vec![channels], Order::Plain),
        };
        Ok(())
    }

    /// A Keras 3 operation node: arithmetic with a number (an affine map)
    /// or between two tensors (a join).
    pub(super) fn operation(&mut self, inputs: Vec<Val>) -> Result<(), KerasError> {
        let class = self.layer.class.as_str();
        let scalars = self.layer.scalars.clone();
        match (inputs.as_slice(), scalars.as_slice()) {
            ([_, _], []) if matches!(class, "Add" | "Multiply") => self.join(inputs),
            ([x], [(at, k)]) => {
                if x.pads != [0; 4] {
                    return Err(self.err("it reads a ZeroPadding2D's output"));
                }
                let k = *k as f32;
                let tensor_first = *at > 0;
                let (scale, shift) = match class {
                    "Add" => (1.0, k),
                    "Multiply" => (k, 0.0),
                    "Subtract" if tensor_first => (1.0, -k),
                    "Subtract" => (-1.0, k),
                    "TrueDivide" | "Divide" if tensor_first && k != 0.0 => (1.0 / k, 0.0),
                    _ => {
                        return Err(self.err(
                            "kiln imports the operations x + k, x − k, k − x, x · k and x / k \
                             (k a non-zero number for /) and x + y, x · y",
                        ));
                    }
                };
                if !(scale.is_finite() && shift.is_finite()) {
                    return Err(self.err(format!("the number {k} is not finite")));
                }
                self.load(x.clone());
                self.affine(&[scale], &[shift])
            }
            _ => Err(self.err(format!(
                "an operation on {} tensors and {} numbers; kiln imports the operations \
                 x + k, x − k, k − x, x · k, x / k, x + y and x · y",
                inputs.len(),
                scalars.len()
            ))),
        }
    }
}
