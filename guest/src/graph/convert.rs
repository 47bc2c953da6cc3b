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
    Activation, ConvGeom, ConvLayer, Int8Layer, Layer, Model, ModelError, PoolGeom, PoolI8,
    PoolKind,
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
    #[error(
        "layer {layer} ({op}) needs a [steps, features] tensor — the model input or a recurrent layer with `sequence: true` — but receives shape {found:?}; give the model input a 2-D shape (e.g. `kiln train --shape 8x8`)"
    )]
    NotSequence {
        layer: usize,
        op: &'static str,
        found: Vec<usize>,
    },
    #[error("layer {layer} (reshape): shape {shape:?} does not hold the row's {width} values")]
    Reshape {
        layer: usize,
        shape: Vec<usize>,
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
    #[error("layer {layer} ({op}) joins tensors: it needs a graph model (format 2, with `wiring`)")]
    NeedsGraph { layer: usize, op: &'static str },
    #[error(
        "graph format {format} with {wiring} wiring entries for {layers} layers (format 1: none; format 2: one per layer)"
    )]
    Wiring {
        format: u32,
        wiring: usize,
        layers: usize,
    },
    #[error("layer {layer} ({op}) reads {found} tensors, expected {expected}")]
    Arity {
        layer: usize,
        op: &'static str,
        found: usize,
        expected: &'static str,
    },
    #[error(
        "layer {layer} ({op}) reads `{tensor}`, which is neither the input nor an earlier layer's output"
    )]
    UnknownTensor {
        layer: usize,
        op: &'static str,
        tensor: String,
    },
    #[error(
        "layer {layer} ({op}) reads `{tensor}`, which layer {by} writes later: a cycle, or layers out of order"
    )]
    Cycle {
        layer: usize,
        op: &'static str,
        tensor: String,
        by: usize,
    },
    #[error(
        "layer {layer} ({op}) writes `{tensor}`, a name the input or an earlier layer already has"
    )]
    DuplicateTensor {
        layer: usize,
        op: &'static str,
        tensor: String,
    },
    #[error("`{tensor}` is computed but never read: a model has one output, the last layer's")]
    UnusedTensor { tensor: String },
    #[error(
        "layer {layer} ({op}): tensor `{tensor}` value {index} is {value}, which is not a node, tree, entry or target index"
    )]
    Index {
        layer: usize,
        op: &'static str,
        tensor: String,
        index: usize,
        value: i32,
    },
    #[error("layer {layer} ({op}): inputs of shapes {shapes:?} do not fit ({expected})")]
    Operands {
        layer: usize,
        op: &'static str,
        shapes: Vec<Vec<usize>>,
        expected: &'static str,
    },
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
    let input = Flow {
        width: input_len,
        shape: graph.input.shape.clone(),
        quant: int8::QuantState::F32,
    };
    let model = if graph.wiring.is_empty() && graph.format == super::FORMAT_VERSION {
        let mut flow = input;
        let mut layers = Vec::new();
        for (index, spec) in graph.layers.iter().enumerate() {
            let (layer, next) = step(tensors, index, spec, &flow, int8_layer)?;
            layers.extend(layer);
            flow = next;
        }
        Model::new(input_len, layers)?
    } else {
        #[cfg(feature = "dag")]
        {
            super::wired::convert(graph, input, |index, spec, flow| {
                step(tensors, index, spec, flow, int8_layer)
            })?
        }
        // A build without graph models (the browser package).
        #[cfg(not(feature = "dag"))]
        return Err(ConvertError::Wiring {
            format: graph.format,
            wiring: graph.wiring.len(),
            layers: graph.layers.len(),
        });
    };
    let labels = graph.labels.len();
    if labels != 0 && labels != model.output_len() {
        return Err(ConvertError::Labels {
            labels,
            outputs: model.output_len(),
        });
    }
    Ok(model)
}

/// What flows along one tensor of a graph: its values per row, its row
/// shape (image layers need `[C, H, W]`) and its quantization.
#[derive(Debug, Clone)]
pub(super) struct Flow {
    pub(super) width: usize,
    pub(super) shape: Vec<usize>,
    pub(super) quant: int8::QuantState,
}

