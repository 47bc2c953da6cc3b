//! `kiln quantize`: an f32 model → an int8 model.
//!
//! Each dense layer becomes a [`LayerSpec::DenseInt8`]: weights symmetric
//! int8 per output channel (`scale = max|w| / 127`, zero point 0), biases
//! i32 at the accumulator scale. Activations between dense layers stay int8
//! with a per-tensor scale and zero point from calibration data; a ReLU after
//! a dense layer is fused into its requantize clamp. The last dense layer of
//! a run dequantizes to f32 for what follows (softmax…). With `--dynamic`
//! no calibration is needed: every dense layer quantizes its f32 input per
//! row at run time and dequantizes its output. See `docs/quantization.md`.

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
    let range = |end: usize| -> Result<QuantParams, ShrinkError> {
        let values = calibrate::activations(model, calibration.unwrap_or(&[]), end)?;
        Ok(QuantRange::of(&values, cfg.method).params())
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
        let LayerSpec::Dense { weight, bias } = &layers[i] else {
            copy(&layers[i], &mut tensors);
            out_layers.push(layers[i].clone());
            i += 1;
            continue;
        };
        let next = |from: usize| {
            layers[from..]
                .iter()
                .find(|l| !matches!(l, LayerSpec::Flatten))
        };
        let relu_next = matches!(layers.get(i + 1), Some(LayerSpec::Relu));
        // Keep int8 across the boundary only into another dense layer.
        let after_relu = if relu_next { i + 2 } else { i + 1 };
        let feeds_dense = !cfg.dynamic && matches!(next(after_relu), Some(LayerSpec::Dense { .. }));
        let fuse_relu = relu_next && feeds_dense;

        let sx = if cfg.dynamic {
            out_layers.push(LayerSpec::QuantizeDynamic);
            None
        } else {
            let q = match input {
                Some(q) => q,
                None => {
                    let q = range(i)?;
                    out_layers.push(LayerSpec::Quantize {
                        scale: q.scale,
                        zero_point: q.zero_point,
                    });
                    q
                }
            };
            Some(q.scale)
        };

        let w = &model.tensors[weight];
        let (&[outputs, inputs], Some(wf)) = (w.shape.as_slice(), w.as_f32()) else {
            unreachable!("to_kernel checked the dense layer");
        };
        let bf = model.tensors[bias].as_f32().expect("checked f32 bias");
        let (wq, ws) = quantize_weights(wf, inputs, outputs, cfg.scheme);
        let scale_name = format!("{weight}.scale");
        tensors.insert(weight.clone(), Tensor::i8(vec![outputs, inputs], wq));
        tensors.insert(scale_name.clone(), Tensor::new(vec![outputs], ws.clone()));
        let bias_tensor = match sx {
            // i32 at the accumulator scale s_x · s_w[o].
            Some(sx) => Tensor::i32(
                vec![outputs],
                bf.iter()
                    .zip(&ws)
                    .map(|(&b, &s)| {
                        let v = (f64::from(b) / (f64::from(sx) * f64::from(s))).round();
                        v.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
                    })
                    .collect(),
            ),
            None => Tensor::new(vec![outputs], bf.to_vec()),
        };
        tensors.insert(bias.clone(), bias_tensor);

        let output = if feeds_dense {
            let q = range(if fuse_relu { i + 2 } else { i + 1 })?;
            input = Some(q);
            Some(q)
        } else {
            input = None;
            None
        };
        out_layers.push(LayerSpec::DenseInt8 {
            weight: weight.clone(),
            weight_scale: scale_name,
            bias: bias.clone(),
            output,
            relu: fuse_relu,
        });
        i += if fuse_relu { 2 } else { 1 };
    }

    let mut graph = model.graph.clone();
    graph.layers = out_layers;
    let quantized = ModelFile { graph, tensors };
    quantized.to_kernel()?;
    Ok(quantized)
}

/// Int8 weights (output-major, like `w`) and one scale per output channel.
fn quantize_weights(
    w: &[f32],
    inputs: usize,
    outputs: usize,
    scheme: Scheme,
) -> (Vec<i8>, Vec<f32>) {
    let max_abs = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let rows = || w.chunks_exact(inputs.max(1)).take(outputs);
    match scheme {
        Scheme::PerChannel => {
            let mut q = Vec::with_capacity(w.len());
            let mut scales = Vec::with_capacity(outputs);
            for row in rows() {
                let m = max_abs(row);
                let s = if m > 0.0 { m / 127.0 } else { 1.0 };
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
            let factor = if m > 0.0 { 127.0 / m } else { 1.0 };
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

    #[test]
    fn per_channel_uses_the_full_range_per_row() {
        let w = [0.5, -1.0, 0.25, 0.01, 0.03, -0.04];
        let (q, s) = quantize_weights(&w, 3, 2, Scheme::PerChannel);
        assert_eq!(q, [64, -127, 32, 32, 95, -127]);
        assert!((s[0] - 1.0 / 127.0).abs() < 1e-9 && (s[1] - 0.04 / 127.0).abs() < 1e-9);
    }

    #[test]
    fn doc_scheme_floors_with_one_factor() {
        let w = [0.5, -1.0, 0.25, 0.01];
        let (q, s) = quantize_weights(&w, 2, 2, Scheme::Doc);
        assert_eq!(q, [63, -127, 31, 1]);
        assert_eq!(s[0], s[1]);
    }
}
