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
            wiring: Vec::new(),
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
            pads: None,
            dilation: 1,
            groups: 1,
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

/// The depthwise-separable blocks of a MobileNet on `[3, 32, 32]`, with
/// every layer kind they need: a stride-2 SAME stem (odd pad bottom and
/// right) → ReLU6 (`clip`) → depthwise 3×3 → hard-swish → pointwise 1×1
/// → depthwise stride 2 SAME → depthwise dilation 2 → grouped 3×3
/// (4 groups) → hard-sigmoid → global average pool → dense → softmax.
pub fn mobilenet_blocks(seed: u64) -> ModelFile {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = BTreeMap::new();
    let mut layers = Vec::new();
    // (name, weight shape, stride, pads, dilation, groups)
    type Conv = (&'static str, [usize; 4], usize, [usize; 4], usize, usize);
    let convs: [Conv; 6] = [
        ("stem", [16, 3, 3, 3], 2, [0, 0, 1, 1], 1, 1),
        ("dw1", [16, 1, 3, 3], 1, [1; 4], 1, 16),
        ("pw1", [32, 16, 1, 1], 1, [0; 4], 1, 1),
        ("dw2", [32, 1, 3, 3], 2, [0, 0, 1, 1], 1, 32),
        ("dw3", [32, 1, 3, 3], 1, [2; 4], 2, 32),
        ("gc4", [32, 8, 3, 3], 1, [1; 4], 1, 4),
    ];
    for (name, shape, stride, pads, dilation, groups) in convs {
        let (weight, bias) = layer(&mut rng, &mut tensors, name, shape.to_vec());
        let even = pads == [pads[0]; 4];
        layers.push(LayerSpec::Conv2d {
            weight,
            bias,
            stride,
            padding: if even { pads[0] } else { 0 },
            pads: (!even).then_some(pads),
            dilation,
            groups,
        });
        layers.push(match name {
            "stem" => LayerSpec::Clip { min: 0.0, max: 6.0 },
            "dw1" => LayerSpec::HardSwish,
            "gc4" => LayerSpec::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            _ => LayerSpec::Relu,
        });
    }
    layers.push(LayerSpec::GlobalAvgPool { channels: 32 });
    let (weight, bias) = layer(&mut rng, &mut tensors, "fc", vec![10, 32]);
    layers.push(LayerSpec::Dense { weight, bias });
    layers.push(LayerSpec::Softmax);
    classifier("mobilenet_blocks", vec![3, 32, 32], layers, tensors)
}

/// One 3×3 depthwise convolution over `[channels, size, size]` (stride 1,
/// padding 1), or — `zero_filled` — the full convolution with zero weights
/// outside each channel's group that ONNX import made of it before kiln had
/// depthwise layers (`channels`× the arithmetic, the same values).
pub fn depthwise_layer(seed: u64, channels: usize, size: usize, zero_filled: bool) -> ModelFile {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = BTreeMap::new();
    let limit = (6.0f32 / 9.0).sqrt();
    let w: Vec<f32> = (0..channels * 9)
        .map(|_| rng.random_range(-limit..limit))
        .collect();
    let (weight, bias) = ("dw.weight".to_string(), "dw.bias".to_string());
    let filters = if zero_filled {
        let mut full = vec![0.0; channels * channels * 9];
        for (c, taps) in w.chunks_exact(9).enumerate() {
            full[(c * channels + c) * 9..][..9].copy_from_slice(taps);
        }
        Tensor::new(vec![channels, channels, 3, 3], full)
    } else {
        Tensor::new(vec![channels, 1, 3, 3], w)
    };
    tensors.insert(weight.clone(), filters);
    tensors.insert(
        bias.clone(),
        Tensor::new(vec![channels], vec![0.01; channels]),
    );
    let conv = LayerSpec::Conv2d {
        weight,
        bias,
        stride: 1,
        padding: 1,
        pads: None,
        dilation: 1,
        groups: if zero_filled { 1 } else { channels },
    };
    classifier("depthwise", vec![channels, size, size], vec![conv], tensors)
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
        let m = mobilenet_blocks(7).to_kernel().unwrap();
        assert_eq!((m.input_len(), m.output_len()), (3 * 32 * 32, 10));
        // The zero-filled full convolution computes the depthwise values.
        let x = rows(2, 8 * 6 * 6, 3);
        let [dw, full] = [false, true].map(|z| {
            let m = depthwise_layer(5, 8, 6, z).to_kernel().unwrap();
            m.predict(&x).unwrap()
        });
        assert!(dw.iter().zip(&full).all(|(a, b)| a == b));
    }
}
