//! Graph-format model files: conversion of a residual CNN with a gate and a
//! concatenation, and every wiring error named.

use std::collections::BTreeMap;
use std::string::String;
use std::vec;
use std::vec::Vec as V;

use super::*;
use crate::{Activation, Layer, Model, Node};

fn wires(inputs: &[&str], output: &str) -> Wires {
    Wires {
        inputs: inputs.iter().map(|s| String::from(*s)).collect(),
        output: output.into(),
    }
}

fn graph(shape: V<usize>, layers: V<(LayerSpec, Wires)>) -> Graph {
    let (layers, wiring) = layers.into_iter().unzip();
    Graph {
        format: GRAPH_FORMAT_VERSION,
        name: "g".into(),
        version: "1".into(),
        task: Task::Regression,
        input: InputSpec {
            name: "x".into(),
            shape,
            features: vec![],
        },
        target: None,
        labels: vec![],
        layers,
        wiring,
    }
}

fn tensors() -> BTreeMap<String, Tensor> {
    let vals = |n: usize, k: f32| (0..n).map(|i| ((i as f32 + k) * 0.3).sin()).collect();
    let mut t = BTreeMap::new();
    t.insert("cw".into(), Tensor::new(vec![2, 2, 3, 3], vals(36, 1.0)));
    t.insert("cb".into(), Tensor::new(vec![2], vals(2, 2.0)));
    t.insert("dw".into(), Tensor::new(vec![2, 2], vals(4, 3.0)));
    t.insert("db".into(), Tensor::new(vec![2], vals(2, 4.0)));
    t
}

fn conv() -> LayerSpec {
    LayerSpec::Conv2d {
        weight: "cw".into(),
        bias: "cb".into(),
        stride: 1,
        padding: 1,
        pads: None,
        dilation: 1,
        groups: 1,
    }
}

/// x [2,3,3] → conv → relu → + x → (· SE gate) → concat with x.
fn residual_se() -> Graph {
    graph(
        vec![2, 3, 3],
        vec![
            (conv(), wires(&["x"], "c")),
            (LayerSpec::Relu, wires(&["c"], "r")),
            (LayerSpec::Add, wires(&["r", "x"], "s")),
            (LayerSpec::GlobalAvgPool { channels: 2 }, wires(&["s"], "p")),
            (
                LayerSpec::Dense {
                    weight: "dw".into(),
                    bias: "db".into(),
                },
                wires(&["p"], "e"),
            ),
            (LayerSpec::Sigmoid, wires(&["e"], "g")),
            (LayerSpec::Mul, wires(&["s", "g"], "m")),
            (LayerSpec::Concat, wires(&["m", "x"], "y")),
        ],
    )
}

#[test]
fn converts_a_residual_gated_graph() {
    let t = tensors();
    let m = to_kernel(&residual_se(), &t).unwrap();
    assert_eq!(m.output_len(), 36);
    assert_eq!(
        m.inputs().unwrap(),
        [
            vec![0],
            vec![1],
            vec![2, 0],
            vec![3],
            vec![4],
            vec![5],
            vec![3, 6],
            vec![7, 0]
        ]
    );
    assert!(matches!(
        m.layers()[6],
        Layer::Mul {
            channels: 2,
            inner: 9
        }
    ));
    assert!(matches!(&m.layers()[7], Layer::Concat { parts } if parts == &[18, 18]));
    // The same graph built by hand gives the same model.
    let layers: V<Layer<'static>> = m.layers().to_vec();
    let nodes: V<Node<'static>> = layers
        .into_iter()
        .zip(m.inputs().unwrap().to_vec())
        .map(|(layer, inputs)| Node { layer, inputs })
        .collect();
    assert_eq!(Model::graph(18, nodes).unwrap(), m);
    assert!(matches!(
        m.layers()[5],
        Layer::Activation {
            kind: Activation::Sigmoid,
            ..
        }
    ));
}

