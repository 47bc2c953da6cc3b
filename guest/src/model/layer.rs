//! [`Layer`]: one step of a model's graph, f32 or int8, with its widths,
//! domains and the checks of its own parameters ([`Model::new`](super::Model::new)
//! checks how the layers chain).

use alloc::borrow::Cow;

use super::check::{MAX_WIDTH, all_finite, check_rows};
use super::int8::{Domain, Int8Layer};
use crate::kernels::{ConvGeom, PoolGeom, PoolKind};
use crate::{ModelError, kernels};

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
    pub(super) fn check(&self, index: usize, scan: bool) -> Result<(), ModelError> {
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
