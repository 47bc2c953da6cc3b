//! `kiln quantize`: an f32 model → an int8 model.
//!
//! Each dense layer becomes a [`LayerSpec::DenseInt8`] and each convolution
//! a [`LayerSpec::Conv2dInt8`]: weights symmetric int8 per output channel
//! (`scale = max|w| / 127`, zero point 0, raised where the bias would not
//! fit i32 — see [`bias_scale_floor`]), biases i32 at the accumulator scale.
//! Activations between these layers stay int8 with a per-tensor scale and
//! zero point from calibration data — through pooling and flattening, which
//! then run on int8 — and a ReLU after a layer is fused into its requantize
//! clamp. The last int8 layer of a run dequantizes to f32 for what follows
//! (softmax…). With `--dynamic` no calibration is needed: every dense layer
//! quantizes its f32 input per row at run time and dequantizes its output
//! (convolutions, which need a static input scale, stay f32). See
//! `docs/quantization.md`.

use std::collections::BTreeMap;

use crate::model::{LayerSpec, ModelFile, QuantParams, Tensor};

use super::ShrinkError;
use super::calibrate::{self, CalibMethod, QuantRange};

/// How weights are rounded to int8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// One scale per output channel, `max|w| / 127`; round to nearest.
    PerChannel,
    /// The design document's rule `w ← ⌊w · q⌋` with one factor per tensor,
    /// `q = 127 / max|w|`: floor instead of round, one scale for all
    /// channels. Kept to show what it costs.
    Doc,
}

/// Quantization settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantizeConfig {
    /// Quantize activations per row at run time instead of calibrating.
    pub dynamic: bool,
    pub method: CalibMethod,
    pub scheme: Scheme,
}

impl Default for QuantizeConfig {
    fn default() -> Self {
        QuantizeConfig {
            dynamic: false,
            method: CalibMethod::MinMax,
            scheme: Scheme::PerChannel,
        }
    }
}

/// Quantizes `model`. `calibration` holds rows of the model's input
/// (row-major); it is required unless `cfg.dynamic`.
pub fn quantize(
    model: &ModelFile,
    calibration: Option<&[f32]>,
    cfg: &QuantizeConfig,
) -> Result<ModelFile, ShrinkError> {
    calibrate::check_float(model)?;
    model.to_kernel()?;
    if super::dense_layers(model).is_empty() {
        return Err(ShrinkError::NoDense("quantize"));
    }
    let calibration = match (cfg.dynamic, calibration) {
        (true, _) => None,
        (false, Some(rows)) if !rows.is_empty() => Some(rows),
        (false, _) => return Err(ShrinkError::NoCalibrationRows),
    };
    let layers = &model.graph.layers;
    // `full`: all 256 levels even for a non-negative range (see below).
    let range = |end: usize, full: bool| -> Result<QuantParams, ShrinkError> {
        let values = calibrate::activations(model, calibration.unwrap_or(&[]), end)?;
        let r = QuantRange::of(&values, cfg.method);
        Ok(if full { r.params_full() } else { r.params() })
    };

    let mut out_layers = Vec::new();
    let mut tensors = BTreeMap::new();
    // Layers kept in f32 keep their tensors: every string field of the
    // layer's JSON that names a tensor (whatever the op).
    let copy = |layer: &LayerSpec, tensors: &mut BTreeMap<String, Tensor>| {
        let json = serde_json::to_value(layer).unwrap_or_default();
        for name in json
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(_, v)| v.as_str())
        {
            if let Some(t) = model.tensors.get(name) {
                tensors.insert(name.to_string(), t.clone());
            }
        }
    };
    // The quantization of the activation entering the next layer (None: f32).
    let mut input: Option<QuantParams> = None;
    let mut i = 0;
    while i < layers.len() {
        let (weight, bias, conv) = match &layers[i] {
            LayerSpec::Dense { weight, bias } => (weight, bias, None),
            // A convolution needs a static input scale (its padding holds
            // the zero point); with --dynamic it stays f32, and so does one
            // with groups, dilation or uneven padding (the int8 kernel runs
            // the plain geometry only).
            LayerSpec::Conv2d {
                weight,
                bias,
                stride,
                padding,
                pads,
                dilation,
                groups,
            } if !cfg.dynamic && plain_conv(*padding, *pads, *dilation, *groups) => {
                (weight, bias, Some((*stride, *padding)))
            }
            other if other.recurrent_tensors().is_some() => {
                out_layers.push(quantize_recurrent(
                    model,
                    (i, other),
                    cfg.scheme,
                    &mut tensors,
                )?);
                input = None;
                i += 1;
                continue;
            }
            other => {
                copy(other, &mut tensors);
                // Pooling and flattening between int8 layers run on int8
                // (`input` stays); anything else takes f32.
                if !matches!(
                    other,
                    LayerSpec::Flatten | LayerSpec::MaxPool { .. } | LayerSpec::AvgPool { .. }
                ) {
                    input = None;
                }
                out_layers.push(other.clone());
                i += 1;
                continue;
            }
        };
        let relu_next = matches!(layers.get(i + 1), Some(LayerSpec::Relu));
        let feeds_int8 = !cfg.dynamic && feeds_int8(layers, if relu_next { i + 2 } else { i + 1 });
        let fuse_relu = relu_next && feeds_int8;

        let sx = if cfg.dynamic {
            out_layers.push(LayerSpec::QuantizeDynamic);
            None
        } else {
            let q = match input {
                Some(q) => q,
                None => {
                    let q = range(i, false)?;
                    out_layers.push(LayerSpec::Quantize {
                        scale: q.scale,
                        zero_point: q.zero_point,
                    });
                    q
                }
            };
            Some(q.scale)
        };

        let scale_name = quantize_layer_tensors(
            model,
            (i, weight, bias),
            conv.is_some(),
            sx,
            cfg.scheme,
            &mut tensors,
        )?;

        let output = if feeds_int8 {
            // A convolution's output keeps all 8 bits: the 7-bit rule of
            // non-negative ranges only speeds up the relaxed dense kernel,
            // and costs a CNN accuracy (docs/quantization.md).
            let q = range(if fuse_relu { i + 2 } else { i + 1 }, conv.is_some())?;
            input = Some(q);
            Some(q)
        } else {
            input = None;
            None
        };
        out_layers.push(match conv {
            None => LayerSpec::DenseInt8 {
                weight: weight.clone(),
                weight_scale: scale_name,
                bias: bias.clone(),
                output,
                relu: fuse_relu,
            },
            Some((stride, padding)) => LayerSpec::Conv2dInt8 {
                weight: weight.clone(),
                weight_scale: scale_name,
                bias: bias.clone(),
                stride,
                padding,
                output,
                relu: fuse_relu,
            },
        });
        i += if fuse_relu { 2 } else { 1 };
    }

    let mut graph = model.graph.clone();
    graph.layers = out_layers;
    let quantized = ModelFile { graph, tensors };
    quantized.to_kernel()?;
    Ok(quantized)
}

