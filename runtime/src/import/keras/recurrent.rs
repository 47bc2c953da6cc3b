//! `SimpleRNN`, `GRU`, `LSTM` and `Bidirectional` (concatenating) onto
//! kiln's `rnn`, `gru` and `lstm`, whose tensors are ONNX's
//! (docs/model-format.md, "Recurrent layers"): per direction, Keras's
//! `kernel` `[F, G·H]` and `recurrent_kernel` `[H, G·H]` are transposed to
//! `[G·H, F]` and `[G·H, H]` with the gates reordered (Keras's LSTM holds
//! i, f, c, o, kiln i, o, f, c; a GRU z, r, h in both), and the bias
//! becomes the input bias (a `reset_after` GRU's second row is the
//! recurrent bias, `linear_before_reset`; otherwise the recurrent bias is
//! zero). Keras's defaults are the only activations kiln has: tanh, and
//! sigmoid for the gates.

use ndarray::ArrayD;
use serde_json::Value;

use super::KerasError;
use super::state::{Lowering, Op, Order};
use crate::import::common::LayerTensors;
use crate::model::{Direction, LayerSpec};
use kiln_guest::Cell;

/// A recurrent layer under construction: ONNX's `W`, `R` and `B`.
#[derive(Debug, Clone)]
pub(super) struct Recurrent {
    /// `"rnn"`, `"gru"` or `"lstm"`.
    kind: &'static str,
    hidden: usize,
    features: usize,
    directions: usize,
    sequence: bool,
    linear_before_reset: bool,
    w: Vec<f32>,
    r: Vec<f32>,
    b: Vec<f32>,
}

impl Recurrent {
    fn gates(&self) -> usize {
        match self.kind {
            "rnn" => 1,
            "gru" => 3,
            _ => 4,
        }
    }

    /// The layer spec, its tensors added.
    pub(super) fn spec(self, t: &mut LayerTensors) -> LayerSpec {
        let (d, gh) = (self.directions, self.gates() * self.hidden);
        let w = t.add("w", vec![d, gh, self.features], self.w);
        let r = t.add("r", vec![d, gh, self.hidden], self.r);
        let b = t.add("b", vec![d, 2 * gh], self.b);
        let direction = if d == 2 {
            Direction::Bidirectional
        } else {
            Direction::Forward
        };
        let cell = match self.kind {
            "rnn" => Cell::Rnn,
            "gru" => Cell::Gru {
                linear_before_reset: self.linear_before_reset,
            },
            _ => Cell::Lstm,
        };
        LayerSpec::recurrent(cell, self.hidden, [w, r, b], direction, self.sequence)
    }
}

