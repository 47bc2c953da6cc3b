//! The layer graph a model module runs, validated once and executed many times.
//!
//! A [`Model`] is an input width plus an ordered list of [`Layer`]s whose
//! widths chain. It is built either by the host (from a kiln model file, see
//! `runtime/src/model`) or by [`crate::blob::decode`] inside the module; both
//! go through [`Model::new`], the one place where a graph is checked.
//! Execution uses two ping-pong buffers held in a [`Scratch`].

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::int8::{Domain, Int8Layer, Int8Scratch};
use crate::kernels::{ConvGeom, PoolGeom, PoolKind};
use crate::{ModelError, RunError, kernels};

/// Largest number of `f32` values a layer may produce per row, and largest
/// number of values a batch's buffer may hold (2^28 floats = 1 GiB).
pub const MAX_WIDTH: usize = 1 << 24;
const MAX_BUFFER: usize = 1 << 28;

/// A weight tensor: borrowed straight from the model blob when it is aligned
/// (always, inside a module), copied otherwise.
pub type Tensor<'a> = Cow<'a, [f32]>;

/// An element-wise or row-wise activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
    /// Softmax over each row.
    Softmax,
}

/// One step of the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer<'a> {
    /// `y = (x − mean) · inv_std`, per input feature.
    Standardize {
        mean: Tensor<'a>,
        inv_std: Tensor<'a>,
    },
    /// Fully connected: `y = x·W + b` with `weight` stored in column
    /// [`panels`](kernels::packing::dense), see [`kernels::generic::dense`].
    Dense {
        inputs: usize,
        outputs: usize,
        weight: Tensor<'a>,
        bias: Tensor<'a>,
    },
    /// An activation over rows of `len` values.
    Activation { kind: Activation, len: usize },
    /// 2-D convolution over NCHW rows, `weight` stored tap-major
    /// (`in_c × kh × kw × out_c`), see [`kernels::generic::conv2d`].
    Conv2d {
        geom: ConvGeom,
        weight: Tensor<'a>,
        bias: Tensor<'a>,
    },
    /// Max or average pooling over NCHW rows, see [`kernels::generic::pool`].
    Pool { kind: PoolKind, geom: PoolGeom },
    /// A quantized layer (see [`crate::int8`]).
    Int8(Int8Layer<'a>),
    /// `if x < 0 { alpha · x } else { x }` over rows of `len` values.
    LeakyRelu { alpha: f32, len: usize },
    /// Per-channel leaky ReLU (ONNX `PRelu`): `if x < 0 { x · slope[c] }
    /// else { x }` over rows of `slope.len() × inner` values.
    PRelu { inner: usize, slope: Tensor<'a> },
    /// Softmax, or log-softmax with `log`, over each run of `group`
    /// consecutive values of rows of `width` (a multiple of `group`): the
    /// last axis of a row tensor.
    GroupSoftmax {
        width: usize,
        group: usize,
        log: bool,
    },
    /// Per-channel affine map `y = x · scale[c] + shift[c]` over rows of
    /// `scale.len() × inner` values (channel-major). Constant add, subtract,
    /// multiply and a standalone batch normalization all become this.
    ScaleShift {
        inner: usize,
        scale: Tensor<'a>,
        shift: Tensor<'a>,
    },
    /// The mean of each channel's `inner` values: `channels × inner` in,
    /// `channels` out.
    GlobalAvgPool { channels: usize, inner: usize },
}

impl<'a> Layer<'a> {
    /// A dense layer from PyTorch-style output-major rows (`outputs × inputs`,
    /// as the model file stores them), packed into the kernels' column
    /// [`panels`](kernels::packing::dense). `layer` is the index reported in errors.
    pub fn dense_from_rows(
        layer: usize,
        inputs: usize,
        outputs: usize,
        rows: &[f32],
        bias: Tensor<'a>,
    ) -> Result<Self, ModelError> {
        check_rows(layer, inputs, outputs, rows.len())?;
        Ok(Layer::Dense {
            inputs,
            outputs,
            weight: Cow::Owned(kernels::packing::dense::pack_rows(rows, inputs, outputs)),
            bias,
        })
    }

    /// A convolution from PyTorch-style weights (`out_c × in_c × kh × kw`,
    /// as the model file stores them), transposed to the kernel's tap-major
    /// layout. `layer` is the index reported in errors.
    pub fn conv2d_from_filters(
        layer: usize,
        geom: ConvGeom,
        filters: &[f32],
        bias: Tensor<'a>,
    ) -> Result<Self, ModelError> {
        geom.check().ok_or(ModelError::Geometry { layer })?;
        let (taps, out_c) = (geom.in_c * geom.kh * geom.kw, geom.out_c);
        check_rows(layer, taps, out_c, filters.len())?;
        let mut weight = alloc::vec![0.0f32; filters.len()];
        for (o, filter) in filters.chunks_exact(taps.max(1)).enumerate() {
            for (t, &v) in filter.iter().enumerate() {
                weight[t * out_c + o] = v;
            }
        }
        Ok(Layer::Conv2d {
            geom,
            weight: Cow::Owned(weight),
            bias,
        })
    }

    /// Values per row this layer reads (0 for an invalid geometry, which
    /// [`Model::new`] refuses).
    pub fn input_len(&self) -> usize {
        match self {
            Layer::Standardize { mean, .. } => mean.len(),
            Layer::Dense { inputs, .. } => *inputs,
            Layer::Activation { len, .. } => *len,
            Layer::Conv2d { geom, .. } => geom.input_len().unwrap_or(0),
            Layer::Pool { geom, .. } => geom.input_len().unwrap_or(0),
            Layer::Int8(l) => l.input_len(),
            Layer::LeakyRelu { len, .. } => *len,
            Layer::GroupSoftmax { width, .. } => *width,
            Layer::ScaleShift { inner, scale, .. } => scale.len().saturating_mul(*inner),
            Layer::PRelu { inner, slope } => slope.len().saturating_mul(*inner),
            Layer::GlobalAvgPool { channels, inner } => channels.saturating_mul(*inner),
        }
    }

    /// Values per row this layer writes.
    pub fn output_len(&self) -> usize {
        match self {
            Layer::Standardize { mean, .. } => mean.len(),
            Layer::Dense { outputs, .. } => *outputs,
            Layer::Activation { len, .. } => *len,
            Layer::Conv2d { geom, .. } => geom.output_len().unwrap_or(0),
            Layer::Pool { geom, .. } => geom.check().map_or(0, |()| geom.output_len()),
            Layer::Int8(l) => l.output_len(),
            Layer::LeakyRelu { len, .. } => *len,
            Layer::GroupSoftmax { width, .. } => *width,
            Layer::ScaleShift { inner, scale, .. } => scale.len().saturating_mul(*inner),
            Layer::PRelu { inner, slope } => slope.len().saturating_mul(*inner),
            Layer::GlobalAvgPool { channels, .. } => *channels,
        }
    }

    /// The domain (f32 or int8) of the values this layer reads.
    pub fn input_domain(&self) -> Domain {
        match self {
            Layer::Int8(l) => l.input_domain(),
            _ => Domain::F32,
        }
    }

    /// The domain of the values this layer writes.
    pub fn output_domain(&self) -> Domain {
        match self {
            Layer::Int8(l) => l.output_domain(),
            _ => Domain::F32,
        }
    }

    /// This layer with every tensor copied out of the blob it borrows.
    pub fn into_owned(self) -> Layer<'static> {
        let own = |t: Tensor<'_>| Cow::Owned(t.into_owned());
        match self {
            Layer::Standardize { mean, inv_std } => Layer::Standardize {
                mean: own(mean),
                inv_std: own(inv_std),
            },
            Layer::Dense {
                inputs,
                outputs,
                weight,
                bias,
            } => Layer::Dense {
                inputs,
                outputs,
                weight: own(weight),
                bias: own(bias),
            },
            Layer::Activation { kind, len } => Layer::Activation { kind, len },
            Layer::Conv2d { geom, weight, bias } => Layer::Conv2d {
                geom,
                weight: own(weight),
                bias: own(bias),
            },
            Layer::Pool { kind, geom } => Layer::Pool { kind, geom },
            Layer::Int8(l) => Layer::Int8(l.into_owned()),
            Layer::LeakyRelu { alpha, len } => Layer::LeakyRelu { alpha, len },
            Layer::GroupSoftmax { width, group, log } => Layer::GroupSoftmax { width, group, log },
            Layer::ScaleShift {
                inner,
                scale,
                shift,
            } => Layer::ScaleShift {
                inner,
                scale: own(scale),
                shift: own(shift),
            },
            Layer::GlobalAvgPool { channels, inner } => Layer::GlobalAvgPool { channels, inner },
            Layer::PRelu { inner, slope } => Layer::PRelu {
                inner,
                slope: own(slope),
            },
        }
    }

    /// Checks this layer's parameters; `scan` also checks that every f32
    /// tensor is finite (see [`Model::new_unscanned`]).
    fn check(&self, index: usize, scan: bool) -> Result<(), ModelError> {
        let too_large = ModelError::TooLarge { layer: index };
        let geometry = ModelError::Geometry { layer: index };
        match self {
            Layer::Conv2d { geom, .. } => geom.check().ok_or(geometry)?,
            Layer::Pool { geom, .. } => geom.check().ok_or(geometry)?,
            _ => {}
        }
        let bad_param = |param| ModelError::BadParam {
            layer: index,
            param,
        };
        if self.input_len() > MAX_WIDTH || self.output_len() > MAX_WIDTH {
            return Err(too_large);
        }
        let tensor_len = |tensor, expected: usize, t: &[f32]| {
            if t.len() != expected {
                return Err(ModelError::TensorLen {
                    layer: index,
                    tensor,
                    expected,
                    found: t.len(),
                });
            }
            if scan && !all_finite(t) {
                return Err(ModelError::NotFinite {
                    layer: index,
                    tensor,
                });
            }
            Ok(())
        };
        match self {
            Layer::Standardize { mean, inv_std } => {
                tensor_len("mean", mean.len(), mean)?;
                tensor_len("inv_std", mean.len(), inv_std)
            }
            Layer::Dense {
                inputs,
                outputs,
                weight,
                bias,
            } => {
                if *inputs == 0 {
                    return Err(bad_param("inputs"));
                }
                if *outputs == 0 {
                    return Err(bad_param("outputs"));
                }
                let n = inputs.checked_mul(*outputs).ok_or(too_large)?;
                tensor_len("weight", n, weight)?;
                tensor_len("bias", *outputs, bias)
            }
            Layer::Activation { .. } | Layer::Pool { .. } => Ok(()),
            Layer::Conv2d {
                geom, weight, bias, ..
            } => {
                tensor_len("weight", geom.weight_len().ok_or(too_large)?, weight)?;
                tensor_len("bias", geom.out_c, bias)
            }
            Layer::Int8(l) => l.check(index),
            Layer::LeakyRelu { alpha, .. } => {
                if alpha.is_finite() {
                    Ok(())
                } else {
                    Err(bad_param("alpha"))
                }
            }
            Layer::GroupSoftmax { width, group, .. } => {
                if *group == 0 || !width.is_multiple_of(*group) {
                    return Err(bad_param("group"));
                }
                Ok(())
            }
            Layer::ScaleShift {
                inner,
                scale,
                shift,
            } => {
                if *inner == 0 || scale.is_empty() {
                    return Err(bad_param("inner"));
                }
                tensor_len("scale", scale.len(), scale)?;
                tensor_len("shift", scale.len(), shift)
            }
            Layer::GlobalAvgPool { channels, inner } => {
                if *channels == 0 || *inner == 0 {
                    return Err(bad_param("inner"));
                }
                Ok(())
            }
            Layer::PRelu { inner, slope } => {
                if *inner == 0 || slope.is_empty() {
                    return Err(bad_param("inner"));
                }
                tensor_len("slope", slope.len(), slope)
            }
        }
    }
}

