//! The recurrent layers of a model file (`rnn`, `gru`, `lstm`) → the
//! guest's [`Layer::Recurrent`]: their tensors checked against `hidden`,
//! the direction count and the `[T, F]` tensor they read, which is the
//! model's input or a previous recurrent layer's `sequence` output (through
//! any layers that keep the shape).

use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::layer_tensors::LayerTensors;
use super::{ConvertError, Direction, LayerSpec};
use crate::{Cell, Layer, ModelError, RecurrentGeom};

/// The fields the three recurrent ops share: `hidden`, the names of `w`,
/// `r` and `b`, those of the int8 scales `w_scale` and `r_scale`,
/// `direction`, `sequence`.
pub(super) type Fields<'s> = (usize, [&'s str; 3], [Option<&'s str>; 2], Direction, bool);

/// The cell of a recurrent op (`rnn` for any other op).
fn cell(spec: &LayerSpec) -> Cell {
    match spec {
        LayerSpec::Gru {
            linear_before_reset,
            ..
        } => Cell::Gru {
            linear_before_reset: *linear_before_reset,
        },
        LayerSpec::Lstm { .. } => Cell::Lstm,
        _ => Cell::Rnn,
    }
}

impl LayerSpec {
    /// The model-file layer of a recurrent `cell` with f32 tensors `w`,
    /// `r`, `b`.
    pub fn recurrent(
        cell: Cell,
        hidden: usize,
        [w, r, b]: [String; 3],
        direction: Direction,
        sequence: bool,
    ) -> LayerSpec {
        let (w_scale, r_scale) = (None, None);
        match cell {
            Cell::Rnn => LayerSpec::Rnn {
                hidden,
                w,
                r,
                b,
                direction,
                sequence,
                w_scale,
                r_scale,
            },
            Cell::Gru {
                linear_before_reset,
            } => LayerSpec::Gru {
                hidden,
                w,
                r,
                b,
                direction,
                sequence,
                linear_before_reset,
                w_scale,
                r_scale,
            },
            Cell::Lstm => LayerSpec::Lstm {
                hidden,
                w,
                r,
                b,
                direction,
                sequence,
                w_scale,
                r_scale,
            },
        }
    }

    /// A recurrent layer's tensor names `[w, r, b]` and its int8 scales'
    /// `[w_scale, r_scale]`; `None` for any other op.
    pub fn recurrent_tensors(&self) -> Option<([&str; 3], [Option<&str>; 2])> {
        match self {
            LayerSpec::Rnn {
                w,
                r,
                b,
                w_scale,
                r_scale,
                ..
            }
            | LayerSpec::Gru {
                w,
                r,
                b,
                w_scale,
                r_scale,
                ..
            }
            | LayerSpec::Lstm {
                w,
                r,
                b,
                w_scale,
                r_scale,
                ..
            } => Some((
                [w, r, b].map(String::as_str),
                [w_scale, r_scale].map(Option::as_deref),
            )),
            _ => None,
        }
    }

    /// This layer, if recurrent, with int8 weights scaled by the tensors
    /// `w_scale` and `r_scale` (any other layer as is).
    pub fn with_scales(mut self, ws: String, rs: String) -> LayerSpec {
        if let LayerSpec::Rnn {
            w_scale, r_scale, ..
        }
        | LayerSpec::Gru {
            w_scale, r_scale, ..
        }
        | LayerSpec::Lstm {
            w_scale, r_scale, ..
        } = &mut self
        {
            (*w_scale, *r_scale) = (Some(ws), Some(rs));
        }
        self
    }
}

/// Recurrent layer `at.layer` (`spec`, with its `fields`) reading a tensor
/// of shape `shape`: the kernel's layer and the shape it writes (`[T, D·H]`
/// with `sequence`, else `[D·H]`).
pub(super) fn layer(
    at: &LayerTensors<'_>,
    spec: &LayerSpec,
    (hidden, [w, r, b], scales, direction, sequence): Fields<'_>,
    shape: &[usize],
) -> Result<(Layer<'static>, Vec<usize>), ConvertError> {
    let cell = cell(spec);
    let (index, op) = (at.layer, at.op);
    // A build without the family refuses the layer before any check, so
    // none of them is compiled into it (the browser package's, web/pkg).
    crate::model::family::rnn(index, cell.name())?;
    let &[steps, features] = shape else {
        return Err(ConvertError::NotSequence {
            layer: index,
            op,
            found: shape.into(),
        });
    };
    if hidden == 0 {
        let param = "hidden";
        return Err(ModelError::BadParam {
            layer: index,
            param,
        }
        .into());
    }
    let too_large = ModelError::TooLarge { layer: index };
    let d = match direction {
        Direction::Forward => 1,
        Direction::Bidirectional => 2,
    };
    let gh = cell.gates().checked_mul(hidden).ok_or(too_large.clone())?;
    let two_gh = gh.checked_mul(2).ok_or(too_large)?;
    let g = cell.gates();
    // Tensor `name`, if its shape is `want`, which the error spells
    // `[D, k·hidden{last}]` (formatted only on error).
    let shaped = |name: &str, want: &[usize], k: usize, last: &str| {
        let t = at.get(name)?;
        if t.shape != want {
            let expected = format!("{want:?} ([D, {k}·hidden{last}])");
            return Err(at.shape_err(name, &t.shape, expected));
        }
        Ok(t)
    };
    let b = at.f32s(b, shaped(b, &[d, two_gh], 2 * g, "")?)?;
    let w_shaped = || shaped(w, &[d, gh, features], g, ", features");
    let r_shaped = || shaped(r, &[d, gh, hidden], g, ", hidden");
    let geom = RecurrentGeom {
        cell,
        steps,
        features,
        hidden,
        bidirectional: d == 2,
        sequence,
    };
    let layer = match scales {
        [None, None] => {
            let w = at.f32s(w, w_shaped()?)?;
            let r = at.f32s(r, r_shaped()?)?;
            Layer::recurrent(index, geom, w, r, b.to_vec().into())?
        }
        [Some(ws), Some(rs)] => {
            crate::model::family::int8_rnn(index, cell.name())?;
            let w = at.i8s(w, w_shaped()?)?;
            let r = at.i8s(r, r_shaped()?)?;
            let scale = |name: &str| at.f32s(name, shaped(name, &[d, gh], g, "")?);
            let scales = [scale(ws)?, scale(rs)?];
            Layer::recurrent_int8(index, geom, [w, r], scales, b.to_vec().into())?
        }
        _ => {
            return Err(at.quant_err("`w_scale` and `r_scale` go together".into()));
        }
    };
    let state = d * hidden;
    let shape = if sequence {
        vec![steps, state]
    } else {
        vec![state]
    };
    Ok((layer, shape))
}

#[cfg(all(test, feature = "rnn"))]
mod tests {
    use std::collections::BTreeMap;
    use std::string::String;

    use super::super::{Graph, InputSpec, Task, Tensor, to_kernel};
    use super::*;

    fn gru(name: &str, hidden: usize, direction: Direction, sequence: bool) -> LayerSpec {
        let cell = Cell::Gru {
            linear_before_reset: false,
        };
        let names = ["w", "r", "b"].map(|t| format!("{name}.{t}"));
        LayerSpec::recurrent(cell, hidden, names, direction, sequence)
    }

    /// GRU tensors called `name` for `d` directions of `h` over `f`.
    fn put(t: &mut BTreeMap<String, Tensor>, name: &str, d: usize, h: usize, f: usize) {
        let v = |n: usize| (0..n).map(|k| (k as f32 * 0.37).sin() * 0.5).collect();
        let g = 3 * h;
        t.insert(
            format!("{name}.w"),
            Tensor::new(vec![d, g, f], v(d * g * f)),
        );
        t.insert(
            format!("{name}.r"),
            Tensor::new(vec![d, g, h], v(d * g * h)),
        );
        t.insert(
            format!("{name}.b"),
            Tensor::new(vec![d, 2 * g], v(d * 2 * g)),
        );
    }

    fn graph(shape: Vec<usize>, layers: Vec<LayerSpec>) -> Graph {
        Graph {
            format: super::super::FORMAT_VERSION,
            name: "g".into(),
            version: "1".into(),
            task: Task::Regression,
            input: InputSpec {
                name: "x".into(),
                shape,
                features: vec![],
            },
            target: None,
            labels: vec![],
            layers,
            wiring: vec![],
        }
    }

    /// A bidirectional sequence layer feeds a forward one through a
    /// shape-keeping activation; the shapes flow as the schema says.
    #[test]
    fn stacked_layers_convert() {
        let mut t = BTreeMap::new();
        put(&mut t, "a", 2, 4, 3);
        put(&mut t, "b", 1, 5, 8);
        let layers = vec![
            gru("a", 4, Direction::Bidirectional, true),
            LayerSpec::Tanh,
            gru("b", 5, Direction::Forward, false),
        ];
        let m = to_kernel(&graph(vec![6, 3], layers), &t).unwrap();
        assert_eq!((m.input_len(), m.output_len()), (18, 5));
        assert_eq!(m.layers()[1].input_len(), 6 * 8);
    }

    /// Every way the layers can be wrong names the layer, and the tensor.
    #[test]
    fn errors_name_the_layer() {
        let mut t = BTreeMap::new();
        put(&mut t, "a", 1, 4, 3);
        put(&mut t, "b", 1, 5, 4);
        let convert = |shape: Vec<usize>, layers| to_kernel(&graph(shape, layers), &t).unwrap_err();
        let fwd = |n, h, seq| gru(n, h, Direction::Forward, seq);
        // A 1-D input, and a second layer after a final-state one.
        assert!(matches!(
            convert(vec![18], vec![fwd("a", 4, false)]),
            ConvertError::NotSequence {
                layer: 0,
                op: "gru",
                ..
            }
        ));
        let err = convert(vec![6, 3], vec![fwd("a", 4, false), fwd("b", 5, false)]);
        assert!(
            matches!(err, ConvertError::NotSequence { layer: 1, .. }),
            "{err}"
        );
        // Tensors against F, hidden and the direction count.
        let err = convert(vec![6, 2], vec![fwd("a", 4, false)]);
        let ConvertError::TensorShape {
            layer: 0, tensor, ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(tensor, "a.w");
        let err = convert(vec![6, 3], vec![fwd("a", 3, false)]);
        assert!(
            matches!(err, ConvertError::TensorShape { layer: 0, .. }),
            "{err}"
        );
        let bi = gru("a", 4, Direction::Bidirectional, false);
        assert!(matches!(
            convert(vec![6, 3], vec![bi]),
            ConvertError::TensorShape { layer: 0, .. }
        ));
        assert!(matches!(
            convert(vec![6, 3], vec![fwd("a", 0, false)]),
            ConvertError::Graph(ModelError::BadParam {
                layer: 0,
                param: "hidden"
            })
        ));
        let missing = gru("z", 4, Direction::Forward, false);
        assert!(matches!(
            convert(vec![6, 3], vec![missing]),
            ConvertError::MissingTensor { layer: 0, .. }
        ));
    }
}
