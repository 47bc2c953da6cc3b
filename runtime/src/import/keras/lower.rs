//! Lowering the Keras layers into kiln layers.
//!
//! Every Keras tensor becomes a [`Val`]: the kiln tensor holding it, its
//! Keras per-row shape and how kiln holds those values ([`Order`]: Keras's
//! own row-major order, or the channel planes of a channels-last image,
//! which is how kiln's image layers keep it). A layer loads the `Val` it
//! reads into the lowering's current state, appends its ops, and leaves
//! its output there. Layout rarely costs a layer: a dense layer after a
//! flattened image has its kernel rows permuted instead; only a
//! multi-channel image that arrives channels-last (the model input, or a
//! `Reshape` of a dense output) is transposed, by a one-hot convolution
//! (`image.rs`). Batch normalization, `Rescaling` and `Normalization` are
//! one per-element affine map, folded into the dense or convolution layer
//! that makes their input when nothing else reads it, and a per-channel
//! `scale_shift` otherwise. A model whose ops each read the one before is
//! a chain (format 1); one with branches and joins (`join.rs`) a graph
//! (format 2). (Convolution and pooling live in `image.rs`, the affine
//! layers in `affine.rs`, the values and the accessors in `state.rs`.)

use std::collections::{BTreeMap, HashMap};

use ndarray::Array2;
use serde_json::Value;

use super::config::{KLayer, Saved};
use super::state::{Lowering, Op, Order, Val};
use super::{KerasError, Options, join, refuse};
use crate::import::common::{LayerTensors, pool, task};
use crate::model::{
    FORMAT_VERSION, GRAPH_FORMAT_VERSION, Graph, InputSpec, LayerSpec, ModelFile, Wires,
};