/// Checks that a weight of `found` values holds `outputs` rows of `inputs`.
pub(crate) fn check_rows(
    layer: usize,
    inputs: usize,
    outputs: usize,
    found: usize,
) -> Result<(), ModelError> {
    let n = inputs
        .checked_mul(outputs)
        .ok_or(ModelError::TooLarge { layer })?;
    if found != n {
        return Err(ModelError::TensorLen {
            layer,
            tensor: "weight",
            expected: n,
            found,
        });
    }
    Ok(())
}

/// Whether every value is finite (neither infinite nor NaN).
pub(crate) fn all_finite(values: &[f32]) -> bool {
    values.iter().all(|v| v.is_finite())
}

/// A validated graph: every layer's width matches the one before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Model<'a> {
    input_len: usize,
    output_len: usize,
    max_width: usize,
    /// Whether any layer runs in int8 (the scratch then needs int8 buffers).
    int8: bool,
    layers: Vec<Layer<'a>>,
}

impl<'a> Model<'a> {
    /// Checks `layers` against each other and against `input_len`, and every
    /// f32 tensor for NaN and infinity.
    pub fn new(input_len: usize, layers: Vec<Layer<'a>>) -> Result<Self, ModelError> {
        Self::build(input_len, layers, true)
    }

    /// [`Model::new`] without the scan of the f32 tensors' values — every
    /// length, shape and geometry is still checked, which is all the
    /// kernels' memory safety rests on; a NaN or infinite weight only makes
    /// NaN or infinite scores. For a model module's own decode
    /// (`docs/abi.md`): it runs in every fresh instance, where the scan of
    /// the weights (every page of them) cost ~28 µs of an 82 µs MLP request
    /// in `kiln serve`, while the hosts that load modules scan them once
    /// ([`crate::blob::decode`]).
    pub fn new_unscanned(input_len: usize, layers: Vec<Layer<'a>>) -> Result<Self, ModelError> {
        Self::build(input_len, layers, false)
    }

