//! Graph models: layers that read tensors by id, so one tensor may feed
//! several layers and a layer may join several tensors ([`Layer::Add`],
//! [`Layer::Mul`], [`Layer::Concat`]) — residual connections,
//! squeeze-and-excitation gates, channel concatenations.
//!
//! Tensor 0 is the model input and tensor `i + 1` the output of layer `i`;
//! layer `i` may read only tensors `0..=i`, so the graph is acyclic and its
//! layers are in execution order by construction. The model's output is the
//! last layer's; every other tensor must be read by some layer. A graph
//! whose every layer reads only the tensor before it is a chain, and
//! [`Model::graph`] builds it as one (same blob, same ping-pong execution,
//! same bits). Graph models run in one arena laid out by [`super::plan`];
//! they are f32 only (int8 layers run in chains). Running them, and
//! decoding their blobs, needs the feature `dag` (kernels without it stay
//! smaller).

use alloc::vec::Vec;

use super::plan::{self, Plan};
use super::{Domain, Layer, MAX_WIDTH, Model};
use crate::ModelError;

/// One layer of a graph model and the tensors it reads, by id (0: the
/// input, `i + 1`: layer `i`'s output).
#[derive(Debug, Clone, PartialEq)]
pub struct Node<'a> {
    pub layer: Layer<'a>,
    pub inputs: Vec<usize>,
}

/// How a graph model's layers are wired, and where its tensors live.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wiring {
    pub(crate) inputs: Vec<Vec<usize>>,
    pub(crate) plan: Plan,
}

impl<'a> Model<'a> {
    /// Checks a graph: every layer's parameters, that it reads as many
    /// tensors as it takes, each produced earlier and of the width it
    /// expects, and that every tensor but the output is read. A graph that
    /// is a chain becomes a chain model ([`Model::new`]).
    pub fn graph(input_len: usize, nodes: Vec<Node<'a>>) -> Result<Self, ModelError> {
        Self::build_graph(input_len, nodes, true)
    }

    /// [`Model::graph`] without the scan of the f32 tensors' values (see
    /// [`Model::new_unscanned`]).
    pub fn graph_unscanned(input_len: usize, nodes: Vec<Node<'a>>) -> Result<Self, ModelError> {
        Self::build_graph(input_len, nodes, false)
    }

    fn build_graph(input_len: usize, nodes: Vec<Node<'a>>, scan: bool) -> Result<Self, ModelError> {
        let chain = nodes
            .iter()
            .enumerate()
            .all(|(i, n)| n.inputs == [i] && n.layer.arity() == 1);
        let (layers, inputs): (Vec<_>, Vec<_>) =
            nodes.into_iter().map(|n| (n.layer, n.inputs)).unzip();
        if chain {
            return Self::build(input_len, layers, scan);
        }
        if input_len == 0 {
            return Err(ModelError::EmptyInput);
        }
        if input_len > MAX_WIDTH {
            return Err(ModelError::TooLarge { layer: 0 });
        }
        let mut widths = Vec::with_capacity(layers.len() + 1);
        widths.push(input_len);
        for (index, (layer, ins)) in layers.iter().zip(&inputs).enumerate() {
            layer.check(index, scan)?;
            if layer.input_domain() != Domain::F32 || layer.output_domain() != Domain::F32 {
                return Err(ModelError::Int8InGraph { layer: index });
            }
            if matches!(layer, Layer::Recurrent(..)) {
                return Err(ModelError::RecurrentInGraph { layer: index });
            }
            if matches!(layer, Layer::Trees(..)) {
                return Err(ModelError::TreesInGraph { layer: index });
            }
            if ins.len() != layer.arity() {
                return Err(ModelError::Arity {
                    layer: index,
                    expected: layer.arity(),
                    found: ins.len(),
                });
            }
            for (k, &t) in ins.iter().enumerate() {
                let &found = widths.get(t).ok_or(ModelError::UnknownTensor {
                    layer: index,
                    tensor: t,
                })?;
                if found != layer.input_len_at(k) {
                    return Err(ModelError::Shape {
                        layer: index,
                        expected: layer.input_len_at(k),
                        found,
                    });
                }
            }
            widths.push(layer.output_len());
        }
        let plan = plan::plan(input_len, &layers, &inputs)?;
        if !plan.is_sound(&inputs) {
            // The planner places buffers apart by construction.
            return Err(ModelError::TooLarge { layer: 0 });
        }
        let output_len = *widths.last().unwrap_or(&input_len);
        Ok(Model {
            input_len,
            output_len,
            max_width: plan.arena,
            int8: false,
            layers,
            wiring: Some(Wiring { inputs, plan }),
        })
    }

    /// For each layer, the tensors it reads: `Some` for a graph model,
    /// `None` for a chain (layer `i` reads tensor `i`).
    pub fn inputs(&self) -> Option<&[Vec<usize>]> {
        self.wiring.as_ref().map(|w| w.inputs.as_slice())
    }

    /// Values per row of the activation memory the model runs in: a graph's
    /// planned arena, or a chain's two ping-pong buffers of its widest
    /// tensor.
    pub fn arena_len(&self) -> usize {
        match &self.wiring {
            Some(w) => w.plan.arena,
            None => Plan::chain_arena(self.max_width),
        }
    }

    /// Values per row of every tensor the model computes, the input
    /// included: what it would take to keep them all.
    pub fn tensors_len(&self) -> usize {
        match &self.wiring {
            Some(w) => w.plan.total,
            None => self
                .layers
                .iter()
                .fold(self.input_len, |a, l| a.saturating_add(l.output_len())),
        }
    }
}

/// Runs a graph model's layers over the arena `scratch.cur`, which
/// [`Scratch::input`] sized and whose input region it filled.
#[cfg(feature = "dag")]
pub(super) fn run<'s>(
    model: &Model<'_>,
    wiring: &Wiring,
    batch: usize,
    scratch: &'s mut super::Scratch,
) -> &'s [f32] {
    let plan = &wiring.plan;
    let arena = &mut scratch.cur[..batch * plan.arena];
    for (i, (layer, ins)) in model.layers.iter().zip(&wiring.inputs).enumerate() {
        let out = plan.region(i + 1, batch);
        let (head, rest) = arena.split_at_mut(out.start);
        let (y, tail) = rest.split_at_mut(out.end - out.start);
        // An input's region, disjoint from `y` (see `Plan::is_sound`).
        let at = |t: usize| {
            let r = plan.region(t, batch);
            if r.end <= out.start {
                &head[r]
            } else {
                &tail[r.start - out.end..r.end - out.end]
            }
        };
        if plan::runs_in_place(layer) && !plan.in_place[i] {
            y.copy_from_slice(at(ins[0]));
        }
        match layer {
            Layer::Add { .. } => crate::kernels::add(y, at(ins[1])),
            Layer::Mul { inner, .. } => crate::kernels::gate(y, at(ins[1]), *inner),
            Layer::Concat { parts } => {
                let total = layer.output_len();
                let mut col = 0;
                for (&t, &w) in ins.iter().zip(parts) {
                    crate::kernels::concat(y, at(t), w, col, total);
                    col += w;
                }
            }
            _ if plan::writes_anew(layer) => super::run_into(layer, at(ins[0]), y),
            _ => super::run_in_place(layer, y),
        }
    }
    let out = plan.region(model.layers.len(), batch);
    &scratch.cur[out]
}