impl Lowering<'_> {
    /// Appends the ops of Keras activation `name`.
    pub(super) fn activation(&mut self, name: &Value) -> Result<(), KerasError> {
        let Some(name) = name.as_str() else {
            return Err(self.err(format!(
                "activation {name} is a custom function; kiln supports Keras's named activations"
            )));
        };
        let op = match name {
            "linear" | "identity" => return Ok(()),
            "relu" => LayerSpec::Relu,
            "sigmoid" => LayerSpec::Sigmoid,
            "tanh" => LayerSpec::Tanh,
            "relu6" => LayerSpec::Clip { min: 0.0, max: 6.0 },
            "leaky_relu" => LayerSpec::LeakyRelu { alpha: 0.2 },
            // Keras 3: relu6(x + 3) / 6; Keras 2: clip(0.2x + 0.5, 0, 1).
            "hard_sigmoid" if self.keras3() => LayerSpec::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5,
            },
            "hard_sigmoid" => LayerSpec::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            "hard_swish" | "hard_silu" => LayerSpec::HardSwish,
            "softmax" | "log_softmax" => {
                let log = name == "log_softmax";
                return self.softmax(log);
            }
            other => {
                return Err(self.err(format!(
                    "activation `{other}` is not supported; kiln has linear, relu, relu6, \
                     leaky_relu, sigmoid, hard_sigmoid, hard_swish, tanh, softmax and \
                     log_softmax"
                )));
            }
        };
        self.push(Op::Plain(op));
        Ok(())
    }

    fn keras3(&self) -> bool {
        self.layer.config.get("dtype").is_some_and(Value::is_object)
    }

    /// Softmax over the last axis.
    fn softmax(&mut self, log: bool) -> Result<(), KerasError> {
        let last = self.keras.last().copied().unwrap_or(1);
        let whole = last == self.width();
        if !whole && self.order != Order::Plain {
            return Err(self.err(
                "softmax over the channels of an image is not supported (flatten or pool first)",
            ));
        }
        let group = (!whole).then_some(last);
        self.push(Op::Plain(match (log, group) {
            (false, None) => LayerSpec::Softmax,
            (false, Some(group)) => LayerSpec::GroupSoftmax { group },
            (true, group) => LayerSpec::LogSoftmax { group },
        }));
        Ok(())
    }

    fn dense(&mut self, w: &[ndarray::ArrayD<f32>]) -> Result<(), KerasError> {
        let units = self.usize_field("units")?;
        let use_bias = self.bool_field("use_bias", true)?;
        let last = self.keras.last().copied().unwrap_or(1);
        if last != self.width() {
            return Err(self.err(format!(
                "a dense layer over rows of shape {:?} (it would act on the last axis only); \
                 add a Flatten before it",
                self.keras
            )));
        }
        let (kernel, bias) = match (w, use_bias) {
            ([k, b], true) => (k, b.iter().copied().collect()),
            ([k], false) => (k, vec![0.0; units]),
            _ => {
                return Err(self.err(format!(
                    "{} weights saved; a Dense layer with use_bias={use_bias} has {}",
                    w.len(),
                    1 + usize::from(use_bias)
                )));
            }
        };
        if kernel.shape() != [last, units] || bias.len() != units {
            return Err(self.err(format!(
                "kernel of shape {:?} and bias of {} values; expected [{last}, {units}] and {units}",
                kernel.shape(),
                bias.len()
            )));
        }
        let index = self.keras_index();
        let weight = Array2::from_shape_fn((units, last), |(o, k)| kernel[[index[k], o]]);
        self.push(Op::Dense { weight, bias });
        self.keras = vec![units];
        self.order = Order::Plain;
        self.kiln = vec![units];
        let act = self.layer.config.get("activation").cloned();
        self.activation(&act.unwrap_or(Value::from("linear")))
    }

    fn reshape(&mut self) -> Result<(), KerasError> {
        let v = self.field("target_shape")?;
        let dims: Option<Vec<i64>> = v
            .as_array()
            .map(|a| a.iter().map(Value::as_i64).collect())
            .unwrap_or(None);
        let dims = dims.ok_or_else(|| self.err(format!("`target_shape` = {v} is not a list")))?;
        let width = self.width();
        let known: Option<usize> = dims
            .iter()
            .filter(|&&d| d != -1)
            .try_fold(1usize, |a, &d| a.checked_mul(usize::try_from(d).ok()?));
        let free = dims.iter().filter(|&&d| d == -1).count();
        let shape: Option<Vec<usize>> = match (known, free) {
            (Some(k), 0) if k == width => dims.iter().map(|&d| usize::try_from(d).ok()).collect(),
            (Some(k), 1) if k > 0 && width.is_multiple_of(k) => Some(
                dims.iter()
                    .map(|&d| if d == -1 { width / k } else { d as usize })
                    .collect(),
            ),
            _ => None,
        };
        self.keras = shape
            .filter(|s| !s.contains(&0))
            .ok_or_else(|| self.err(format!("`target_shape` {v} does not hold {width} values")))?;
        Ok(())
    }

    /// Lowers the current layer: loads what it reads, appends its ops,
    /// and records its output.
    fn run(&mut self, saved: &Saved, notes: &mut Vec<String>) -> Result<(), KerasError> {
        if let Some(custom) = &self.layer.custom {
            return Err(refuse::custom(self.layer, custom));
        }
        let mut inputs = self.inputs()?;
        if self.layer.op {
            self.operation(inputs)?;
        } else if join::JOINS.contains(&self.layer.class.as_str()) {
            self.join(inputs)?;
        } else if join::REFUSED.contains(&self.layer.class.as_str()) {
            return Err(refuse::unsupported(self.layer));
        } else {
            let (Some(x), 1) = (inputs.pop(), self.layer.reads.len()) else {
                return Err(self.err(format!(
                    "it reads {} tensors {:?}; this layer takes one",
                    self.layer.reads.len(),
                    self.layer.reads
                )));
            };
            self.load(x);
            let padding = matches!(
                self.layer.class.as_str(),
                "ZeroPadding2D"
                    | "Conv2D"
                    | "Convolution2D"
                    | "DepthwiseConv2D"
                    | "SeparableConv2D"
                    | "SeparableConvolution2D"
            );
            if self.pads != [0; 4] && !padding {
                return Err(self.err(
                    "it reads a ZeroPadding2D's output; kiln folds zero padding only into the \
                     convolution that reads it",
                ));
            }
            self.layer(saved, notes)?;
        }
        let name = self.layer.name.clone();
        let v = self.val();
        self.values.insert(name, v);
        Ok(())
    }

    fn layer(&mut self, saved: &Saved, notes: &mut Vec<String>) -> Result<(), KerasError> {
        let class = self.layer.class.as_str();
        // A normalization's third variable is its (integer) sample count.
        let most = if class == "Normalization" {
            2
        } else {
            usize::MAX
        };
        let weights = saved.weights(self.layer, most)?;
        match class {
            "Dense" => self.dense(&weights)?,
            "Activation" => {
                let a = self.field("activation")?.clone();
                self.activation(&a)?;
            }
            "ReLU" => {
                let slope = self.f32_field("negative_slope", 0.0)?;
                let max = self.f32_field("max_value", f32::INFINITY)?;
                if self.f32_field("threshold", 0.0)? != 0.0 {
                    return Err(self.err("a non-zero `threshold` is not supported"));
                }
                let op = match (slope == 0.0, max == f32::INFINITY) {
                    (true, true) => LayerSpec::Relu,
                    (true, false) => LayerSpec::Clip { min: 0.0, max },
                    (false, true) => LayerSpec::LeakyRelu { alpha: slope },
                    (false, false) => {
                        return Err(self.err("`negative_slope` with `max_value` is not supported"));
                    }
                };
                self.push(Op::Plain(op));
            }
            "LeakyReLU" => {
                let alpha = match self.layer.config.get("negative_slope") {
                    Some(_) => self.f32_field("negative_slope", 0.3)?,
                    None => self.f32_field("alpha", 0.3)?,
                };
                self.push(Op::Plain(LayerSpec::LeakyRelu { alpha }));
            }
            "Softmax" => {
                self.last_axis("axis", Value::from(-1))?;
                self.softmax(false)?;
            }
            "Flatten" => self.keras = vec![self.width()],
            "Reshape" => self.reshape()?,
            "Dropout"
            | "SpatialDropout1D"
            | "SpatialDropout2D"
            | "SpatialDropout3D"
            | "GaussianNoise"
            | "GaussianDropout"
            | "AlphaDropout"
            | "ActivityRegularization" => {
                notes.push(format!(
                    "layer {:?} ({class}) does nothing at inference: dropped",
                    self.layer.name
                ));
            }
            "BatchNormalization" => self.batch_norm(&weights)?,
            "Rescaling" => self.rescaling()?,
            "Normalization" => self.normalization(&weights)?,
            "Conv2D" | "Convolution2D" => self.conv(&weights)?,
            "DepthwiseConv2D" => self.depthwise(&weights)?,
            "SeparableConv2D" | "SeparableConvolution2D" => self.separable(&weights)?,
            "ZeroPadding2D" => self.zero_padding()?,
            "SimpleRNN" | "GRU" | "LSTM" | "Bidirectional" => self.recurrent(&weights)?,
            "MaxPooling2D" | "MaxPool2D" | "AveragePooling2D" | "AvgPool2D" => self.pool()?,
            "GlobalAveragePooling2D" | "GlobalAvgPool2D" => self.global_pool()?,
            _ => return Err(refuse::unsupported(self.layer)),
        }
        Ok(())
    }
}