#[test]
fn wiring_errors_are_named() {
    let t = tensors();
    let err = |g: &Graph| to_kernel(g, &t).unwrap_err().to_string();
    let mut g = residual_se();
    g.wiring[2].inputs[1] = "z".into();
    assert!(
        err(&g).contains("layer 2 (add) reads `z`, which is neither"),
        "{}",
        err(&g)
    );
    let mut g = residual_se();
    g.wiring[1].inputs[0] = "s".into();
    assert!(
        err(&g).contains("reads `s`, which layer 2 writes later"),
        "{}",
        err(&g)
    );
    let mut g = residual_se();
    g.wiring[1].output = "c".into();
    assert!(err(&g).contains("writes `c`, a name"), "{}", err(&g));
    let mut g = residual_se();
    g.wiring[7].inputs = vec!["x".into(), "x".into()];
    assert!(
        err(&g).contains("`m` is computed but never read"),
        "{}",
        err(&g)
    );
    let mut g = residual_se();
    g.wiring[2].inputs.pop();
    assert!(
        err(&g).contains("(add) reads 1 tensors, expected 2"),
        "{}",
        err(&g)
    );
    let mut g = residual_se();
    g.wiring[6].inputs = vec!["g".into(), "s".into()];
    assert!(
        err(&g).contains("(mul): inputs of shapes [[2], [2, 3, 3]] do not fit"),
        "{}",
        err(&g)
    );
    let mut g = residual_se();
    g.wiring[7].inputs[1] = "p".into();
    assert!(
        err(&g).contains("(concat): inputs of shapes"),
        "{}",
        err(&g)
    );
    let mut g = residual_se();
    g.wiring.pop();
    assert!(
        err(&g).contains("7 wiring entries for 8 layers"),
        "{}",
        err(&g)
    );
    let mut g = residual_se();
    g.format = FORMAT_VERSION;
    assert!(err(&g).contains("8 wiring entries"), "{}", err(&g));
    g.wiring.clear();
    assert!(
        err(&g).contains("(add) joins tensors: it needs a graph model"),
        "{}",
        err(&g)
    );
}

/// A format-2 graph that is a chain converts to the chain model.
#[test]
fn a_wired_chain_is_a_chain() {
    let t = tensors();
    let g = graph(
        vec![2, 3, 3],
        vec![
            (conv(), wires(&["x"], "c")),
            (LayerSpec::Flatten, wires(&["c"], "f")),
            (LayerSpec::Relu, wires(&["f"], "r")),
        ],
    );
    let m = to_kernel(&g, &t).unwrap();
    assert!(m.inputs().is_none());
    let mut chain = g.clone();
    chain.format = FORMAT_VERSION;
    chain.wiring.clear();
    assert_eq!(to_kernel(&chain, &t).unwrap(), m);
}

/// `reshape` renames a tensor with a new shape of as many values (here
/// the flat input becomes the image a convolution reads), in a chain and
/// in a graph; a shape of another size is refused by layer.
#[test]
fn reshape_gives_a_tensor_a_new_shape() {
    let t = tensors();
    let reshape = |shape: V<usize>| LayerSpec::Reshape { shape };
    let g = graph(
        vec![18],
        vec![
            (reshape(vec![2, 3, 3]), wires(&["x"], "i")),
            (conv(), wires(&["i"], "c")),
            (LayerSpec::Add, wires(&["c", "i"], "y")),
        ],
    );
    let m = to_kernel(&g, &t).unwrap();
    assert_eq!(m.output_len(), 18);
    assert_eq!(m.inputs().unwrap(), [vec![0], vec![1, 0]]);
    let mut image = graph(vec![2, 3, 3], vec![(conv(), wires(&["x"], "c"))]);
    image.format = FORMAT_VERSION;
    image.wiring.clear();
    let mut chain = image.clone();
    chain.input.shape = vec![18];
    chain.layers.insert(0, reshape(vec![2, 3, 3]));
    assert_eq!(
        to_kernel(&chain, &t).unwrap(),
        to_kernel(&image, &t).unwrap()
    );
    chain.layers[0] = reshape(vec![2, 3, 2]);
    let err = to_kernel(&chain, &t).unwrap_err().to_string();
    assert!(
        err.contains("layer 0 (reshape): shape [2, 3, 2] does not hold the row's 18 values"),
        "{err}"
    );
}
