//! Quantized layers of a model file → the guest's [`Int8Layer`]s.
//!
//! The file keeps what a person can check (int8 weights in PyTorch layout,
//! float scales, the true i32 bias); this derives what the kernel runs:
//! packed weights, the input zero point folded into the bias, and each
//! channel's requantize multiplier as an integer and a shift. The derivation
//! runs on the host once per build, so the integers in the module — and the
//! results — are the same everywhere.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::string::String;
use std::{format, vec};

use super::layer_tensors::LayerTensors;
use super::{ConvertError, LayerSpec, QuantParams, Tensor};
use crate::Layer;
use crate::{ConvI8, DenseI8, Int8Layer, Int8Output};

/// The quantization of the values flowing into the next layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum QuantState {
    F32,
    Static { scale: f32, zero_point: i32 },
    Dynamic,
}

/// `real_multiplier ≈ m / 2^shift` with `m` in `[2^30, 2^31)` (smaller only
/// when the shift is capped at 62), the fixed-point form of
/// `input_scale · weight_scale / output_scale`. `None` when the multiplier is
/// not a positive finite number below 2^29.
pub(super) fn fixed_point_multiplier(real: f64) -> Option<(i32, i32)> {
    if !(real.is_finite() && real > 0.0 && real < (1u64 << 29) as f64) {
        return None;
    }
    let mut shift = 30 - real.log2().floor() as i32;
    while shift > 1 && real * 2f64.powi(shift) >= 2147483648.0 {
        shift -= 1;
    }
    while shift < 62 && real * 2f64.powi(shift) < 1073741824.0 {
        shift += 1;
    }
    let shift = shift.clamp(1, 62);
    let mut m = (real * 2f64.powi(shift)).round() as i64;
    let mut shift = shift;
    if m >= 1 << 31 {
        m >>= 1;
        shift -= 1;
    }
    (shift >= 1).then_some((m as i32, shift))
}

fn positive(s: f32) -> bool {
    s.is_finite() && s > 0.0
}

/// Converts one quantized layer spec; `width` is its input width and `quant`
/// the quantization of its input (updated to that of its output).
pub(super) fn layer(
    tensors: &BTreeMap<String, Tensor>,
    index: usize,
    spec: &LayerSpec,
    width: usize,
    shape: &[usize],
    quant: &mut QuantState,
) -> Result<Layer<'static>, ConvertError> {
    let op = spec.op();
    let at = LayerTensors {
        tensors,
        layer: index,
        op,
    };
    if let LayerSpec::Conv2dInt8 { .. } = spec {
        let &[c, h, w] = shape else {
            return Err(ConvertError::NotImage {
                layer: index,
                op,
                found: shape.to_vec(),
            });
        };
        return conv_layer(at, spec, (c, h, w), quant);
    }
    let domain_err = |found: &'static str| {
        ConvertError::Graph(crate::ModelError::Domain {
            layer: index,
            expected: "int8",
            found,
        })
    };
    match spec {
        LayerSpec::Quantize { scale, zero_point } => {
            if !positive(*scale) || !positive(1.0 / *scale) {
                return Err(
                    at.quant_err(format!("scale {scale} must be a positive, finite number"))
                );
            }
            if !(-128..=127).contains(zero_point) {
                return Err(at.quant_err(format!("zero point {zero_point} must be in -128..=127")));
            }
            *quant = QuantState::Static {
                scale: *scale,
                zero_point: *zero_point,
            };
            Ok(Layer::Int8(Int8Layer::Quantize {
                len: width,
                scale: *scale,
                zero_point: *zero_point,
            }))
        }
        LayerSpec::QuantizeDynamic => {
            *quant = QuantState::Dynamic;
            Ok(Layer::Int8(Int8Layer::QuantizeDynamic { len: width }))
        }
        LayerSpec::DenseInt8 {
            weight,
            weight_scale,
            bias,
            output,
            relu,
        } => {
            let (w, outputs) = at.dense_weight(weight, width)?;
            let ws = weight_scales(&at, weight_scale, outputs)?;
            let b = at.vector(bias, outputs)?;
            let rows = at.i8s(weight, w)?;
            check_relu(&at, *relu, output)?;
            let (bias_i32, output) = match (*quant, output) {
                (QuantState::F32, _) => return Err(domain_err("f32")),
                (QuantState::Dynamic, Some(_)) => {
                    return Err(at.quant_err(
                        "a layer after dynamic quantization must output f32 (no `output`)".into(),
                    ));
                }
                (QuantState::Dynamic, None) => {
                    let fb = at.f32s(bias, b)?;
                    *quant = QuantState::F32;
                    (
                        vec![0; outputs],
                        Int8Output::Float {
                            input_scale: None,
                            weight_scale: Cow::Owned(ws.to_vec()),
                            bias: Cow::Owned(fb.to_vec()),
                        },
                    )
                }
                (QuantState::Static { scale, zero_point }, out) => {
                    let bias_q = at.i32s(bias, b)?;
                    let folded = fold_zero_point(rows, width, bias_q, zero_point, bias)
                        .map_err(|e| at.quant_err(e))?;
                    let output =
                        static_output(ws, scale, out, *relu, quant).map_err(|e| at.quant_err(e))?;
                    (folded, output)
                }
            };
            let dense =
                DenseI8::from_rows(index, width, outputs, rows, Cow::Owned(bias_i32), output)?;
            Ok(Layer::Int8(Int8Layer::Dense(dense)))
        }
        _ => unreachable!("only quantized layers are passed here"),
    }
}

