//! The recurrent model family: the `--model` syntax (`gru:32`,
//! `lstm:32:seq:bi,lstm:32,d64`; docs/training.md), the [`Network`] layers it
//! builds on rows of `[T, F]`, and the graph layer each recurrent layer
//! becomes in the model file.

use std::collections::BTreeMap;

use rand::Rng;

use super::layers::{Activation, Layer};
use super::models::ShapeError;
use super::recurrent::{Cell, Recurrent};
use crate::model::{Direction, LayerSpec, Tensor};

/// Recurrent layers, then hidden dense layers (the output layer is added
/// by the model builder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrentModel {
    pub layers: Vec<RecurrentToken>,
    pub dense: Vec<usize>,
}

/// One `rnn:H`, `gru:H` or `lstm:H` token and its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrentToken {
    pub cell: Cell,
    pub hidden: usize,
    /// `:bi`.
    pub bidirectional: bool,
    /// `:seq`: every step's state, not only the last.
    pub sequence: bool,
}

pub const RECURRENT_SPEC_HELP: &str = "rnn:H, gru:H or lstm:H (H = state size) with options \
     :seq (output every step; needed by every recurrent layer but the last), :bi \
     (bidirectional), :orig (GRU only: the original formulation, not linear-before-reset), \
     then dense layers dN; e.g. lstm:32:seq:bi,lstm:32,d64";

/// Whether `s` is a recurrent model (starts with a recurrent token).
pub(super) fn is_recurrent(s: &str) -> bool {
    ["rnn:", "gru:", "lstm:"].iter().any(|p| s.starts_with(p))
}

/// Parses a comma-separated recurrent model (see [`RECURRENT_SPEC_HELP`]).
pub(super) fn parse(s: &str) -> Result<RecurrentModel, String> {
    let mut model = RecurrentModel {
        layers: Vec::new(),
        dense: Vec::new(),
    };
    let tokens: Vec<&str> = s.split(',').map(str::trim).collect();
    for (i, &t) in tokens.iter().enumerate() {
        if let Some(n) = t.strip_prefix('d') {
            match n.parse::<usize>() {
                Ok(n) if n > 0 => model.dense.push(n),
                _ => return Err(format!("`{t}` in `{s}` is not a dense layer dN")),
            }
            continue;
        }
        let token = parse_token(t).map_err(|why| format!("`{t}` in `{s}`: {why}"))?;
        if !model.dense.is_empty() {
            return Err(format!(
                "`{t}` in `{s}`: a recurrent layer cannot follow a dense layer"
            ));
        }
        let next_recurrent = tokens.get(i + 1).is_some_and(|n| is_recurrent(n));
        if next_recurrent && !token.sequence {
            return Err(format!(
                "`{t}` in `{s}` is followed by another recurrent layer, so it needs `:seq` \
                 (every recurrent layer but the last outputs its whole sequence)"
            ));
        }
        model.layers.push(token);
    }
    Ok(model)
}

/// `gru:32:seq:bi` → a token.
fn parse_token(t: &str) -> Result<RecurrentToken, String> {
    let mut parts = t.split(':');
    let cell = match parts.next() {
        Some("rnn") => Cell::Rnn,
        Some("gru") => Cell::Gru {
            linear_before_reset: true,
        },
        Some("lstm") => Cell::Lstm,
        _ => return Err(format!("not a layer ({RECURRENT_SPEC_HELP})")),
    };
    let hidden = match parts.next().map(str::parse::<usize>) {
        Some(Ok(h)) if h > 0 => h,
        _ => return Err("the state size H must be a positive whole number".into()),
    };
    let mut token = RecurrentToken {
        cell,
        hidden,
        bidirectional: false,
        sequence: false,
    };
    let mut orig = false;
    for opt in parts {
        let flag = match opt {
            "seq" => &mut token.sequence,
            "bi" => &mut token.bidirectional,
            "orig" if matches!(cell, Cell::Gru { .. }) => &mut orig,
            "orig" => {
                return Err(format!(
                    "`:orig` (the original GRU formulation) applies to gru only, not {}",
                    cell.name()
                ));
            }
            _ => {
                return Err(format!(
                    "unknown option `:{opt}` (expected :seq, :bi or :orig)"
                ));
            }
        };
        if std::mem::replace(flag, true) {
            return Err(format!("`:{opt}` is given twice"));
        }
    }
    if orig {
        token.cell = Cell::Gru {
            linear_before_reset: false,
        };
    }
    Ok(token)
}

/// Appends the recurrent and hidden dense layers of `model` on rows of
/// `shape` = `[T, F]` to `layers`; returns the width they end with.
pub(super) fn build(
    model: &RecurrentModel,
    shape: &[usize],
    act: Activation,
    rng: &mut impl Rng,
    layers: &mut Vec<Layer>,
) -> Result<usize, ShapeError> {
    let &[steps, mut inputs] = shape else {
        return Err(ShapeError::Invalid(format!(
            "a recurrent model needs --shape TxF (time steps × features per step, e.g. 8x8), got {shape:?}"
        )));
    };
    let mut width = steps * inputs;
    for t in &model.layers {
        let r = Recurrent::new(
            t.cell,
            steps,
            inputs,
            t.hidden,
            t.bidirectional,
            t.sequence,
            rng,
        );
        width = r.output_len();
        inputs = r.output_len() / steps;
        layers.push(Layer::Recurrent(r));
    }
    for &n in &model.dense {
        layers.push(Layer::dense(width, n, act, rng));
        layers.push(Layer::Act(act));
        width = n;
    }
    Ok(width)
}

