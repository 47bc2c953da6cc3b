//! [`Layer`]: one step of a model's graph, f32 or int8, with its widths,
//! domains and the checks of its own parameters ([`Model::new`](super::Model::new)
//! checks how the layers chain). The layers every kernel build holds are
//! variants here; each family a build may leave out is one variant holding
//! the family's layer and marker ([`super::family`]).

use alloc::borrow::Cow;

use super::check::{MAX_WIDTH, check_rows, check_tensor};
use super::conv::ConvLayer;
use super::family;
use super::int8::{Domain, Int8Layer};
use super::recurrent::RecurrentLayer;
use super::trees::TreeLayer;
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
    /// A layer of the CNN family — convolution, pooling, the activations of
    /// CNNs — and its marker, which only a build with the feature `conv`
    /// can make ([`Layer::conv`]).
    Conv(ConvLayer<'a>, family::Conv),
    /// A quantized layer (see [`crate::int8`]).
    Int8(Int8Layer<'a>),
    /// A layer of the recurrent family — RNN, GRU, LSTM — and its marker,
    /// which only a build with the feature `rnn` can make
    /// ([`Layer::recurrent`]).
    Recurrent(RecurrentLayer<'a>, family::Rnn),
    /// A tree ensemble and its marker, which only a build with the feature
    /// `trees` can make ([`Layer::trees`]).
    Trees(TreeLayer<'a>, family::Trees),
    /// `if x < 0 { alpha · x } else { x }` over rows of `len` values.
    LeakyRelu { alpha: f32, len: usize },
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
    /// Element-wise sum of two tensors of `len` values (a residual
    /// connection); graph models only (feature `dag`, like the two below).
    #[cfg(feature = "dag")]
    Add { len: usize },
    /// A tensor of `channels × inner` values times a gate of `channels`
    /// values, each channel's run by its gate value (squeeze-and-excitation;
    /// `inner = 1` is element-wise); graph models only.
    #[cfg(feature = "dag")]
    Mul { channels: usize, inner: usize },
    /// The rows of two or more tensors, of `parts[i]` values each, one after
    /// another (a concatenation along the channel axis of NCHW rows); graph
    /// models only.
    #[cfg(feature = "dag")]
    Concat { parts: alloc::vec::Vec<usize> },
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

    /// Values per row this layer reads (0 for an invalid geometry, which
    /// [`Model::new`] refuses).
    pub fn input_len(&self) -> usize {
        match self {
            Layer::Standardize { mean, .. } => mean.len(),
            Layer::Dense { inputs, .. } => *inputs,
            Layer::Activation { len, .. } => *len,
            Layer::Conv(l, _) => l.input_len(),
            Layer::Int8(l) => l.input_len(),
            Layer::Recurrent(l, _) => l.geom.input_len(),
            Layer::Trees(l, _) => l.features,
            Layer::LeakyRelu { len, .. } => *len,
            Layer::GroupSoftmax { width, .. } => *width,
            Layer::ScaleShift { inner, scale, .. } => scale.len().saturating_mul(*inner),
            #[cfg(feature = "dag")]
            Layer::Add { len } => *len,
            #[cfg(feature = "dag")]
            Layer::Mul { channels, inner } => channels.saturating_mul(*inner),
            #[cfg(feature = "dag")]
            Layer::Concat { parts } => parts.first().copied().unwrap_or(0),
        }
    }

    /// How many tensors this layer reads: 1, except for the joining layers.
    pub fn arity(&self) -> usize {
        match self {
            #[cfg(feature = "dag")]
            Layer::Add { .. } | Layer::Mul { .. } => 2,
            #[cfg(feature = "dag")]
            Layer::Concat { parts } => parts.len(),
            _ => 1,
        }
    }

    /// Values per row of input `i` (see [`Layer::arity`]; 0 past the last).
    pub fn input_len_at(&self, i: usize) -> usize {
        match self {
            #[cfg(feature = "dag")]
            Layer::Add { len } if i < 2 => *len,
            #[cfg(feature = "dag")]
            Layer::Mul { channels, .. } if i == 1 => *channels,
            #[cfg(feature = "dag")]
            Layer::Concat { parts } => parts.get(i).copied().unwrap_or(0),
            _ if i == 0 => self.input_len(),
            _ => 0,
        }
    }

    /// Values per row this layer writes.
    pub fn output_len(&self) -> usize {
        match self {
            Layer::Standardize { mean, .. } => mean.len(),
            Layer::Dense { outputs, .. } => *outputs,
            Layer::Activation { len, .. } => *len,
            Layer::Conv(l, _) => l.output_len(),
            Layer::Int8(l) => l.output_len(),
            Layer::Recurrent(l, _) => l.geom.output_len(),
            Layer::Trees(l, _) => l.output_len(),
            Layer::LeakyRelu { len, .. } => *len,
            Layer::GroupSoftmax { width, .. } => *width,
            Layer::ScaleShift { inner, scale, .. } => scale.len().saturating_mul(*inner),
            #[cfg(feature = "dag")]
            Layer::Add { len } => *len,
            #[cfg(feature = "dag")]
            Layer::Mul { channels, inner } => channels.saturating_mul(*inner),
            #[cfg(feature = "dag")]
            Layer::Concat { parts } => parts
                .iter()
                .try_fold(0usize, |a, &p| a.checked_add(p))
                .unwrap_or(usize::MAX),
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
            Layer::Conv(l, here) => Layer::Conv(l.into_owned(), here),
            Layer::Int8(l) => Layer::Int8(l.into_owned()),
            Layer::Recurrent(l, here) => Layer::Recurrent(l.into_owned(), here),
            Layer::Trees(l, here) => Layer::Trees(l.into_owned(), here),
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
            #[cfg(feature = "dag")]
            Layer::Add { len } => Layer::Add { len },
            #[cfg(feature = "dag")]
            Layer::Mul { channels, inner } => Layer::Mul { channels, inner },
            #[cfg(feature = "dag")]
            Layer::Concat { parts } => Layer::Concat { parts },
        }
    }

    /// Checks this layer's parameters; `scan` also checks that every f32
    /// tensor is finite (see [`Model::new_unscanned`]).
    pub(super) fn check(&self, index: usize, scan: bool) -> Result<(), ModelError> {
        let too_large = ModelError::TooLarge { layer: index };
        let bad_param = |param| ModelError::BadParam {
            layer: index,
            param,
        };
        if self.input_len() > MAX_WIDTH || self.output_len() > MAX_WIDTH {
            return Err(too_large);
        }
        let tensor_len =
            |tensor, expected, t: &[f32]| check_tensor(index, tensor, expected, t, scan);
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
            Layer::Activation { .. } => Ok(()),
            Layer::Conv(l, _) => l.check(index, scan),
            Layer::Int8(l) => l.check(index),
            Layer::Recurrent(l, _) => l.check(index, scan),
            Layer::Trees(l, _) => l.check(index, scan),
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
            #[cfg(feature = "dag")]
            Layer::Add { len } if *len == 0 => Err(bad_param("len")),
            #[cfg(feature = "dag")]
            Layer::Mul { channels, inner } if *channels == 0 || *inner == 0 => {
                Err(bad_param("inner"))
            }
            #[cfg(feature = "dag")]
            Layer::Concat { parts } if parts.len() < 2 || parts.contains(&0) => {
                Err(bad_param("parts"))
            }
            #[cfg(feature = "dag")]
            Layer::Add { .. } | Layer::Mul { .. } | Layer::Concat { .. } => Ok(()),
        }
    }
}