/// Converts layer `index` (`spec`) reading the tensor `flow`: its kernel
/// layer (none for `flatten`, a reshape) and the tensor it writes. The
/// joining layers are the graph converter's ([`super::wired`]).
fn step(
    tensors: &BTreeMap<String, Tensor>,
    index: usize,
    spec: &LayerSpec,
    flow: &Flow,
    int8_layer: Int8Fn,
) -> Result<(Option<Layer<'static>>, Flow), ConvertError> {
    let Flow {
        mut width,
        mut shape,
        mut quant,
    } = flow.clone();
    let op = spec.op();
    let at = LayerTensors {
        tensors,
        layer: index,
        op,
    };
    let activation = |kind| Layer::Activation { kind, len: width };
    let conv = |layer| Layer::conv(index, layer);
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
            let flow = Flow {
                shape: vec![width],
                ..flow.clone()
            };
            return Ok((None, flow));
        }
        LayerSpec::Reshape { shape: to } => {
            let values = to.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if to.is_empty() || to.contains(&0) || values != Some(width) {
                return Err(ConvertError::Reshape {
                    layer: index,
                    shape: to.clone(),
                    width,
                });
            }
            let flow = Flow {
                shape: to.clone(),
                ..flow.clone()
            };
            return Ok((None, flow));
        }
        LayerSpec::Add | LayerSpec::Mul | LayerSpec::Concat => {
            return Err(ConvertError::NeedsGraph { layer: index, op });
        }
        LayerSpec::Rnn {
            hidden,
            w,
            r,
            b,
            direction,
            sequence,
            w_scale,
            r_scale,
        }
        | LayerSpec::Lstm {
            hidden,
            w,
            r,
            b,
            direction,
            sequence,
            w_scale,
            r_scale,
        }
        | LayerSpec::Gru {
            hidden,
            w,
            r,
            b,
            direction,
            sequence,
            w_scale,
            r_scale,
            ..
        } => {
            let names = [w, r, b].map(String::as_str);
            let scales = [w_scale, r_scale].map(Option::as_deref);
            let fields = (*hidden, names, scales, *direction, *sequence);
            let (layer, out) = super::recurrent::layer(&at, spec, fields, &shape)?;
            shape = out;
            layer
        }
        LayerSpec::TreeEnsemble { .. } => super::trees::layer(&at, spec, width)?,
        LayerSpec::Conv2d {
            weight,
            bias,
            stride,
            padding,
            pads,
            dilation,
            groups,
        } => {
            let (in_c, in_h, in_w) = image()?;
            if *groups == 0 || !in_c.is_multiple_of(*groups) {
                return Err(ModelError::Geometry { layer: index }.into());
            }
            let (w, (out_c, kh, kw)) = at.conv_weight(weight, in_c / groups)?;
            let b = at.vector(bias, out_c)?;
            let geom = ConvGeom::new([in_c, in_h, in_w, out_c, kh, kw, *stride, *padding])
                .with_pads(pads.unwrap_or([*padding; 4]))
                .with_dilation(*dilation)
                .with_groups(*groups);
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
                conv(ConvLayer::Pool { kind, geom })?
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
            conv(ConvLayer::PRelu {
                inner: width / channels,
                slope: at.f32s(slope, s)?.to_vec().into(),
            })?
        }
        LayerSpec::Clip { min, max } => conv(ConvLayer::Clip {
            min: *min,
            max: *max,
            len: width,
        })?,
        LayerSpec::HardSigmoid { alpha, beta } => conv(ConvLayer::HardSigmoid {
            alpha: *alpha,
            beta: *beta,
            len: width,
        })?,
        LayerSpec::HardSwish => conv(ConvLayer::HardSwish { len: width })?,
        LayerSpec::GlobalAvgPool { channels } => conv(ConvLayer::GlobalAvgPool {
            channels: *channels,
            inner: width / divisor(index, op, "channels", *channels, width)?,
        })?,
    };
    if !matches!(layer, Layer::Int8(_)) {
        quant = int8::QuantState::F32;
    }
    width = layer.output_len();
    // Every layer but dense and global pooling keeps the image's shape.
    if !matches!(
        layer,
        Layer::Conv(
            ConvLayer::Conv2d { .. }
                | ConvLayer::Pool { .. }
                | ConvLayer::PRelu { .. }
                | ConvLayer::Clip { .. }
                | ConvLayer::HardSigmoid { .. }
                | ConvLayer::HardSwish { .. },
            _
        ) | Layer::Int8(
            Int8Layer::Conv(_)
                | Int8Layer::Pool(_)
                | Int8Layer::Quantize { .. }
                | Int8Layer::QuantizeDynamic { .. }
        ) | Layer::Activation { .. }
            | Layer::Recurrent(..)
            | Layer::Standardize { .. }
            | Layer::LeakyRelu { .. }
            | Layer::GroupSoftmax { .. }
            | Layer::ScaleShift { .. }
    ) {
        shape = vec![width];
    }
    Ok((
        Some(layer),
        Flow {
            width,
            shape,
            quant,
        },
    ))
}