/// The graph layer of `r`, its tensors added to `tensors` as `{op}{n}.w`,
/// `.r` and `.b` in ONNX's layouts.
pub(super) fn export(r: &Recurrent, n: usize, tensors: &mut BTreeMap<String, Tensor>) -> LayerSpec {
    let name = format!("{}{n}", r.cell.name());
    let [w, rr, b] = ["w", "r", "b"].map(|t| format!("{name}.{t}"));
    for (key, a) in [(&w, r.w.view().into_dyn()), (&rr, r.r.view().into_dyn())] {
        tensors.insert(
            key.clone(),
            Tensor::new(a.shape().to_vec(), a.iter().copied().collect()),
        );
    }
    tensors.insert(
        b.clone(),
        Tensor::new(r.b.shape().to_vec(), r.b.iter().copied().collect()),
    );
    let (hidden, sequence) = (r.hidden, r.sequence);
    let direction = if r.bidirectional {
        Direction::Bidirectional
    } else {
        Direction::Forward
    };
    LayerSpec::recurrent(r.cell, hidden, [w, rr, b], direction, sequence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FORMAT_VERSION, Graph, InputSpec, ModelFile, Task};
    use crate::train::losses::Loss;
    use crate::train::models::{ModelKind, build, export};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// The exported file, run by the guest's kernel, predicts what the
    /// ndarray network does: the tensors' names, layouts and gate orders
    /// are the ones the kernel reads. (The kernel's `tanh` and `sigmoid`
    /// are math.rs's, not std's, hence the tolerance.)
    #[test]
    fn exported_models_predict_like_the_network() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (steps, features) = (5, 3);
        for spec in [
            "rnn:4",
            "gru:4",
            "gru:4:orig:bi",
            "lstm:4:bi",
            "lstm:3:seq:bi,gru:4:orig:seq,rnn:2,d3",
            "gru:3:seq",
        ] {
            let kind: ModelKind = spec.parse().unwrap();
            let (mut net, loss) = build(
                &kind,
                &[steps, features],
                2,
                true,
                Activation::Tanh,
                &mut rng,
            )
            .unwrap();
            assert_eq!(loss, Loss::MeanSquaredError);
            for l in &mut net.layers {
                if let Layer::Recurrent(r) = l {
                    r.b.mapv_inplace(|_| rng.random_range(-0.5..0.5));
                }
            }
            let mut tensors = BTreeMap::new();
            let layers = export(&net, loss, None, &mut tensors);
            let file = ModelFile {
                graph: Graph {
                    format: FORMAT_VERSION,
                    name: "t".into(),
                    version: "1".into(),
                    task: Task::Regression,
                    input: InputSpec {
                        name: "input".into(),
                        shape: vec![steps, features],
                        features: Vec::new(),
                    },
                    target: None,
                    labels: Vec::new(),
                    layers,
                    wiring: Vec::new(),
                },
                tensors,
            };
            let kernel = file.to_kernel().unwrap_or_else(|e| panic!("{spec}: {e}"));
            let x = ndarray::Array2::from_shape_fn((4, steps * features), |_| {
                rng.random_range(-2.0f32..2.0)
            });
            let got = kernel.predict(x.as_slice().unwrap()).unwrap();
            let want = net.predict(x.view());
            assert_eq!(got.len(), want.len(), "{spec}");
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{spec}: kernel {a} vs network {b}");
            }
        }
    }

    #[test]
    fn parses_recurrent_models() {
        let m = parse("lstm:32:seq:bi,gru:8:orig,d64").unwrap();
        assert_eq!(
            m.layers,
            [
                RecurrentToken {
                    cell: Cell::Lstm,
                    hidden: 32,
                    bidirectional: true,
                    sequence: true
                },
                RecurrentToken {
                    cell: Cell::Gru {
                        linear_before_reset: false
                    },
                    hidden: 8,
                    bidirectional: false,
                    sequence: false
                }
            ]
        );
        assert_eq!(m.dense, [64]);
        assert!(parse("rnn:4:seq").unwrap().layers[0].sequence);
        for (bad, why) in [
            ("gru:16,gru:8", "needs `:seq`"),
            ("lstm:8:orig", "applies to gru only, not lstm"),
            ("rnn:8:orig", "applies to gru only, not rnn"),
            ("gru:0", "positive whole number"),
            ("gru:x", "positive whole number"),
            ("gru", "positive whole number"),
            ("gru:8:up", "unknown option `:up`"),
            ("gru:8:seq:seq", "`:seq` is given twice"),
            ("gru:8:seq,d4,gru:8", "cannot follow a dense layer"),
            ("gru:8,d0", "not a dense layer"),
            ("gru:8,c8k3", "not a layer"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