    fn build(input_len: usize, layers: Vec<Layer<'a>>, scan: bool) -> Result<Self, ModelError> {
        if input_len == 0 {
            return Err(ModelError::EmptyInput);
        }
        if input_len > MAX_WIDTH {
            return Err(ModelError::TooLarge { layer: 0 });
        }
        let mut width = input_len;
        let mut max_width = input_len;
        let mut domain = Domain::F32;
        for (index, layer) in layers.iter().enumerate() {
            layer.check(index, scan)?;
            if layer.input_domain() != domain {
                return Err(ModelError::Domain {
                    layer: index,
                    expected: layer.input_domain().name(),
                    found: domain.name(),
                });
            }
            domain = layer.output_domain();
            if layer.input_len() != width {
                return Err(ModelError::Shape {
                    layer: index,
                    expected: layer.input_len(),
                    found: width,
                });
            }
            width = layer.output_len();
            max_width = max_width.max(width);
        }
        if domain != Domain::F32 {
            return Err(ModelError::Domain {
                layer: layers.len(),
                expected: Domain::F32.name(),
                found: domain.name(),
            });
        }
        let int8 = layers.iter().any(|l| matches!(l, Layer::Int8(_)));
        Ok(Model {
            input_len,
            output_len: width,
            max_width,
            int8,
            layers,
        })
    }