/// Lowers a saved model's layers into a kiln model file.
pub(super) fn lower(
    saved: &Saved,
    options: &Options,
    notes: &mut Vec<String>,
) -> Result<ModelFile, KerasError> {
    let (input_name, dims) = &saved.net.input;
    let width = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if width.is_none_or(|w| w > crate::kiln_guest::MAX_WIDTH) {
        return Err(KerasError::Config {
            file: "the model config".into(),
            problem: format!("rows of shape {dims:?} are too large"),
        });
    }
    let first = KLayer {
        name: input_name.clone(),
        class: "InputLayer".into(),
        config: Value::Null,
        custom: None,
        op: false,
        reads: Vec::new(),
        scalars: Vec::new(),
    };
    let mut uses = HashMap::new();
    for layer in &saved.net.layers {
        for name in &layer.reads {
            *uses.entry(name.clone()).or_default() += 1;
        }
    }
    let width = width.unwrap_or(0);
    let input = Val {
        id: 0,
        keras: dims.clone(),
        order: Order::Plain,
        kiln: vec![width],
        pads: [0; 4],
        elementwise: true,
        sole: true,
    };
    let mut l = Lowering {
        layer: &first,
        keras: Vec::new(),
        order: Order::Plain,
        kiln: Vec::new(),
        id: 0,
        pads: [0; 4],
        elementwise: true,
        sole: true,
        input_dims: vec![width],
        ops: Vec::new(),
        wires: Vec::new(),
        values: HashMap::from([(input_name.clone(), input.clone())]),
        uses,
    };
    l.load(input);
    for layer in &saved.net.layers {
        l.layer = layer;
        l.run(saved, notes)?;
    }
    let err = |problem: &str| KerasError::Layer {
        layer: l.layer.name.clone(),
        class: l.layer.class.clone(),
        problem: problem.into(),
    };
    if l.pads != [0; 4] {
        return Err(err(
            "the model's output is a ZeroPadding2D's; end the model with a \
                        convolution, Flatten + Dense or a global pool",
        ));
    }
    if l.id != l.ops.len() || l.ops.is_empty() {
        return Err(err(
            "the model's output is not the last layer's computation (or the \
                        model computes nothing)",
        ));
    }
    if let Order::Planes { h, w, c } = l.order
        && h * w > 1
        && c > 1
    {
        return Err(err(
            "the model's output is a multi-channel image, which kiln holds channel planes \
             first; end the model with Flatten + Dense or a global pool",
        ));
    }
    finish(l.ops, l.wires, input_name.clone(), l.input_dims, options)
}

