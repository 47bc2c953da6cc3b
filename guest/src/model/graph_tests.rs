//! Graph models: the joining layers against their definitions, the memory
//! plan, and every way a graph can be wrong.

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::kernels::generic;

fn node(layer: Layer<'static>, inputs: &[usize]) -> Node<'static> {
    Node {
        layer,
        inputs: inputs.to_vec(),
    }
}

fn dense(i: usize, o: usize, seed: f32) -> Layer<'static> {
    let rows: Vec<f32> = (0..i * o)
        .map(|v| ((v as f32 + seed) * 0.37).sin())
        .collect();
    let bias: Vec<f32> = (0..o).map(|v| (v as f32 * 0.1) - seed * 0.01).collect();
    Layer::dense_from_rows(0, i, o, &rows, bias.into()).unwrap()
}

fn relu(len: usize) -> Layer<'static> {
    Layer::Activation {
        kind: Activation::Relu,
        len,
    }
}

fn chain(input_len: usize, layers: Vec<Layer<'static>>) -> Model<'static> {
    Model::new(input_len, layers).unwrap()
}

fn rows(batch: usize, n: usize) -> Vec<f32> {
    (0..batch * n)
        .map(|v| ((v as f32) * 0.61).cos() * 2.0)
        .collect()
}

/// x → dense → relu → add(·, x) → dense: a residual block, equal bit for
/// bit to its pieces run as chains and joined by the generic `add`.
#[test]
fn residual_block() {
    let m = Model::graph(
        4,
        vec![
            node(dense(4, 4, 1.0), &[0]),
            node(relu(4), &[1]),
            node(Layer::Add { len: 4 }, &[2, 0]),
            node(dense(4, 3, 2.0), &[3]),
        ],
    )
    .unwrap();
    assert!(m.inputs().is_some());
    let x = rows(3, 4);
    let mut h = chain(4, vec![dense(4, 4, 1.0), relu(4)])
        .predict(&x)
        .unwrap();
    generic::add(&mut h, &x);
    let want = chain(4, vec![dense(4, 3, 2.0)]).predict(&h).unwrap();
    assert_eq!(m.predict(&x).unwrap(), want);
    // Row by row gives the batch's bits.
    let one: Vec<f32> = x.chunks(4).flat_map(|r| m.predict(r).unwrap()).collect();
    assert_eq!(one, want);
}

/// Squeeze-and-excitation: x [2 × 3] → global average → dense → sigmoid →
/// x · gate per channel.
#[cfg(feature = "conv")]
#[test]
fn squeeze_and_excitation() {
    use crate::ConvLayer;
    let gap = || {
        Layer::conv(
            0,
            ConvLayer::GlobalAvgPool {
                channels: 2,
                inner: 3,
            },
        )
        .unwrap()
    };
    let sigmoid = Layer::Activation {
        kind: Activation::Sigmoid,
        len: 2,
    };
    let m = Model::graph(
        6,
        vec![
            node(gap(), &[0]),
            node(dense(2, 2, 3.0), &[1]),
            node(sigmoid.clone(), &[2]),
            node(
                Layer::Mul {
                    channels: 2,
                    inner: 3,
                },
                &[0, 3],
            ),
        ],
    )
    .unwrap();
    let x = rows(2, 6);
    let g = chain(6, vec![gap(), dense(2, 2, 3.0), sigmoid])
        .predict(&x)
        .unwrap();
    let mut want = x.clone();
    generic::gate(&mut want, &g, 3);
    assert_eq!(m.predict(&x).unwrap(), want);
}

/// Two branches of one tensor, concatenated; the input is read after the
/// first branch ran, so that branch copies it instead of overwriting it.
#[test]
fn concat_of_branches() {
    let tanh = Layer::Activation {
        kind: Activation::Tanh,
        len: 3,
    };
    let m = Model::graph(
        3,
        vec![
            node(relu(3), &[0]),
            node(tanh.clone(), &[0]),
            node(
                Layer::Concat {
                    parts: vec![3, 3, 3],
                },
                &[1, 2, 0],
            ),
        ],
    )
    .unwrap();
    assert_eq!(m.output_len(), 9);
    let x = rows(2, 3);
    let r = chain(3, vec![relu(3)]).predict(&x).unwrap();
    let t = chain(3, vec![tanh]).predict(&x).unwrap();
    let want: Vec<f32> = (0..2)
        .flat_map(|b| {
            let s = b * 3..b * 3 + 3;
            [&r[s.clone()], &t[s.clone()], &x[s]].concat()
        })
        .collect();
    assert_eq!(m.predict(&x).unwrap(), want);
}

/// `x + x`: the same tensor twice cannot be updated in place.
#[test]
fn one_tensor_twice() {
    let m = Model::graph(2, vec![node(Layer::Add { len: 2 }, &[0, 0])]).unwrap();
    assert_eq!(m.predict(&[1.5, -2.0]).unwrap(), [3.0, -4.0]);
}

/// A graph that is a chain is built as one: same model, same blob.
#[test]
fn a_chain_graph_is_a_chain() {
    let layers = vec![dense(4, 5, 1.0), relu(5), dense(5, 2, 2.0)];
    let nodes = layers
        .iter()
        .enumerate()
        .map(|(i, l)| node(l.clone(), &[i]))
        .collect();
    let g = Model::graph(4, nodes).unwrap();
    let c = chain(4, layers);
    assert_eq!(g, c);
    assert!(g.inputs().is_none());
    assert_eq!(crate::blob::encode(&g), crate::blob::encode(&c));
    assert_eq!(g.arena_len(), 10);
    assert_eq!(g.tensors_len(), 4 + 5 + 5 + 2);
}

/// The plan reuses the regions of dead tensors: a long residual stack
/// needs three tensors' room, whatever its depth.
#[test]
fn the_arena_holds_the_live_set() {
    let mut nodes = Vec::new();
    for b in 0..6 {
        let x = 3 * b;
        nodes.push(node(dense(8, 8, b as f32), &[x]));
        nodes.push(node(relu(8), &[x + 1]));
        nodes.push(node(Layer::Add { len: 8 }, &[x + 2, x]));
    }
    let m = Model::graph(8, nodes).unwrap();
    assert_eq!(m.tensors_len(), 8 * 19);
    // A block's input, its dense output (relu and add run in place).
    assert_eq!(m.arena_len(), 16);
    let x = rows(2, 8);
    assert_eq!(m.predict(&x).unwrap().len(), 16);
}

#[test]
fn bad_graphs_are_named() {
    let err = |nodes| Model::graph(4, nodes).unwrap_err();
    // Reads a tensor no earlier layer makes (here: its own output).
    assert_eq!(
        err(vec![node(relu(4), &[0]), node(relu(4), &[2])]),
        ModelError::UnknownTensor {
            layer: 1,
            tensor: 2
        }
    );
    // Two outputs: layer 0's is never read.
    assert_eq!(
        err(vec![
            node(relu(4), &[0]),
            node(Layer::Add { len: 4 }, &[0, 0])
        ]),
        ModelError::UnusedTensor { tensor: 1 }
    );
    assert_eq!(
        err(vec![node(Layer::Add { len: 4 }, &[0])]),
        ModelError::Arity {
            layer: 0,
            expected: 2,
            found: 1
        }
    );
    assert_eq!(
        err(vec![
            node(dense(4, 2, 0.0), &[0]),
            node(Layer::Add { len: 4 }, &[1, 0])
        ]),
        ModelError::Shape {
            layer: 1,
            expected: 4,
            found: 2
        }
    );
    assert_eq!(
        err(vec![node(Layer::Concat { parts: vec![4] }, &[0])]),
        ModelError::BadParam {
            layer: 0,
            param: "parts"
        }
    );
    let q = Layer::Int8(crate::Int8Layer::QuantizeDynamic { len: 4 });
    assert_eq!(
        err(vec![node(q, &[0]), node(relu(4), &[0])]),
        ModelError::Int8InGraph { layer: 0 }
    );
    // Joining layers need a graph.
    assert_eq!(
        Model::new(4, vec![Layer::Add { len: 4 }]).unwrap_err(),
        ModelError::Arity {
            layer: 0,
            expected: 2,
            found: 1
        }
    );
}