    /// This model with every tensor copied out of the blob it borrows.
    pub fn into_owned(self) -> Model<'static> {
        Model {
            input_len: self.input_len,
            output_len: self.output_len,
            max_width: self.max_width,
            int8: self.int8,
            layers: self.layers.into_iter().map(Layer::into_owned).collect(),
        }
    }

    /// Values per input row.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Values per output row.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Layer<'a>] {
        &self.layers
    }

    /// Runs `batch` rows that [`Scratch::input`] prepared and returns the
    /// `batch × output_len` results, which live in `scratch`.
    pub fn run<'s>(&self, batch: usize, scratch: &'s mut Scratch) -> Result<&'s [f32], RunError> {
        if scratch.prepared != Some((batch, self.max_width)) {
            return Err(RunError::NotPrepared);
        }
        let mut width = self.input_len;
        for layer in &self.layers {
            let cur = &mut scratch.cur[..batch * width];
            match layer {
                Layer::Standardize { mean, inv_std } => kernels::standardize(cur, mean, inv_std),
                Layer::Dense {
                    inputs,
                    outputs,
                    weight,
                    bias,
                } => {
                    let next = &mut scratch.next[..batch * outputs];
                    kernels::dense(cur, weight, bias, *inputs, *outputs, next);
                    core::mem::swap(&mut scratch.cur, &mut scratch.next);
                }
                Layer::Activation { kind, len } => match kind {
                    Activation::Relu => kernels::relu(cur),
                    Activation::Sigmoid => kernels::sigmoid(cur),
                    Activation::Tanh => kernels::tanh(cur),
                    Activation::Softmax => kernels::softmax(cur, *len),
                },
                Layer::Conv2d { geom, weight, bias } => {
                    let next = &mut scratch.next[..batch * layer.output_len()];
                    kernels::conv2d(cur, weight, bias, geom, next);
                    core::mem::swap(&mut scratch.cur, &mut scratch.next);
                }
                Layer::Pool { kind, geom } => {
                    let next = &mut scratch.next[..batch * layer.output_len()];
                    kernels::pool(*kind, cur, geom, next);
                    core::mem::swap(&mut scratch.cur, &mut scratch.next);
                }
                Layer::Int8(l) => l.run(batch, &mut scratch.cur, &mut scratch.int8),
                Layer::LeakyRelu { alpha, .. } => kernels::leaky_relu(cur, *alpha),
                Layer::PRelu { inner, slope } => kernels::prelu(cur, slope, *inner),
                Layer::GroupSoftmax { group, log, .. } => kernels::group_softmax(cur, *group, *log),
                Layer::ScaleShift {
                    inner,
                    scale,
                    shift,
                } => kernels::scale_shift(cur, scale, shift, *inner),
                Layer::GlobalAvgPool { channels, inner } => {
                    let next = &mut scratch.next[..batch * channels];
                    kernels::global_avg_pool(cur, *channels, *inner, next);
                    core::mem::swap(&mut scratch.cur, &mut scratch.next);
                }
            }
            width = layer.output_len();
        }
        scratch.prepared = None;
        Ok(&scratch.cur[..batch * self.output_len])
    }

    /// Convenience for hosts: predicts every row of `input` (a whole number
    /// of `input_len` rows) and returns the results.
    pub fn predict(&self, input: &[f32]) -> Result<Vec<f32>, RunError> {
        if !input.len().is_multiple_of(self.input_len) {
            return Err(RunError::InputLen);
        }
        let batch = input.len() / self.input_len;
        let mut scratch = Scratch::new();
        scratch.input(self, batch)?.copy_from_slice(input);
        Ok(self.run(batch, &mut scratch)?.to_vec())
    }
}

