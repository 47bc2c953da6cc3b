//! The layer graph a model module runs, validated once and executed many times.
//!
//! A [`Model`] is an input width plus an ordered list of [`Layer`]s: a
//! chain, each layer reading the one before, or a graph ([`graph`]), each
//! layer reading tensors by id. It is built either by the host (from a kiln
//! model file, see `runtime/src/model`) or by [`crate::blob::decode`] inside
//! the module; both go through [`Model::new`] or [`Model::graph`], the one
//! place where a model is checked. A chain runs in two ping-pong buffers
//! held in a [`Scratch`]; a graph in one arena of the same `Scratch`, laid
//! out once by a liveness analysis ([`plan`]).
//!
//! Every layer kind lives here: the f32 layers in [`layer`], those of the
//! CNN family in [`conv`] (a [`Layer::Conv`] each), those of the recurrent
//! family in [`recurrent`] (a [`Layer::Recurrent`] each), the quantized
//! ones in [`int8`] (a [`Layer::Int8`] each). Which families a build holds is
//! [`family`]'s business.

mod check;
mod conv;
pub mod family;
#[cfg(feature = "dag")]
mod graph;
#[cfg(all(test, feature = "dag"))]
mod graph_tests;
mod int8;
mod layer;
#[cfg(feature = "dag")]
mod plan;
mod recurrent;
pub mod trees;

use alloc::vec::Vec;

pub use check::MAX_WIDTH;
pub use conv::ConvLayer;
#[cfg(feature = "dag")]
pub use graph::Node;
#[cfg(not(feature = "int8-conv"))]
pub(crate) use int8::NOT_HERE;
pub use int8::{ConvI8, DenseI8, Domain, Int8Layer, Int8Output, PoolI8};
pub use layer::{Activation, Layer, Tensor};
pub use recurrent::{Cell, RecurrentGeom, RecurrentI8, RecurrentLayer, RecurrentWeights};
pub use trees::TreeLayer;

use crate::{ModelError, RunError, kernels};
#[cfg(feature = "dag")]
use graph::Wiring;
use int8::Int8Scratch;

/// Largest number of values a batch's buffer may hold (2^28 floats = 1 GiB).
const MAX_BUFFER: usize = 1 << 28;

