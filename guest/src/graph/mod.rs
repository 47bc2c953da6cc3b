//! The graph a kiln model file carries in its safetensors `__metadata__`,
//! and its conversion into the kernel's [`Model`](crate::Model) (feature
//! `graph`, which links `std`).
//!
//! Serialised as JSON under the metadata key [`METADATA_KEY`]; layers name
//! their tensors, which live in the safetensors body. Unknown fields are
//! refused so a typo never silently changes a model.
//!
//! A model is a chain of layers (format [`FORMAT_VERSION`], each layer
//! reading the one before) or a graph (format [`GRAPH_FORMAT_VERSION`]:
//! [`Graph::wiring`] names the tensors each layer reads and writes, see
//! [`wired`]). A chain is always written as format 1.
//!
//! This is the one home of the schema and of [`to_kernel`]: the host
//! (`kiln::model::ModelFile`) and the browser package
//! (`kiln_browser::load`) both read model files through it, so a page
//! builds exactly the layers — and derives exactly the int8 integers —
//! that `kiln build` embeds. The metadata a built module carries,
//! [`ModuleMeta`], is defined here too, for the same two readers.

mod convert;
mod int8;
mod layer_tensors;
mod meta;
mod recurrent;
mod tensor;
mod trees;
#[cfg(feature = "dag")]
mod wired;
#[cfg(all(test, feature = "dag"))]
mod wired_tests;

use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

pub use convert::{ConvertError, to_kernel, to_kernel_float};
pub use meta::{META_SECTION, ModuleMeta, TensorMeta};
pub use tensor::{Tensor, TensorData};

/// The `__metadata__` key that holds the graph JSON.
pub const METADATA_KEY: &str = "kiln";
/// The graph format version of a chain model (no [`Graph::wiring`]).
pub const FORMAT_VERSION: u32 = 1;
/// The graph format version of a model whose layers are wired by tensor
/// name ([`Graph::wiring`]); this kiln reads both.
pub const GRAPH_FORMAT_VERSION: u32 = 2;

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Scores per class; the prediction is the arg-max.
    Classification,
    /// One or more real values.
    Regression,
}

/// The model's input: a tensor of `shape` per row, optionally with names for
/// its features (the CSV columns it was trained on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub shape: Vec<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

impl InputSpec {
    /// Values per row (the product of the shape), `None` on overflow.
    pub fn values_per_row(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }
}