/// Buffers for running a model: the current activations and the next.
#[derive(Debug, Default)]
pub struct Scratch {
    cur: Vec<f32>,
    next: Vec<f32>,
    /// Buffers of the int8 layers, if the model has any.
    int8: Int8Scratch,
    /// `(batch, max_width)` that [`Scratch::input`] prepared for.
    prepared: Option<(usize, usize)>,
}

impl Scratch {
    /// Empty buffers; they grow on first use and are reused afterwards.
    pub const fn new() -> Self {
        Scratch {
            cur: Vec::new(),
            next: Vec::new(),
            int8: Int8Scratch::new(),
            prepared: None,
        }
    }

    /// Sizes the buffers for `batch` rows of `model` and returns the input
    /// area (`batch × input_len` values) to fill before [`Model::run`].
    pub fn input(&mut self, model: &Model<'_>, batch: usize) -> Result<&mut [f32], RunError> {
        self.prepared = None;
        let len = batch
            .checked_mul(model.max_width)
            .filter(|&n| batch > 0 && n <= MAX_BUFFER)
            .ok_or(RunError::BadBatch)?;
        for buf in [&mut self.cur, &mut self.next] {
            if buf.len() < len {
                buf.try_reserve_exact(len - buf.len())
                    .map_err(|_| RunError::OutOfMemory)?;
                buf.resize(len, 0.0);
            }
        }
        if model.int8 {
            self.int8.reserve(batch, len, &model.layers)?;
        }
        self.prepared = Some((batch, model.max_width));
        Ok(&mut self.cur[..batch * model.input_len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Model<'static> {
        let dense =
            Layer::dense_from_rows(0, 2, 2, &[1.0, 0.0, 0.0, -1.0], vec![0.0, 0.0].into()).unwrap();
        Model::new(
            2,
            vec![
                dense,
                Layer::Activation {
                    kind: Activation::Relu,
                    len: 2,
                },
            ],
        )
        .unwrap()
    }

    #[test]
    fn predicts_rows() {
        let m = tiny();
        assert_eq!(
            m.predict(&[3.0, 4.0, -1.0, -2.0]).unwrap(),
            [3.0, 0.0, 0.0, 2.0]
        );
        assert_eq!(m.predict(&[1.0]), Err(RunError::InputLen));
    }

    #[test]
    fn rejects_mismatched_widths() {
        let err = Model::new(
            3,
            vec![Layer::Activation {
                kind: Activation::Relu,
                len: 2,
            }],
        )
        .unwrap_err();
        assert_eq!(
            err,
            ModelError::Shape {
                layer: 0,
                expected: 2,
                found: 3
            }
        );
    }

    #[test]
    fn checks_the_import_layers() {
        let bad = |layer| Model::new(4, vec![layer]).unwrap_err();
        assert_eq!(
            bad(Layer::GroupSoftmax {
                width: 4,
                group: 3,
                log: false
            }),
            ModelError::BadParam {
                layer: 0,
                param: "group"
            }
        );
        assert!(matches!(
            bad(Layer::LeakyRelu {
                alpha: f32::NAN,
                len: 4
            }),
            ModelError::BadParam { .. }
        ));
        assert!(matches!(
            bad(Layer::ScaleShift {
                inner: 2,
                scale: vec![1.0, 2.0].into(),
                shift: vec![0.0].into(),
            }),
            ModelError::TensorLen { .. }
        ));
        assert!(matches!(
            bad(Layer::GlobalAvgPool {
                channels: usize::MAX,
                inner: 2
            }),
            ModelError::TooLarge { .. }
        ));
        let m = Model::new(
            4,
            vec![
                Layer::ScaleShift {
                    inner: 2,
                    scale: vec![2.0, -1.0].into(),
                    shift: vec![1.0, 0.0].into(),
                },
                Layer::GlobalAvgPool {
                    channels: 2,
                    inner: 2,
                },
            ],
        )
        .unwrap();
        assert_eq!(m.predict(&[1.0, 2.0, 3.0, 4.0]).unwrap(), [4.0, -3.5]);
    }

    #[test]
    fn run_needs_prepared_batch() {
        let m = tiny();
        let mut s = Scratch::new();
        assert_eq!(m.run(1, &mut s), Err(RunError::NotPrepared));
        s.input(&m, 2).unwrap();
        assert_eq!(m.run(1, &mut s), Err(RunError::NotPrepared));
        assert_eq!(s.input(&m, 0).unwrap_err(), RunError::BadBatch);
        assert_eq!(s.input(&m, usize::MAX).unwrap_err(), RunError::BadBatch);
    }
}