/// A validated model: a chain whose every layer's width matches the one
/// before it, or a graph ([`Model::graph`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Model<'a> {
    input_len: usize,
    output_len: usize,
    /// Values per row of each buffer: a chain's widest tensor, a graph's
    /// arena.
    max_width: usize,
    /// Whether any layer runs in int8 (the scratch then needs int8 buffers).
    int8: bool,
    layers: Vec<Layer<'a>>,
    /// A graph's wiring and memory plan; `None` for a chain.
    #[cfg(feature = "dag")]
    wiring: Option<Wiring>,
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
            #[cfg(feature = "dag")]
            if layer.arity() != 1 {
                return Err(ModelError::Arity {
                    layer: index,
                    expected: layer.arity(),
                    found: 1,
                });
            }
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
            #[cfg(feature = "dag")]
            wiring: None,
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
            #[cfg(feature = "dag")]
            wiring: self.wiring,
        }
    }

    /// Values per input row.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// The input features where a NaN is accepted as a missing value: those
    /// that every node testing them routes by a learned direction, when the
    /// model starts with a tree ensemble (empty otherwise). Hosts refuse a
    /// NaN anywhere else, naming the feature.
    pub fn missing_features(&self) -> Vec<usize> {
        match self.layers.first() {
            // Graphs refuse tree layers: this is a chain's first layer.
            Some(Layer::Trees(l, _)) => (0..self.input_len)
                .filter(|&f| l.accepts_missing(f))
                .collect(),
            _ => Vec::new(),
        }
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
        // Without `dag` no decoder builds a graph (`wiring` is `None`).
        #[cfg(feature = "dag")]
        if let Some(wiring) = &self.wiring {
            scratch.prepared = None;
            return Ok(graph::run(self, wiring, batch, scratch));
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
                Layer::Conv(l, _) if l.writes_anew() => {
                    let next = &mut scratch.next[..batch * layer.output_len()];
                    l.run_into(cur, next);
                    core::mem::swap(&mut scratch.cur, &mut scratch.next);
                }
                Layer::Conv(l, _) => l.run_in_place(cur),
                Layer::Int8(l) => l.run(batch, &mut scratch.cur, &mut scratch.int8),
                Layer::Recurrent(l, _) => {
                    let next = &mut scratch.next[..batch * layer.output_len()];
                    l.run(cur, batch, next, &mut scratch.recurrent);
                    core::mem::swap(&mut scratch.cur, &mut scratch.next);
                }
                Layer::Trees(l, _) => {
                    let next = &mut scratch.next[..batch * layer.output_len()];
                    kernels::generic::trees::trees(l, cur, next, &mut scratch.trees);
                    core::mem::swap(&mut scratch.cur, &mut scratch.next);
                }
                Layer::LeakyRelu { alpha, .. } => kernels::leaky_relu(cur, *alpha),
                Layer::GroupSoftmax { group, log, .. } => kernels::group_softmax(cur, *group, *log),
                Layer::ScaleShift {
                    inner,
                    scale,
                    shift,
                } => kernels::scale_shift(cur, scale, shift, *inner),
                // Refused in chains by `Model::new`.
                #[cfg(feature = "dag")]
                Layer::Add { .. } | Layer::Mul { .. } | Layer::Concat { .. } => {}
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

/// Runs an f32 layer of a graph that writes a new tensor
/// ([`plan::writes_anew`]): reads `x`, writes `y`. (A chain's `run` keeps
/// its own dispatch, whose inlining its benchmarks were tuned on.)
#[cfg(feature = "dag")]
#[inline(never)]
fn run_into(layer: &Layer<'_>, x: &[f32], y: &mut [f32]) {
    match layer {
        Layer::Dense {
            inputs,
            outputs,
            weight,
            bias,
        } => kernels::dense(x, weight, bias, *inputs, *outputs, y),
        Layer::Conv(l, _) => l.run_into(x, y),
        _ => {}
    }
}

/// Runs a one-input f32 layer of a graph that rewrites its tensor in place.
#[cfg(feature = "dag")]
#[inline(never)]
fn run_in_place(layer: &Layer<'_>, x: &mut [f32]) {
    match layer {
        Layer::Standardize { mean, inv_std } => kernels::standardize(x, mean, inv_std),
        Layer::Activation { kind, len } => match kind {
            Activation::Relu => kernels::relu(x),
            Activation::Sigmoid => kernels::sigmoid(x),
            Activation::Tanh => kernels::tanh(x),
            Activation::Softmax => kernels::softmax(x, *len),
        },
        Layer::LeakyRelu { alpha, .. } => kernels::leaky_relu(x, *alpha),
        Layer::GroupSoftmax { group, log, .. } => kernels::group_softmax(x, *group, *log),
        Layer::ScaleShift {
            inner,
            scale,
            shift,
        } => kernels::scale_shift(x, scale, shift, *inner),
        Layer::Conv(l, _) => l.run_in_place(x),
        _ => {}
    }
}

/// Buffers for running a model: the current activations and the next (a
/// graph model's arena is `cur`).
#[derive(Debug, Default)]
pub struct Scratch {
    cur: Vec<f32>,
    next: Vec<f32>,
    /// Buffers of the int8 layers, if the model has any.
    int8: Int8Scratch,
    /// The recurrent layers' buffers, if the model has any.
    recurrent: recurrent::Buffers,
    /// The tree layers' f64 accumulators (`targets` values), if the model
    /// has any.
    trees: Vec<f64>,
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
            recurrent: recurrent::Buffers::new(),
            trees: Vec::new(),
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
        // A graph runs in one arena, `cur`.
        #[cfg(feature = "dag")]
        let graph = model.wiring.as_ref().map(|w| w.plan.region(0, batch));
        #[cfg(feature = "dag")]
        let next = if graph.is_some() { 0 } else { len };
        #[cfg(not(feature = "dag"))]
        let next = len;
        grow(&mut self.cur, len)?;
        grow(&mut self.next, next)?;
        let recurrent = model.layers.iter().filter_map(|l| match l {
            Layer::Recurrent(l, _) => Some(l),
            _ => None,
        });
        self.recurrent.reserve(recurrent, batch, MAX_BUFFER)?;
        let trees = model
            .layers
            .iter()
            .filter_map(|l| match l {
                Layer::Trees(l, _) => Some(l.targets),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        grow(&mut self.trees, trees)?;
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
        #[cfg(feature = "dag")]
        let input = graph.unwrap_or(0..batch * model.input_len);
        #[cfg(not(feature = "dag"))]
        let input = 0..batch * model.input_len;
        Ok(&mut self.cur[input])
    }
}

/// Grows `v` to `n` values (never shrinks it): the one way scratch buffers
/// grow, failing with [`RunError::OutOfMemory`] instead of aborting.
pub(crate) fn grow<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> Result<(), RunError> {
    if v.len() < n {
        v.try_reserve_exact(n - v.len())
            .map_err(|_| RunError::OutOfMemory)?;
        v.resize(n, T::default());
    }
    Ok(())
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