fn finish(
    ops: Vec<Op>,
    wires: Vec<Vec<usize>>,
    input: String,
    dims: Vec<usize>,
    options: &Options,
) -> Result<ModelFile, KerasError> {
    let ends_in_softmax = matches!(ops.last(), Some(Op::Plain(LayerSpec::Softmax)));
    let chain = wires.iter().enumerate().all(|(k, w)| *w == [k]);
    let name = |t: usize| match t {
        0 => input.clone(),
        t => format!("layer{}", t - 1),
    };
    let wiring: Vec<Wires> = if chain {
        Vec::new()
    } else {
        wires
            .iter()
            .enumerate()
            .map(|(k, w)| Wires {
                inputs: w.iter().map(|&t| name(t)).collect(),
                output: name(k + 1),
            })
            .collect()
    };
    let mut tensors = BTreeMap::new();
    let mut layers = Vec::with_capacity(ops.len());
    for (index, op) in ops.into_iter().enumerate() {
        let mut t = LayerTensors {
            tensors: &mut tensors,
            index,
        };
        layers.push(match op {
            Op::Dense { weight, bias } => t.dense(weight, bias),
            Op::Conv {
                weight,
                shape,
                bias,
                stride,
                pads,
                dilation,
                groups,
            } => t.conv2d(
                (shape.to_vec(), weight),
                bias,
                stride,
                pads,
                dilation,
                groups,
            ),
            Op::Pool {
                max,
                kernel,
                stride,
            } => pool(max, kernel, stride),
            Op::GlobalAvgPool { channels } => LayerSpec::GlobalAvgPool { channels },
            Op::ScaleShift { scale, shift } => t.scale_shift(scale, shift),
            Op::Reshape(shape) => LayerSpec::Reshape { shape },
            Op::Recurrent(rec) => rec.spec(&mut t),
            Op::Plain(spec) => spec,
        });
    }
    let task = task(options.task, ends_in_softmax);
    let graph = Graph {
        format: if chain {
            FORMAT_VERSION
        } else {
            GRAPH_FORMAT_VERSION
        },
        name: options.name.clone(),
        version: "1".into(),
        task,
        input: InputSpec {
            name: input,
            shape: dims,
            features: Vec::new(),
        },
        target: None,
        labels: Vec::new(),
        layers,
        wiring,
    };
    let model = ModelFile { graph, tensors };
    model.to_kernel()?;
    Ok(model)
}