/// One layer. Tensors are referenced by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `(x − mean) / std` per feature (the kernel multiplies by `1/std`
    /// rounded to f32). Both tensors have the input's length.
    Standardize {
        mean: String,
        std: String,
    },
    /// Fully connected: `weight` is `[outputs, inputs]` (PyTorch's layout),
    /// `bias` is `[outputs]`.
    Dense {
        weight: String,
        bias: String,
    },
    Relu,
    Sigmoid,
    Tanh,
    /// Softmax over the whole row.
    Softmax,
    /// Reshape to one dimension; no arithmetic.
    Flatten,
    /// Gives the tensor `shape`, of as many values; no arithmetic (e.g.
    /// the `[channels, height, width]` an image layer reads).
    Reshape {
        shape: Vec<usize>,
    },
    /// 2-D convolution (cross-correlation, as PyTorch's `Conv2d`) over the
    /// current `[channels, height, width]` tensor, each row laid out NCHW
    /// without the N (channel planes one after another, each row-major).
    /// `weight` is `[out_c, in_c / groups, kh, kw]`, `bias` is `[out_c]`;
    /// the output is `[out_c, (h + top + bottom − ekh) / stride + 1,
    /// (w + left + right − ekw) / stride + 1]` with the dilated kernel's
    /// extent `ekh = dilation·(kh − 1) + 1` (and `ekw` alike).
    Conv2d {
        weight: String,
        bias: String,
        #[serde(default = "one")]
        stride: usize,
        /// Zeros added on every side (unless `pads` is given).
        #[serde(default)]
        padding: usize,
        /// Zeros added `[top, left, bottom, right]`, in place of
        /// `padding`: TensorFlow's SAME puts the odd one bottom and right.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pads: Option<[usize; 4]>,
        /// The distance between neighbouring taps, in both axes.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        dilation: usize,
        /// Channel groups: `in_c / groups` inputs feed each output;
        /// `groups = in_c = out_c` is a depthwise convolution.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        groups: usize,
    },
    /// Maximum over `kernel × kernel` windows of each channel, no padding.
    MaxPool {
        kernel: usize,
        /// Defaults to `kernel` (non-overlapping windows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
    },
    /// Mean over `kernel × kernel` windows of each channel, no padding.
    AvgPool {
        kernel: usize,
        /// Defaults to `kernel` (non-overlapping windows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
    },
    /// f32 → int8: `q = clamp(round(x / scale) + zero_point, −128, 127)`
    /// (see docs/quantization.md).
    Quantize {
        scale: f32,
        zero_point: i32,
    },
    /// f32 → int8 with a per-row scale `max|x| / 127` and zero point 0,
    /// computed at run time (`kiln quantize --dynamic`).
    QuantizeDynamic,
    /// int8 fully connected layer. `weight` is I8 `[outputs, inputs]`,
    /// `weight_scale` F32 `[outputs]` (one scale per output channel), `bias`
    /// I32 `[outputs]` at the accumulator scale (input scale × weight scale)
    /// after a static [`LayerSpec::Quantize`], or F32 after a dynamic one.
    /// With `output` the result is requantized to int8 with those
    /// parameters (and clamped at zero when `relu`); without it, it is
    /// dequantized to f32.
    DenseInt8 {
        weight: String,
        weight_scale: String,
        bias: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<QuantParams>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        relu: bool,
    },
    /// int8 2-D convolution (`kiln quantize` of a [`LayerSpec::Conv2d`]):
    /// `weight` I8 `[out_c, in_c, kh, kw]`, `weight_scale` F32 `[out_c]`,
    /// `bias` I32 `[out_c]` at the accumulator scale, after a static
    /// [`LayerSpec::Quantize`] (or another int8 layer); `stride` and
    /// `padding` as for `conv2d`, the padding holding the input's zero point
    /// (its quantized 0). `output` and `relu` as for
    /// [`LayerSpec::DenseInt8`]. `max_pool` and `avg_pool` after an int8
    /// output pool int8 values (see docs/quantization.md).
    Conv2dInt8 {
        weight: String,
        weight_scale: String,
        bias: String,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<QuantParams>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        relu: bool,
    },
    /// `if x < 0 { alpha · x } else { x }`.
    LeakyRelu {
        alpha: f32,
    },
    /// Softmax over each run of `group` consecutive values (the last axis
    /// of the row tensor); `group` must divide the row.
    GroupSoftmax {
        group: usize,
    },
    /// Log-softmax over the whole row, or over each run of `group` values.
    LogSoftmax {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<usize>,
    },
    /// Per-channel `y = x · scale[c] + shift[c]`: `scale` and `shift` are
    /// `[channels]`, and the row is `channels × inner` values (channel-major).
    ScaleShift {
        scale: String,
        shift: String,
    },
    /// Per-channel leaky ReLU (ONNX `PRelu`): `slope` is `[channels]`.
    #[serde(rename = "prelu")]
    PRelu {
        slope: String,
    },
    /// Mean over each of `channels` equal runs of the row (NCHW → NC).
    GlobalAvgPool {
        channels: usize,
    },
    /// `min(max(x, min), max)` (ReLU6: `min` 0, `max` 6); NaN passes.
    Clip {
        min: f32,
        max: f32,
    },
    /// `clip(alpha·x + beta, 0, 1)`.
    HardSigmoid {
        #[serde(default = "hard_sigmoid_alpha")]
        alpha: f32,
        #[serde(default = "half")]
        beta: f32,
    },
    /// `x · clip(x/6 + 1/2, 0, 1)` (MobileNetV3).
    HardSwish,
    /// Element-wise sum of two tensors of one shape (graphs only).
    Add,
    /// The first tensor times the second: of the same shape (element-wise),
    /// or a per-channel gate of shape `[C]` or `[C, 1, 1]` for a first
    /// tensor `[C, …]` (graphs only).
    Mul,
    /// Two or more tensors along their first (channel) axis; the other
    /// dimensions must agree (graphs only).
    Concat,
    /// A simple RNN over a `[T, F]` tensor: `h = tanh(W x + Wb + R h +
    /// Rb)`. The tensors are ONNX's: `w` `[D, H, F]`, `r` `[D, H, H]`, `b`
    /// `[D, 2H]` (`Wb` then `Rb`). `hidden` is `H`; `direction` gives `D`;
    /// `sequence` outputs every step's state, `[T, D·H]` (per step:
    /// forward's `H` values, then backward's), rather than the final
    /// states, `[D·H]`.
    Rnn {
        hidden: usize,
        w: String,
        r: String,
        b: String,
        #[serde(default)]
        direction: Direction,
        #[serde(default)]
        sequence: bool,
        /// int8 weights (`kiln quantize`): the names of the scales of `w`
        /// and `r` per output channel, `[D, G·H]` F32; `w` and `r` are then
        /// I8 (`docs/quantization.md`, "Recurrent layers").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        w_scale: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        r_scale: Option<String>,
    },
    /// A GRU over a `[T, F]` tensor, gates z, r, h: `w` `[D, 3H, F]`, `r`
    /// `[D, 3H, H]`, `b` `[D, 6H]`. `linear_before_reset` (ONNX's
    /// attribute; PyTorch's and Keras' `reset_after=True` GRU) applies the
    /// reset gate after the candidate's recurrent product, otherwise before
    /// it (the original GRU).
    Gru {
        hidden: usize,
        w: String,
        r: String,
        b: String,
        #[serde(default)]
        direction: Direction,
        #[serde(default)]
        sequence: bool,
        /// int8 weights (`kiln quantize`): the names of the scales of `w`
        /// and `r` per output channel, `[D, G·H]` F32; `w` and `r` are then
        /// I8 (`docs/quantization.md`, "Recurrent layers").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        w_scale: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        r_scale: Option<String>,
        linear_before_reset: bool,
    },
    /// An LSTM over a `[T, F]` tensor, gates i, o, f, c: `w` `[D, 4H, F]`,
    /// `r` `[D, 4H, H]`, `b` `[D, 8H]`.
    Lstm {
        hidden: usize,
        w: String,
        r: String,
        b: String,
        #[serde(default)]
        direction: Direction,
        #[serde(default)]
        sequence: bool,
        /// int8 weights (`kiln quantize`): the names of the scales of `w`
        /// and `r` per output channel, `[D, G·H]` F32; `w` and `r` are then
        /// I8 (`docs/quantization.md`, "Recurrent layers").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        w_scale: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        r_scale: Option<String>,
    },
    /// A tree ensemble over the row's features (`docs/trees.md`): `nodes`
    /// I32 `[N, 4]` — per node its flags (the comparison: 0 leaf, 1 `x <=
    /// t`, 2 `<`, 3 `>=`, 4 `>`, 5 `==`, 6 `!=` sends `x` to the true
    /// child; bit 4: the node defines where a missing (NaN) value goes,
    /// bit 5: to the true child), the feature it tests, its true child and
    /// its false child (node indices, each greater than its parent's); for
    /// a leaf, the range `[start, end)` of its entries — `thresholds` F32
    /// `[N]`, `roots` I32 `[trees]`, `leaf_targets` I32 and `leaf_values`
    /// F32 `[entries]`, `base` F32 `[targets]` (zeros when absent). Writes
    /// `targets` scores (2 with `binary`).
    TreeEnsemble {
        targets: usize,
        nodes: String,
        thresholds: String,
        roots: String,
        leaf_targets: String,
        leaf_values: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<String>,
        #[serde(default)]
        aggregate: TreeAggregate,
        #[serde(default)]
        post_transform: PostTransform,
        #[serde(default, skip_serializing_if = "BinaryScores::is_no")]
        binary: BinaryScores,
    },
}

