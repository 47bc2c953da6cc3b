//! [`to_kernel`]: a model file's [`Graph`] and tensors → the kernel's
//! [`Model`], checking every tensor's shape against its layer and every
//! layer's width against the one before. Every way a graph can be wrong is a
//! [`ConvertError`] naming the layer, op and tensor.

use std::collections::BTreeMap;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::layer_tensors::LayerTensors;
use super::{Graph, LayerSpec, Tensor, int8};
use crate::{
    Activation, ConvGeom, Int8Layer, Layer, Model, ModelError, PoolGeom, PoolI8, PoolKind,
};

/// Why a graph and its tensors do not make a model the kernel can run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConvertError {
    #[error("layer {layer} ({op}): tensor `{tensor}` has dtype {found}, expected {expected}")]
    TensorDtype {
        layer: usize,
        op: &'static str,
        tensor: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("layer {layer} ({op}): {what}")]
    Quant {
        layer: usize,
        op: &'static str,
        what: String,
    },
    #[error("layer {layer} ({op}): tensor `{tensor}` is missing")]
    MissingTensor {
        layer: usize,
        op: &'static str,
        tensor: String,
    },
    #[error("layer {layer} ({op}): tensor `{tensor}` has shape {found:?}, expected {expected}")]
    TensorShape {
        layer: usize,
        op: &'static str,
        tensor: String,
        found: Vec<usize>,
        expected: String,
    },
    #[error(
        "layer {layer} ({op}) needs a [channels, height, width] input, but receives shape {found:?}; give the model input a 3-D shape (e.g. `kiln train --shape 1x8x8`)"
    )]
    NotImage {
        layer: usize,
        op: &'static str,
        found: Vec<usize>,
    },
    #[error("layer {layer} ({op}): {param} = {value} must divide the row of {width} values")]
    Divide {
        layer: usize,
        op: &'static str,
        param: &'static str,
        value: usize,
        width: usize,
    },
    #[error("input shape {0:?} is empty or overflows")]
    InputShape(Vec<usize>),
    #[error("{labels} labels for {outputs} outputs")]
    Labels { labels: usize, outputs: usize },
    #[error("{features} feature names for {inputs} inputs")]
    Features { features: usize, inputs: usize },
    /// A quantized layer given to [`to_kernel_float`].
    #[error(
        "layer {layer} ({op}): int8 layers are derived by the host; load the module `kiln build` makes from this file instead"
    )]
    Int8 { layer: usize, op: &'static str },
    #[error("invalid graph: {0}")]
    Graph(#[from] ModelError),
}

/// `value` if it is positive and divides `width`.
fn divisor(
    layer: usize,
    op: &'static str,
    param: &'static str,
    value: usize,
    width: usize,
) -> Result<usize, ConvertError> {
    if value == 0 || !width.is_multiple_of(value) {
        return Err(ConvertError::Divide {
            layer,
            op,
            param,
            value,
            width,
        });
    }
    Ok(value)
}

impl Graph {
    /// Values per input row.
    pub fn input_len(&self) -> Result<usize, ConvertError> {
        self.input
            .values_per_row()
            .filter(|&n| n > 0)
            .ok_or_else(|| ConvertError::InputShape(self.input.shape.clone()))
    }
}

/// Builds the graph the kernel runs, checking every tensor's shape
/// against its layer and every layer's width against the one before.
pub fn to_kernel(
    graph: &Graph,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<Model<'static>, ConvertError> {
    convert(graph, tensors, int8::layer)
}

/// [`to_kernel`] for float graphs only: quantized layers are refused with
/// [`ConvertError::Int8`]. The int8 derivation (fixed-point multipliers,
/// float messages) is then not linked, which keeps the browser package
/// small; the page loads quantized models from their modules instead.
pub fn to_kernel_float(
    graph: &Graph,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<Model<'static>, ConvertError> {
    convert(graph, tensors, |_, layer, spec, _, _, _| {
        Err(ConvertError::Int8 {
            layer,
            op: spec.op(),
        })
    })
}

/// How one quantized layer is converted: [`int8::layer`] or a refusal.
/// Arguments: tensors, layer index, spec, input width, input shape, and the
/// input's quantization (updated to the output's).
type Int8Fn = fn(
    &BTreeMap<String, Tensor>,
    usize,
    &LayerSpec,
    usize,
    &[usize],
    &mut int8::QuantState,
) -> Result<Layer<'static>, ConvertError>;

fn convert(
    graph: &Graph,
    tensors: &BTreeMap<String, Tensor>,
    int8_layer: Int8Fn,
) -> Result<Model<'static>, ConvertError> {
    let input_len = graph.input_len()?;
    if !graph.input.features.is_empty() && graph.input.features.len() != input_len {
        return Err(ConvertError::Features {
            features: graph.input.features.len(),
            inputs: input_len,
        });
    }
    let mut width = input_len;
    // The logical shape of one row, for the layers that need an image.
    let mut shape = graph.input.shape.clone();
    let mut layers = Vec::new();
    let mut quant = int8::QuantState::F32;
    for (index, spec) in graph.layers.iter().enumerate() {
        let op = spec.op();
        let at = LayerTensors {
            tensors,
            layer: index,
            op,
        };
        let activation = |kind| Layer::Activation { kind, len: width };
        let image = || match shape.as_slice() {
            &[c, h, w] => Ok((c, h, w)),
            _ => Err(ConvertError::NotImage {
                layer: index,
                op,
                found: shape.clone(),
            }),
        };
        let layer = match spec {
            LayerSpec::Standardize { mean, std } => {
                let m = at.f32s(mean, at.vector(mean, width)?)?;
                let s = at.f32s(std, at.vector(std, width)?)?;
                Layer::Standardize {
                    mean: m.to_vec().into(),
                    inv_std: s.iter().map(|&v| 1.0 / v).collect::<Vec<_>>().into(),
                }
            }
            LayerSpec::Dense { weight, bias } => {
                let (w, outputs) = at.dense_weight(weight, width)?;
                let b = at.f32s(bias, at.vector(bias, outputs)?)?;
                let w = at.f32s(weight, w)?;
                Layer::dense_from_rows(index, width, outputs, w, b.to_vec().into())?
            }
            LayerSpec::Quantize { .. }
            | LayerSpec::QuantizeDynamic
            | LayerSpec::DenseInt8 { .. }
            | LayerSpec::Conv2dInt8 { .. } => {
                let layer = int8_layer(tensors, index, spec, width, &shape, &mut quant)?;
                if let Layer::Int8(Int8Layer::Conv(c)) = &layer {
                    shape = vec![c.geom.out_c, c.geom.out_h(), c.geom.out_w()];
                }
                layer
            }
            LayerSpec::Relu => activation(Activation::Relu),
            LayerSpec::Sigmoid => activation(Activation::Sigmoid),
            LayerSpec::Tanh => activation(Activation::Tanh),
            LayerSpec::Softmax => activation(Activation::Softmax),
            LayerSpec::Flatten => {
                shape = vec![width];
                continue;
            }
            LayerSpec::Conv2d {
                weight,
                bias,
                stride,
                padding,
            } => {
                let (in_c, in_h, in_w) = image()?;
                let (w, (out_c, kh, kw)) = at.conv_weight(weight, in_c)?;
                let b = at.vector(bias, out_c)?;
                let geom = ConvGeom::new([in_c, in_h, in_w, out_c, kh, kw, *stride, *padding]);
                let (w, b) = (at.f32s(weight, w)?, at.f32s(bias, b)?);
                let layer = Layer::conv2d_from_filters(index, geom, w, b.to_vec().into())?;
                shape = vec![out_c, geom.out_h(), geom.out_w()];
                layer
            }
            LayerSpec::MaxPool { kernel, stride } | LayerSpec::AvgPool { kernel, stride } => {
                let (c, h, w) = image()?;
                let kind = match spec {
                    LayerSpec::MaxPool { .. } => PoolKind::Max,
                    _ => PoolKind::Avg,
                };
                let geom = PoolGeom::new([c, h, w, *kernel, stride.unwrap_or(*kernel)]);
                geom.check().ok_or(ModelError::Geometry { layer: index })?;
                shape = vec![c, geom.out_h(), geom.out_w()];
                // After an int8 layer's int8 output, pool the int8 values.
                if matches!(quant, int8::QuantState::Static { .. }) {
                    Layer::Int8(Int8Layer::Pool(PoolI8::new(index, kind, geom)?))
                } else {
                    Layer::Pool { kind, geom }
                }
            }
            LayerSpec::LeakyRelu { alpha } => Layer::LeakyRelu {
                alpha: *alpha,
                len: width,
            },
            LayerSpec::GroupSoftmax { group } => Layer::GroupSoftmax {
                width,
                group: divisor(index, op, "group", *group, width)?,
                log: false,
            },
            LayerSpec::LogSoftmax { group } => Layer::GroupSoftmax {
                width,
                group: divisor(index, op, "group", group.unwrap_or(width), width)?,
                log: true,
            },
            LayerSpec::ScaleShift { scale, shift } => {
                let s = at.get(scale)?;
                let &[channels] = s.shape.as_slice() else {
                    return Err(at.shape_err(scale, &s.shape, "[channels]".into()));
                };
                divisor(index, op, "channels", channels, width)?;
                let t = at.vector(shift, channels)?;
                Layer::ScaleShift {
                    inner: width / channels,
                    scale: at.f32s(scale, s)?.to_vec().into(),
                    shift: at.f32s(shift, t)?.to_vec().into(),
                }
            }
            LayerSpec::PRelu { slope } => {
                let s = at.get(slope)?;
                let &[channels] = s.shape.as_slice() else {
                    return Err(at.shape_err(slope, &s.shape, "[channels]".into()));
                };
                divisor(index, op, "channels", channels, width)?;
                Layer::PRelu {
                    inner: width / channels,
                    slope: at.f32s(slope, s)?.to_vec().into(),
                }
            }
            LayerSpec::GlobalAvgPool { channels } => Layer::GlobalAvgPool {
                channels: *channels,
                inner: width / divisor(index, op, "channels", *channels, width)?,
            },
        };
        if !matches!(layer, Layer::Int8(_)) {
            quant = int8::QuantState::F32;
        }
        width = layer.output_len();
        if !matches!(
            layer,
            Layer::Conv2d { .. }
                | Layer::Pool { .. }
                | Layer::Int8(
                    Int8Layer::Conv(_)
                        | Int8Layer::Pool(_)
                        | Int8Layer::Quantize { .. }
                        | Int8Layer::QuantizeDynamic { .. }
                )
                | Layer::Activation { .. }
                | Layer::Standardize { .. }
                | Layer::LeakyRelu { .. }
                | Layer::PRelu { .. }
                | Layer::GroupSoftmax { .. }
                | Layer::ScaleShift { .. }
        ) {
            shape = vec![width];
        }
        layers.push(layer);
    }
    let model = Model::new(input_len, layers)?;
    let labels = graph.labels.len();
    if labels != 0 && labels != model.output_len() {
        return Err(ConvertError::Labels {
            labels,
            outputs: model.output_len(),
        });
    }
    Ok(model)
}