/// Whether the activation entering layer `next` stays int8: only into
/// another int8 layer, through any pooling and flattening in between.
fn feeds_int8(layers: &[LayerSpec], next: usize) -> bool {
    let next = layers[next..].iter().find(|l| {
        !matches!(
            l,
            LayerSpec::Flatten | LayerSpec::MaxPool { .. } | LayerSpec::AvgPool { .. }
        )
    });
    match next {
        Some(LayerSpec::Dense { .. }) => true,
        Some(LayerSpec::Conv2d {
            padding,
            pads,
            dilation,
            groups,
            ..
        }) => plain_conv(*padding, *pads, *dilation, *groups),
        _ => false,
    }
}

/// Whether a convolution has the plain geometry the int8 kernel runs: the
/// same padding on every side, no dilation, one group.
fn plain_conv(padding: usize, pads: Option<[usize; 4]>, dilation: usize, groups: usize) -> bool {
    pads.is_none_or(|p| p == [padding; 4]) && dilation == 1 && groups == 1
}

/// Writes the int8 tensors of one dense or convolution layer (`weight`,
/// `bias`) into `tensors`: i8 weights, their per-output scales (returned:
/// the scale tensor's name) and the bias, i32 at the accumulator scale when
/// the input scale `sx` is static, else f32.
fn quantize_layer_tensors(
    model: &ModelFile,
    (layer, weight, bias): (usize, &String, &String),
    conv: bool,
    sx: Option<f32>,
    scheme: Scheme,
    tensors: &mut BTreeMap<String, Tensor>,
) -> Result<String, ShrinkError> {
    let (w, wf) = f32_tensor(model, layer, weight)?;
    let (outputs, taps) = match (w.shape.as_slice(), conv) {
        (&[outputs, inputs], false) => (outputs, inputs),
        (&[out_c, in_c, kh, kw], true) => (out_c, in_c * kh * kw),
        _ => return Err(tensor_error(layer, weight, "has the wrong rank")),
    };
    let (_, bf) = f32_tensor(model, layer, bias)?;
    let floor: Vec<f32> = match sx {
        Some(sx) => bf.iter().map(|&b| bias_scale_floor(b, sx)).collect(),
        None => vec![0.0; outputs],
    };
    let (wq, ws) = quantize_weights(wf, taps, outputs, scheme, &floor);
    let scale_name = format!("{weight}.scale");
    tensors.insert(weight.clone(), Tensor::i8(w.shape.clone(), wq));
    tensors.insert(scale_name.clone(), Tensor::new(vec![outputs], ws.clone()));
    let bias_tensor = match sx {
        // i32 at the accumulator scale s_x · s_w[o]; the floor on s_w
        // keeps |bias| ≤ 2^30.
        Some(sx) => Tensor::i32(
            vec![outputs],
            bf.iter()
                .zip(&ws)
                .map(|(&b, &s)| {
                    let v = (f64::from(b) / (f64::from(sx) * f64::from(s))).round();
                    v.clamp(-BIAS_LIMIT, BIAS_LIMIT) as i32
                })
                .collect(),
        ),
        None => Tensor::new(vec![outputs], bf.to_vec()),
    };
    tensors.insert(bias.clone(), bias_tensor);
    Ok(scale_name)
}

