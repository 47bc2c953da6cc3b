//! The benchmark models with random weights: the MLP 784-256-128-10 and a
//! LeNet-style CNN on 1×28×28, plus pixel-like input rows. Used by the
//! criterion benches (`runtime/benches/`) and by `kiln bench random:…`;
//! `bench/make_models.py` writes the same architectures for the peers.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{FORMAT_VERSION, Graph, InputSpec, LayerSpec, ModelFile, Task, Tensor};

/// The widths of the benchmark MLP.
pub const MLP_WIDTHS: [usize; 4] = [784, 256, 128, 10];

/// He-uniform weights `[rows, fan_in]` and a 0.01 bias, as a named pair.
fn layer(
    rng: &mut ChaCha8Rng,
    tensors: &mut BTreeMap<String, Tensor>,
    name: &str,
    shape: Vec<usize>,
) -> (String, String) {
    let outputs = shape[0];
    let fan_in: usize = shape[1..].iter().product();
    let limit = (6.0 / fan_in as f32).sqrt();
    let weight = (0..outputs * fan_in)
        .map(|_| rng.random_range(-limit..limit))
        .collect();
    let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
    tensors.insert(w.clone(), Tensor::new(shape, weight));
    tensors.insert(b.clone(), Tensor::new(vec![outputs], vec![0.01; outputs]));
    (w, b)
}

fn classifier(
    name: &str,
    shape: Vec<usize>,
    layers: Vec<LayerSpec>,
    tensors: BTreeMap<String, Tensor>,
) -> ModelFile {
    ModelFile {
        graph: Graph {
            format: FORMAT_VERSION,
            name: name.into(),
            version: "1".into(),
            task: Task::Classification,
            input: InputSpec {
                name: "input".into(),
                shape,
                features: vec![],
            },
            target: None,
            labels: vec![],
            layers,
        },
        tensors,
    }
}

/// An MLP with the given widths: dense + ReLU between, softmax at the end;
/// He-uniform weights from `seed`.
pub fn mlp(widths: &[usize], seed: u64) -> ModelFile {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = BTreeMap::new();
    let mut layers = Vec::new();
    for (i, w) in widths.windows(2).enumerate() {
        let (weight, bias) = layer(&mut rng, &mut tensors, &format!("fc{i}"), vec![w[1], w[0]]);
        layers.push(LayerSpec::Dense { weight, bias });
        layers.push(LayerSpec::Relu);
    }
    layers.pop();
    layers.push(LayerSpec::Softmax);
    classifier("mlp", vec![widths[0]], layers, tensors)
}

/// LeNet-style CNN on `[1, 28, 28]`: conv 5×5 (6) → ReLU → max-pool 2 →
/// conv 5×5 (16) → ReLU → max-pool 2 → dense 256-120-84-10 → softmax.
pub fn lenet(seed: u64) -> ModelFile {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = BTreeMap::new();
    let mut layers = Vec::new();
    for (i, shape) in [vec![6, 1, 5, 5], vec![16, 6, 5, 5]]
        .into_iter()
        .enumerate()
    {
        let (weight, bias) = layer(&mut rng, &mut tensors, &format!("conv{i}"), shape);
        layers.push(LayerSpec::Conv2d {
            weight,
            bias,
            stride: 1,
            padding: 0,
        });
        layers.push(LayerSpec::Relu);
        layers.push(LayerSpec::MaxPool {
            kernel: 2,
            stride: None,
        });
    }
    layers.push(LayerSpec::Flatten);
    for (i, w) in [256, 120, 84, 10].windows(2).enumerate() {
        let (weight, bias) = layer(&mut rng, &mut tensors, &format!("fc{i}"), vec![w[1], w[0]]);
        layers.push(LayerSpec::Dense { weight, bias });
        layers.push(LayerSpec::Relu);
    }
    layers.pop();
    layers.push(LayerSpec::Softmax);
    classifier("lenet", vec![1, 28, 28], layers, tensors)
}

/// `n` rows of `width` pixel-like values uniform in [0, 1), from `seed`.
pub fn rows(n: usize, width: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * width).map(|_| rng.random_range(0.0..1.0)).collect()
}

/// The input every peer of `bench/run.sh` uses: row values
/// `((i · 37) mod 255) / 255`, the same for every row of a batch.
pub fn pattern_rows(n: usize, width: usize) -> Vec<f32> {
    (0..n * width)
        .map(|i| ((i % width * 37) % 255) as f32 / 255.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_validate_with_the_expected_shapes() {
        let m = mlp(&MLP_WIDTHS, 7).to_kernel().unwrap();
        assert_eq!((m.input_len(), m.output_len()), (784, 10));
        let c = lenet(7).to_kernel().unwrap();
        assert_eq!((c.input_len(), c.output_len()), (784, 10));
        // Same seed, same weights; another seed, other weights.
        assert_eq!(mlp(&MLP_WIDTHS, 7).tensors, mlp(&MLP_WIDTHS, 7).tensors);
        assert_ne!(lenet(7).tensors, lenet(8).tensors);
    }
}
