//! Graph-format models (format 2): layers wired by tensor name → the
//! kernel's graph [`Model`] ([`Model::graph`]).
//!
//! `wiring[i]` names the tensors layer `i` reads — the input's name or an
//! earlier layer's output — and the one it writes. Names resolve to kernel
//! tensor ids (0: the input, `k + 1`: kernel layer `k`'s output); a
//! `flatten` only gives its input a new name and shape. Every way the
//! wiring can be wrong is a [`ConvertError`] naming the layer and the
//! tensor: a name nobody writes, one written later (a cycle), one written
//! twice, a tensor nobody reads (a second output), a wrong number of
//! inputs, or input shapes a joining layer cannot combine.

use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use super::convert::Flow;
use super::{ConvertError, GRAPH_FORMAT_VERSION, Graph, LayerSpec};
use crate::{Layer, Model, Node};

/// A named tensor: its kernel id, what flows along it, whether it is read.
struct Named {
    id: usize,
    flow: Flow,
    read: bool,
}

/// Builds the graph model of a format-2 `graph` whose input is `input`;
/// `step` converts a single-input layer ([`super::convert`]'s).
pub(super) fn convert(
    graph: &Graph,
    input: Flow,
    mut step: impl FnMut(
        usize,
        &LayerSpec,
        &Flow,
    ) -> Result<(Option<Layer<'static>>, Flow), ConvertError>,
) -> Result<Model<'static>, ConvertError> {
    if graph.format != GRAPH_FORMAT_VERSION || graph.wiring.len() != graph.layers.len() {
        return Err(ConvertError::Wiring {
            format: graph.format,
            wiring: graph.wiring.len(),
            layers: graph.layers.len(),
        });
    }
    let input_len = input.width;
    // Which layer writes each name, to tell a cycle from a typo.
    let mut writer: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, w) in graph.wiring.iter().enumerate().rev() {
        writer.insert(w.output.as_str(), i);
    }
    let mut names: BTreeMap<&str, Named> = BTreeMap::new();
    // Names in the order they were made, for the unused-tensor check.
    let mut order = vec![graph.input.name.as_str()];
    names.insert(
        graph.input.name.as_str(),
        Named {
            id: 0,
            flow: input,
            read: false,
        },
    );
    let mut nodes = Vec::new();
    for (index, (spec, wires)) in graph.layers.iter().zip(&graph.wiring).enumerate() {
        let op = spec.op();
        let mut ids = Vec::with_capacity(wires.inputs.len());
        let mut flows = Vec::with_capacity(wires.inputs.len());
        for name in &wires.inputs {
            let Some(named) = names.get_mut(name.as_str()) else {
                return Err(match writer.get(name.as_str()) {
                    Some(&by) => ConvertError::Cycle {
                        layer: index,
                        op,
                        tensor: name.clone(),
                        by,
                    },
                    None => ConvertError::UnknownTensor {
                        layer: index,
                        op,
                        tensor: name.clone(),
                    },
                });
            };
            named.read = true;
            ids.push(named.id);
            flows.push(named.flow.clone());
        }
        let arity = |expected: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(ConvertError::Arity {
                    layer: index,
                    op,
                    found: flows.len(),
                    expected,
                })
            }
        };
        let (layer, flow) = match spec {
            LayerSpec::Add | LayerSpec::Mul => {
                arity("2", flows.len() == 2)?;
                join(index, spec, &flows)?
            }
            LayerSpec::Concat => {
                arity("2 or more", flows.len() >= 2)?;
                join(index, spec, &flows)?
            }
            _ => {
                arity("1", flows.len() == 1)?;
                let (layer, flow) = step(index, spec, &flows[0])?;
                match layer {
                    Some(layer) => (layer, flow),
                    None => {
                        // A reshape: the same kernel tensor under a new name.
                        name_output(
                            &mut names,
                            &mut order,
                            index,
                            op,
                            &wires.output,
                            ids[0],
                            flow,
                        )?;
                        continue;
                    }
                }
            }
        };
        nodes.push(Node { layer, inputs: ids });
        name_output(
            &mut names,
            &mut order,
            index,
            op,
            &wires.output,
            nodes.len(),
            flow,
        )?;
    }
    let output = order.last().copied().unwrap_or_default();
    if let Some(unused) = order
        .iter()
        .find(|n| **n != output && names.get(*n).is_some_and(|t| !t.read))
    {
        return Err(ConvertError::UnusedTensor {
            tensor: (*unused).into(),
        });
    }
    Ok(Model::graph(input_len, nodes)?)
}

/// Records layer `index`'s output `name` as kernel tensor `id`.
fn name_output<'g>(
    names: &mut BTreeMap<&'g str, Named>,
    order: &mut Vec<&'g str>,
    index: usize,
    op: &'static str,
    name: &'g str,
    id: usize,
    flow: Flow,
) -> Result<(), ConvertError> {
    if names.contains_key(name) {
        return Err(ConvertError::DuplicateTensor {
            layer: index,
            op,
            tensor: name.into(),
        });
    }
    names.insert(
        name,
        Named {
            id,
            flow,
            read: false,
        },
    );
    order.push(name);
    Ok(())
}

/// The kernel layer of a joining op over inputs `flows`, and its output.
fn join(
    index: usize,
    spec: &LayerSpec,
    flows: &[Flow],
) -> Result<(Layer<'static>, Flow), ConvertError> {
    let op = spec.op();
    let misfit = |expected| ConvertError::Operands {
        layer: index,
        op,
        shapes: flows.iter().map(|f| f.shape.clone()).collect(),
        expected,
    };
    let x = &flows[0];
    let out = |shape: Vec<usize>, width| Flow {
        width,
        shape,
        quant: x.quant,
    };
    match spec {
        LayerSpec::Add => {
            if flows[1].shape != x.shape {
                return Err(misfit("the same shape"));
            }
            Ok((Layer::Add { len: x.width }, out(x.shape.clone(), x.width)))
        }
        LayerSpec::Mul => {
            let g = &flows[1];
            let channels = x.shape.first().copied().unwrap_or(0);
            let gate = g.shape.first() == Some(&channels)
                && g.shape[1..].iter().all(|&d| d == 1)
                && channels > 0
                && x.width.is_multiple_of(channels);
            let (channels, inner) = if g.shape == x.shape {
                (x.width, 1)
            } else if gate {
                (channels, x.width / channels)
            } else {
                return Err(misfit(
                    "the same shape, or a [C] or [C, 1, 1] gate for [C, …]",
                ));
            };
            Ok((
                Layer::Mul { channels, inner },
                out(x.shape.clone(), x.width),
            ))
        }
        _ => {
            let rest = x.shape.get(1..).unwrap_or_default();
            if flows
                .iter()
                .any(|f| f.shape.is_empty() || f.shape[1..] != *rest)
            {
                return Err(misfit("the same shape after the first axis"));
            }
            let channels = flows
                .iter()
                .try_fold(0usize, |a, f| a.checked_add(f.shape[0]))
                .ok_or(misfit("fewer values"))?;
            let parts: Vec<usize> = flows.iter().map(|f| f.width).collect();
            let width = parts
                .iter()
                .try_fold(0usize, |a, &p| a.checked_add(p))
                .ok_or(misfit("fewer values"))?;
            let mut shape = vec![channels];
            shape.extend_from_slice(rest);
            Ok((Layer::Concat { parts }, out(shape, width)))
        }
    }
}