/// Tensor `name` of layer `layer` and its values, if it is there and f32.
fn f32_tensor<'m>(
    model: &'m ModelFile,
    layer: usize,
    name: &str,
) -> Result<(&'m Tensor, &'m [f32]), ShrinkError> {
    let t = model
        .tensors
        .get(name)
        .ok_or_else(|| tensor_error(layer, name, "is missing"))?;
    let values = t
        .as_f32()
        .ok_or_else(|| tensor_error(layer, name, "is not f32"))?;
    Ok((t, values))
}

fn tensor_error(layer: usize, tensor: &str, problem: &'static str) -> ShrinkError {
    ShrinkError::Tensor {
        layer,
        tensor: tensor.to_string(),
        problem,
    }
}

/// A recurrent layer with int8 `w` and `r`, per output channel (each row
/// of `[D·G·H, F]` and `[D·G·H, H]`), their scales `w.scale` and
/// `r.scale` (`[D, G·H]`) and the f32 `b` written into `tensors`; the
/// layer reads them (`docs/quantization.md`, "Recurrent layers").
fn quantize_recurrent(
    model: &ModelFile,
    (index, layer): (usize, &LayerSpec),
    scheme: Scheme,
    tensors: &mut BTreeMap<String, Tensor>,
) -> Result<LayerSpec, ShrinkError> {
    let Some(([w, r, b], _)) = layer.recurrent_tensors() else {
        return Ok(layer.clone());
    };
    let mut scale = |name: &str| -> Result<String, ShrinkError> {
        let (t, values) = f32_tensor(model, index, name)?;
        let &[d, gh, cols] = t.shape.as_slice() else {
            return Err(tensor_error(
                index,
                name,
                "is not [directions, gates·hidden, columns]",
            ));
        };
        let (q, scales) = quantize_weights(values, cols, d * gh, scheme, &vec![0.0; d * gh]);
        let scale_name = format!("{name}.scale");
        tensors.insert(name.to_string(), Tensor::i8(t.shape.clone(), q));
        tensors.insert(scale_name.clone(), Tensor::new(vec![d, gh], scales));
        Ok(scale_name)
    };
    let (ws, rs) = (scale(w)?, scale(r)?);
    tensors.insert(b.to_string(), f32_tensor(model, index, b)?.0.clone());
    Ok(layer.clone().with_scales(ws, rs))
}

/// The largest magnitude of an i32 bias at the accumulator scale: half the
/// i32 range, leaving the other half to `Σ (q − z)·w` (at most 255 · 127 per
/// input, so up to 33,000 inputs never overflow).
const BIAS_LIMIT: f64 = (1u32 << 30) as f64;

/// The smallest weight scale at which bias `b` fits [`BIAS_LIMIT`] at the
/// accumulator scale `sx · s_w`: `|b| / (sx · 2^30)`, rounded up in f32.
///
/// Without it, a channel whose weights are all (nearly) zero — a dead unit,
/// common after L2 regularisation (scikit-learn's MLPClassifier) — gets a
/// tiny `max|w| / 127` scale, and its ordinary bias divided by that scale
/// overflows i32. Raising such a channel's scale to the floor costs nothing
/// measurable: its weights round to (near) zero either way, next to a bias
/// 2^30 quanta large.
fn bias_scale_floor(b: f32, sx: f32) -> f32 {
    let floor = f64::from(b).abs() / (f64::from(sx) * BIAS_LIMIT);
    let f = floor as f32;
    if f64::from(f) < floor { f.next_up() } else { f }
}