/// The per-channel weight scales `name`: `channels` positive, finite values.
fn weight_scales<'t>(
    at: &LayerTensors<'t>,
    name: &str,
    channels: usize,
) -> Result<&'t [f32], ConvertError> {
    let ws = at.f32s(name, at.vector(name, channels)?)?;
    match ws.iter().enumerate().find(|(_, s)| !positive(**s)) {
        Some((o, s)) => Err(at.quant_err(format!(
            "`{name}`[{o}] = {s}: weight scales must be positive, finite numbers"
        ))),
        None => Ok(ws),
    }
}

/// A fused relu clamps int8 outputs, so it needs an int8 `output`.
fn check_relu(
    at: &LayerTensors<'_>,
    relu: bool,
    output: &Option<QuantParams>,
) -> Result<(), ConvertError> {
    if relu && output.is_none() {
        return Err(at.quant_err(
            "`relu` needs an int8 `output` to clamp; apply a relu layer after a float output instead".into(),
        ));
    }
    Ok(())
}

/// The i32 bias with the input zero point folded in, per output row of
/// `taps` int8 weights: `Σ (q − z)·w + b = Σ q·w + (b − z·Σ w)`.
fn fold_zero_point(
    rows: &[i8],
    taps: usize,
    bias_q: &[i32],
    zero_point: i32,
    bias: &str,
) -> Result<Vec<i32>, String> {
    let mut folded = Vec::with_capacity(bias_q.len());
    for (o, (row, &bq)) in rows.chunks_exact(taps.max(1)).zip(bias_q).enumerate() {
        let sum: i64 = row.iter().map(|&v| i64::from(v)).sum();
        let v = i64::from(bq) - i64::from(zero_point) * sum;
        folded.push(i32::try_from(v).map_err(|_| {
            format!(
                "`{bias}`[{o}] = {bq} overflows i32 once the input zero point is folded in; \
                 re-quantize the f32 model with this kiln (it bounds biases to 2^30)"
            )
        })?);
    }
    Ok(folded)
}