/// How a tree ensemble combines its trees' values per target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeAggregate {
    /// The sum (gradient boosting).
    #[default]
    Sum,
    /// The sum over the tree count (a forest's mean).
    Average,
}

/// The transform of a tree ensemble's scores (ONNX-ML's `post_transform`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostTransform {
    #[default]
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

/// How a one-target ensemble writes two class scores (see
/// [`crate::trees::Binary`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryScores {
    /// One score per target.
    #[default]
    No,
    /// `[1 − p, p]`, `p` the transformed score.
    Complement,
    /// `[−s, s]`, then the transform.
    Negate,
}

impl BinaryScores {
    fn is_no(&self) -> bool {
        *self == BinaryScores::No
    }
}

/// The directions a recurrent layer reads its steps in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Step 0 to `T − 1` (`D = 1`).
    #[default]
    Forward,
    /// Forward, and backward from step `T − 1` to 0 (`D = 2`).
    Bidirectional,
}

fn one() -> usize {
    1
}

fn hard_sigmoid_alpha() -> f32 {
    0.2
}

fn half() -> f32 {
    0.5
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

/// The scale and zero point of an int8 tensor: `real = scale · (q − zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl LayerSpec {
    /// The op name as written in the file.
    pub fn op(&self) -> &'static str {
        match self {
            LayerSpec::Standardize { .. } => "standardize",
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Relu => "relu",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Softmax => "softmax",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Reshape { .. } => "reshape",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool { .. } => "max_pool",
            LayerSpec::AvgPool { .. } => "avg_pool",
            LayerSpec::Quantize { .. } => "quantize",
            LayerSpec::QuantizeDynamic => "quantize_dynamic",
            LayerSpec::DenseInt8 { .. } => "dense_int8",
            LayerSpec::Conv2dInt8 { .. } => "conv2d_int8",
            LayerSpec::LeakyRelu { .. } => "leaky_relu",
            LayerSpec::GroupSoftmax { .. } => "group_softmax",
            LayerSpec::LogSoftmax { .. } => "log_softmax",
            LayerSpec::ScaleShift { .. } => "scale_shift",
            LayerSpec::GlobalAvgPool { .. } => "global_avg_pool",
            LayerSpec::PRelu { .. } => "prelu",
            LayerSpec::Clip { .. } => "clip",
            LayerSpec::HardSigmoid { .. } => "hard_sigmoid",
            LayerSpec::HardSwish => "hard_swish",
            LayerSpec::Add => "add",
            LayerSpec::Mul => "mul",
            LayerSpec::Concat => "concat",
            LayerSpec::Rnn { .. } => "rnn",
            LayerSpec::Gru { .. } => "gru",
            LayerSpec::Lstm { .. } => "lstm",
            LayerSpec::TreeEnsemble { .. } => "tree_ensemble",
        }
    }
}

/// The tensors one layer of a graph-format model reads and writes, by name:
/// the input's name or an earlier layer's `output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wires {
    pub inputs: Vec<String>,
    pub output: String,
}

/// Everything about a model except its tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// [`FORMAT_VERSION`], or [`GRAPH_FORMAT_VERSION`] with `wiring`.
    pub format: u32,
    pub name: String,
    pub version: String,
    pub task: Task,
    pub input: InputSpec,
    /// The CSV column the model was trained to predict, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Class names, one per output (classification).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    pub layers: Vec<LayerSpec>,
    /// Format 2 only: what each layer reads and writes, one entry per
    /// layer; the last layer's output is the model's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wiring: Vec<Wires>,
}