/// Int8 weights (output-major, like `w`) and one scale per output channel,
/// each at least `floor[o]` (see [`bias_scale_floor`]).
fn quantize_weights(
    w: &[f32],
    inputs: usize,
    outputs: usize,
    scheme: Scheme,
    floor: &[f32],
) -> (Vec<i8>, Vec<f32>) {
    let max_abs = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let rows = || w.chunks_exact(inputs.max(1)).take(outputs);
    match scheme {
        Scheme::PerChannel => {
            let mut q = Vec::with_capacity(w.len());
            let mut scales = Vec::with_capacity(outputs);
            for (row, &f) in rows().zip(floor) {
                let m = max_abs(row);
                let s = if m > 0.0 || f > 0.0 {
                    (m / 127.0).max(f)
                } else {
                    1.0
                };
                scales.push(s);
                q.extend(
                    row.iter()
                        .map(|&v| (v / s).round().clamp(-127.0, 127.0) as i8),
                );
            }
            (q, scales)
        }
        Scheme::Doc => {
            let m = max_abs(w);
            let f = floor.iter().fold(0.0f32, |a, &b| a.max(b));
            let factor = if m > 0.0 || f > 0.0 {
                1.0 / (m / 127.0).max(f)
            } else {
                1.0
            };
            let q = w
                .iter()
                .map(|&v| (v * factor).floor().clamp(-128.0, 127.0) as i8)
                .collect();
            (q, vec![1.0 / factor; outputs])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FORMAT_VERSION, Graph, InputSpec, Task, TensorData};

    /// input 4 → dense 3 (relu) → dense 2 → softmax; hidden unit 1 is dead:
    /// its incoming weights are ~1e-11 (as L2 regularisation leaves them in
    /// scikit-learn's MLPClassifier), its bias an ordinary 0.3.
    fn mlp_with_a_dead_unit() -> ModelFile {
        let mut tensors = BTreeMap::new();
        let w0 = vec![
            0.5, -0.4, 0.3, 0.2, //
            2e-11, -3e-11, 1e-11, 0.0, //
            -0.6, 0.1, 0.7, -0.2,
        ];
        tensors.insert("l0.weight".into(), Tensor::new(vec![3, 4], w0));
        tensors.insert(
            "l0.bias".into(),
            Tensor::new(vec![3], vec![0.1, 0.3, -0.05]),
        );
        let w1 = vec![0.8, 0.5, -0.7, -0.3, -0.9, 0.6];
        tensors.insert("l2.weight".into(), Tensor::new(vec![2, 3], w1));
        tensors.insert("l2.bias".into(), Tensor::new(vec![2], vec![0.0, 0.1]));
        let dense = |w: &str, b: &str| LayerSpec::Dense {
            weight: w.into(),
            bias: b.into(),
        };
        ModelFile {
            graph: Graph {
                format: FORMAT_VERSION,
                name: "dead".into(),
                version: "1".into(),
                task: Task::Classification,
                input: InputSpec {
                    name: "x".into(),
                    shape: vec![4],
                    features: vec![],
                },
                target: None,
                labels: vec!["a".into(), "b".into()],
                layers: vec![
                    dense("l0.weight", "l0.bias"),
                    LayerSpec::Relu,
                    dense("l2.weight", "l2.bias"),
                    LayerSpec::Softmax,
                ],
                wiring: vec![],
            },
            tensors,
        }
    }

    /// Regression: static calibration of such a model was refused with
    /// "`l0.bias`[1] overflows i32 once the input zero point is folded in"
    /// (0.3 / (s_x · 1e-11/127) ≫ 2^31). The dead channel's scale is now
    /// floored so its bias fits, and the int8 model tracks the f32 one.
    #[test]
    fn dead_units_do_not_overflow_the_bias() {
        let model = mlp_with_a_dead_unit();
        let rows: Vec<f32> = (0..400).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let q = quantize(&model, Some(&rows), &QuantizeConfig::default()).unwrap();
        let TensorData::I32(bias) = &q.tensors["l0.bias"].data else {
            panic!("i32 bias");
        };
        assert!(bias.iter().all(|b| b.unsigned_abs() <= 1 << 30), "{bias:?}");
        let (f, i) = (model.to_kernel().unwrap(), q.to_kernel().unwrap());
        let (pf, pi) = (f.predict(&rows).unwrap(), i.predict(&rows).unwrap());
        let diff = pf
            .iter()
            .zip(&pi)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 0.02, "max |f32 − int8| = {diff}");
    }

    #[test]
    fn per_channel_uses_the_full_range_per_row() {
        let w = [0.5, -1.0, 0.25, 0.01, 0.03, -0.04];
        let (q, s) = quantize_weights(&w, 3, 2, Scheme::PerChannel, &[0.0; 2]);
        assert_eq!(q, [64, -127, 32, 32, 95, -127]);
        assert!((s[0] - 1.0 / 127.0).abs() < 1e-9 && (s[1] - 0.04 / 127.0).abs() < 1e-9);
    }

    #[test]
    fn doc_scheme_floors_with_one_factor() {
        let w = [0.5, -1.0, 0.25, 0.01];
        let (q, s) = quantize_weights(&w, 2, 2, Scheme::Doc, &[0.0; 2]);
        assert_eq!(q, [63, -127, 31, 1]);
        assert_eq!(s[0], s[1]);
    }
}