impl Lowering<'_> {
    /// A recurrent layer, or a `Bidirectional` one around it.
    pub(super) fn recurrent(&mut self, weights: &[ArrayD<f32>]) -> Result<(), KerasError> {
        let bidirectional = self.layer.class == "Bidirectional";
        let (class, cfg) = if bidirectional {
            let merge = self.layer.config.get("merge_mode").and_then(Value::as_str);
            if merge != Some("concat") {
                return Err(self.err(format!(
                    "`merge_mode` = {merge:?}: kiln concatenates the two directions only"
                )));
            }
            let inner = self.field("layer")?;
            let class = inner
                .get("class_name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let cfg = inner.get("config").cloned().unwrap_or(Value::Null);
            if let Some(back) = self
                .layer
                .config
                .get("backward_layer")
                .filter(|v| !v.is_null())
            {
                let same = back.get("class_name").and_then(Value::as_str) == Some(class)
                    && back.pointer("/config/units") == cfg.get("units");
                if !same {
                    return Err(self.err(
                        "its backward layer differs from the forward one; kiln runs one layer \
                         both ways",
                    ));
                }
            }
            (class.to_string(), cfg)
        } else {
            (self.layer.class.clone(), self.layer.config.clone())
        };
        let (kind, gates) = match class.as_str() {
            "SimpleRNN" => ("rnn", 1),
            "GRU" => ("gru", 3),
            "LSTM" => ("lstm", 4),
            other => {
                return Err(self.err(format!(
                    "it wraps a {other}; kiln imports Bidirectional SimpleRNN, GRU and LSTM"
                )));
            }
        };
        let flag = |name: &str, default: bool| -> Result<bool, KerasError> {
            match cfg.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| self.err(format!("`{name}` = {v} is not true or false"))),
            }
        };
        for name in ["go_backwards", "stateful", "return_state"] {
            if flag(name, false)? {
                return Err(self.err(format!("`{name}` = true is not supported")));
            }
        }
        let act = |name: &str, want: &str| -> Result<(), KerasError> {
            match cfg.get(name).and_then(Value::as_str) {
                None => Ok(()),
                Some(a) if a == want => Ok(()),
                Some(a) => Err(self.err(format!(
                    "`{name}` = {a:?}: kiln's recurrent layers use {want}"
                ))),
            }
        };
        act("activation", "tanh")?;
        if gates > 1 {
            act("recurrent_activation", "sigmoid")?;
        }
        let hidden = cfg
            .get("units")
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| self.err("`units` is not a positive integer"))?;
        let sequence = flag("return_sequences", false)?;
        let use_bias = flag("use_bias", true)?;
        let reset_after = kind == "gru" && flag("reset_after", true)?;
        let &[steps, features] = self.keras.as_slice() else {
            return Err(self.err(format!(
                "rows of shape {:?}: a recurrent layer reads [steps, features]",
                self.keras
            )));
        };
        if self.order != Order::Plain {
            return Err(self.err("its input is an image kiln holds as channel planes"));
        }
        let directions = if bidirectional { 2 } else { 1 };
        let per = 2 + usize::from(use_bias);
        if weights.len() != per * directions {
            return Err(self.err(format!(
                "{} weights saved, expected {} (kernel, recurrent kernel{} per direction)",
                weights.len(),
                per * directions,
                if use_bias { ", bias" } else { "" }
            )));
        }
        // Keras's gate index of each of kiln's gates.
        let order: &[usize] = match kind {
            "lstm" => &[0, 3, 1, 2],
            "gru" => &[0, 1, 2],
            _ => &[0],
        };
        let gh = gates * hidden;
        let mut rec = Recurrent {
            kind,
            hidden,
            features,
            directions,
            sequence,
            linear_before_reset: reset_after,
            w: Vec::with_capacity(directions * gh * features),
            r: Vec::with_capacity(directions * gh * hidden),
            b: Vec::with_capacity(directions * 2 * gh),
        };
        for d in weights.chunks(per) {
            let (k, rk) = (&d[0], &d[1]);
            let bias_rows = if reset_after { 2 } else { 1 };
            let bias = d.get(2);
            let bias_shape: &[usize] = if reset_after { &[2, gh] } else { &[gh] };
            if k.shape() != [features, gh]
                || rk.shape() != [hidden, gh]
                || bias.is_some_and(|b| b.shape() != bias_shape)
            {
                return Err(self.err(format!(
                    "kernels of shapes {:?} and {:?}; expected [{features}, {gh}] and \
                     [{hidden}, {gh}] (and a bias {bias_shape:?})",
                    k.shape(),
                    rk.shape()
                )));
            }
            let bias: Vec<f32> =
                bias.map_or(vec![0.0; bias_rows * gh], |b| b.iter().copied().collect());
            let keras_col = |g: usize, j: usize| order[g] * hidden + j;
            for g in 0..gates {
                for j in 0..hidden {
                    rec.w.extend((0..features).map(|f| k[[f, keras_col(g, j)]]));
                }
            }
            for g in 0..gates {
                for j in 0..hidden {
                    rec.r.extend((0..hidden).map(|h| rk[[h, keras_col(g, j)]]));
                }
            }
            for row in 0..2 {
                for g in 0..gates {
                    for j in 0..hidden {
                        rec.b.push(match (row, reset_after) {
                            (0, _) => bias[keras_col(g, j)],
                            (_, true) => bias[gh + keras_col(g, j)],
                            _ => 0.0,
                        });
                    }
                }
            }
        }
        if self.kiln != [steps, features] {
            if self.elementwise {
                self.input_dims = vec![steps, features];
                self.kiln = vec![steps, features];
            } else {
                self.push(Op::Reshape(vec![steps, features]));
            }
        }
        self.push(Op::Recurrent(Box::new(rec)));
        let out = directions * hidden;
        self.keras = if sequence {
            vec![steps, out]
        } else {
            vec![out]
        };
        self.kiln = self.keras.clone();
        Ok(())
    }
}
