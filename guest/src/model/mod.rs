//! The layer graph a model module runs, validated once and executed many times.
//!
//! A [`Model`] is an input width plus an ordered list of [`Layer`]s whose
//! widths chain. It is built either by the host (from a kiln model file, see
//! `runtime/src/model`) or by [`crate::blob::decode`] inside the module; both
//! go through [`Model::new`], the one place where a graph is checked.
//! Execution uses two ping-pong buffers held in a [`Scratch`].
//!
//! Every layer kind lives here: the f32 layers in [`layer`], the quantized
//! ones in [`int8`] (a [`Layer::Int8`] each).

mod check;
mod int8;
mod layer;

use alloc::vec::Vec;

pub use check::MAX_WIDTH;
#[cfg(not(feature = "int8-conv"))]
pub(crate) use int8::NOT_HERE;
pub use int8::{ConvI8, DenseI8, Domain, Int8Layer, Int8Output, PoolI8};
pub use layer::{Activation, Layer, Tensor};

use crate::{ModelError, RunError, kernels};
use int8::Int8Scratch;

/// Largest number of values a batch's buffer may hold (2^28 floats = 1 GiB).
const MAX_BUFFER: usize = 1 << 28;

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
    /// (`docs/abi.md`): it runs in every fresh instance, where a scan would
    /// touch every page of the weights, while the hosts that load modules
    /// scan them once ([`crate::blob::decode`]).
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
            let cols = model
                .layers
                .iter()
                .filter_map(|l| match l {
                    Layer::Int8(l) => Some(l.cols_len()),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            self.int8.reserve(batch, len, cols)?;
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