/// The output of an int8 layer after a static input quantization (`scale`):
/// requantize to `out` (updating `quant`), or dequantize to f32.
fn static_output(
    ws: &[f32],
    scale: f32,
    out: &Option<QuantParams>,
    relu: bool,
    quant: &mut QuantState,
) -> Result<Int8Output<'static>, String> {
    let Some(q) = out else {
        *quant = QuantState::F32;
        return Ok(Int8Output::Float {
            input_scale: Some(scale),
            weight_scale: Cow::Owned(ws.to_vec()),
            bias: Cow::Owned(vec![0.0; ws.len()]),
        });
    };
    if !positive(q.scale) {
        return Err(format!(
            "output scale {} must be a positive, finite number",
            q.scale
        ));
    }
    if !(-128..=127).contains(&q.zero_point) {
        return Err(format!(
            "output zero point {} must be in -128..=127",
            q.zero_point
        ));
    }
    let mut multiplier = Vec::with_capacity(ws.len());
    let mut shift = Vec::with_capacity(ws.len());
    for (o, &s) in ws.iter().enumerate() {
        let real = f64::from(scale) * f64::from(s) / f64::from(q.scale);
        let (m, n) = fixed_point_multiplier(real).ok_or_else(|| {
            format!("channel {o}: requantize multiplier {real:e} is out of range")
        })?;
        multiplier.push(m);
        shift.push(n);
    }
    *quant = QuantState::Static {
        scale: q.scale,
        zero_point: q.zero_point,
    };
    Ok(Int8Output::Int8 {
        multiplier: Cow::Owned(multiplier),
        shift: Cow::Owned(shift),
        zero_point: q.zero_point,
        relu,
    })
}

/// Converts a [`LayerSpec::Conv2dInt8`] reading a `[c, h, w]` image;
/// `quant` is the quantization of its input (updated to its output's).
fn conv_layer(
    at: LayerTensors<'_>,
    spec: &LayerSpec,
    (in_c, in_h, in_w): (usize, usize, usize),
    quant: &mut QuantState,
) -> Result<Layer<'static>, ConvertError> {
    let LayerSpec::Conv2dInt8 {
        weight,
        weight_scale,
        bias,
        stride,
        padding,
        output,
        relu,
    } = spec
    else {
        unreachable!("only conv2d_int8 is passed here");
    };
    let (w, (out_c, kh, kw)) = at.conv_weight(weight, in_c)?;
    let ws = weight_scales(&at, weight_scale, out_c)?;
    let b = at.vector(bias, out_c)?;
    let filters = at.i8s(weight, w)?;
    let bias_q = at.i32s(bias, b)?;
    check_relu(&at, *relu, output)?;
    let QuantState::Static { scale, zero_point } = *quant else {
        let found = if *quant == QuantState::F32 {
            "f32"
        } else {
            "int8 (dynamic scale)"
        };
        return Err(ConvertError::Graph(crate::ModelError::Domain {
            layer: at.layer,
            expected: "int8 (static scale)",
            found,
        }));
    };
    let geom = crate::ConvGeom::new([in_c, in_h, in_w, out_c, kh, kw, *stride, *padding]);
    let taps = in_c * kh * kw;
    let folded =
        fold_zero_point(filters, taps, bias_q, zero_point, bias).map_err(|e| at.quant_err(e))?;
    let out = static_output(ws, scale, output, *relu, quant).map_err(|e| at.quant_err(e))?;
    let conv = ConvI8::from_filters(at.layer, geom, filters, Cow::Owned(folded), zero_point, out)?;
    Ok(Layer::Int8(Int8Layer::Conv(conv)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_are_normalised_and_accurate() {
        for real in [1e-9, 0.0003, 0.02, 0.5, 0.999_999_9, 1.0, 3.7, 1000.0] {
            let (m, n) = fixed_point_multiplier(real).unwrap();
            assert!((1..=62).contains(&n), "{real}: shift {n}");
            if n < 62 {
                assert!((1 << 30..=i32::MAX).contains(&m), "{real}: m {m}");
            }
            let back = f64::from(m) / 2f64.powi(n);
            assert!(
                (back - real).abs() <= real * 1e-9 + 2f64.powi(-n),
                "{real} vs {back}"
            );
        }
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            assert_eq!(fixed_point_multiplier(bad), None);
        }
    }
}
