//! The model families `--model` names, the small CNN spec language, and
//! how each family becomes a [`Network`] and then a kiln model file (the
//! recurrent family's syntax and layers: [`super::sequence`]).

use std::collections::BTreeMap;

use kiln_guest::{ConvGeom, PoolGeom, PoolKind};
use rand::Rng;

use super::layers::{Activation, Layer, Network};
use super::losses::Loss;
use super::sequence::{self, RecurrentModel};
use crate::model::{LayerSpec, Tensor};

/// The model families `--model` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKind {
    /// Linear regression `y = x·w + b`, mean squared error.
    Linear,
    /// Binary logistic regression: `p(class 1) = σ(x·w + b)`, binary
    /// cross-entropy. Exported as two logits `[0, x·w + b]` and a softmax,
    /// which is the same `[1 − p, p]`, so it predicts like any classifier.
    Logistic,
    /// Multinomial logistic regression: one dense layer and softmax.
    Softmax,
    /// Hidden dense layers of the given widths, then softmax.
    Mlp(Vec<usize>),
    /// Convolution, pooling and dense layers (`None`: a default chosen for
    /// the input shape, see [`default_cnn`]), then softmax.
    Cnn(Option<Vec<CnnLayer>>),
    /// Recurrent layers on rows of `[T, F]`, hidden dense layers, then the
    /// output layer (and softmax for a classifier).
    Recurrent(RecurrentModel),
}

/// One token of a `cnn:` spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CnnLayer {
    /// `cNkK[sS][pP]`: N filters of K×K, stride S (default 1), zero padding
    /// P (default K/2, which keeps the size for odd K and stride 1).
    Conv {
        filters: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
    },
    /// `pK` (max) or `aK` (average): K×K windows with stride K.
    Pool { kind: PoolKind, size: usize },
    /// `dN`: a dense layer of N units.
    Dense(usize),
}

pub const CNN_SPEC_HELP: &str = "cNkK[sS][pP] = conv with N filters K×K, stride S (1), padding P (K/2); \
     pK = max pool K×K; aK = average pool K×K; dN = dense N";

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linear" => return Ok(ModelKind::Linear),
            "logistic" => return Ok(ModelKind::Logistic),
            "softmax" => return Ok(ModelKind::Softmax),
            "mlp" => return Ok(ModelKind::Mlp(vec![64, 32])),
            "cnn" => return Ok(ModelKind::Cnn(None)),
            _ => {}
        }
        if let Some(widths) = s.strip_prefix("mlp:") {
            return widths
                .split(',')
                .map(|w| match w.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("`{w}` in `{s}` is not a positive layer width")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(ModelKind::Mlp);
        }
        if sequence::is_recurrent(s) {
            return sequence::parse(s).map(ModelKind::Recurrent);
        }
        if let Some(spec) = s.strip_prefix("cnn:") {
            return spec
                .split(',')
                .map(|t| {
                    parse_cnn_token(t.trim()).ok_or_else(|| {
                        format!("`{t}` in `{s}` is not a CNN layer ({CNN_SPEC_HELP})")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|l| ModelKind::Cnn(Some(l)));
        }
        Err(format!(
            "unknown model `{s}` (expected linear, logistic, softmax, mlp:H1,H2,…, cnn[:SPEC], or rnn:H, gru:H, lstm:H)"
        ))
    }
}

/// Parses `c16k3`, `c8k5s2p0`, `p2`, `a2`, `d32`.
fn parse_cnn_token(t: &str) -> Option<CnnLayer> {
    // Splits "16k3s2" into [(None,16),('k',3),('s',2)].
    fn numbers(s: &str) -> Option<Vec<(char, usize)>> {
        let mut out = Vec::new();
        let mut rest = s;
        let mut tag = ' ';
        loop {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let n: usize = rest[..end].parse().ok()?;
            out.push((tag, n));
            rest = &rest[end..];
            let Some(c) = rest.chars().next() else { break };
            tag = c;
            rest = &rest[c.len_utf8()..];
        }
        Some(out)
    }
    let (head, rest) = t.split_at(t.char_indices().nth(1)?.0);
    let parts = numbers(rest)?;
    let positive = parts.iter().all(|&(tag, n)| n > 0 || tag == 'p');
    if !positive {
        return None;
    }
    match (head, parts.as_slice()) {
        ("d", [(' ', n)]) => Some(CnnLayer::Dense(*n)),
        ("p", [(' ', k)]) => Some(CnnLayer::Pool {
            kind: PoolKind::Max,
            size: *k,
        }),
        ("a", [(' ', k)]) => Some(CnnLayer::Pool {
            kind: PoolKind::Avg,
            size: *k,
        }),
        ("c", [(' ', filters), ('k', kernel), opts @ ..]) => {
            let (mut stride, mut pad) = (1, kernel / 2);
            for &(tag, v) in opts {
                match tag {
                    's' => stride = v,
                    'p' => pad = v,
                    _ => return None,
                }
            }
            Some(CnnLayer::Conv {
                filters: *filters,
                kernel: *kernel,
                stride,
                pad,
            })
        }
        _ => None,
    }
}

/// The default CNN for a `c × h × w` input: a 3×3 convolution with 16
/// filters and 2×2 max pooling (when the image is at least 4×4), a second
/// one with 32 filters while the pooled image is still at least 8×8, then a
/// dense layer of 64: `c16k3,p2,d64` for 8×8 digits, `c16k3,p2,c32k3,p2,d64`
/// for 28×28 images.
pub fn default_cnn(h: usize, w: usize) -> Vec<CnnLayer> {
    let mut layers = Vec::new();
    let (mut h, mut w) = (h, w);
    for filters in [16, 32] {
        if filters > 16 && (h < 8 || w < 8) {
            break;
        }
        layers.push(CnnLayer::Conv {
            filters,
            kernel: 3,
            stride: 1,
            pad: 1,
        });
        if h >= 4 && w >= 4 {
            layers.push(CnnLayer::Pool {
                kind: PoolKind::Max,
                size: 2,
            });
            (h, w) = (h / 2, w / 2);
        }
    }
    layers.push(CnnLayer::Dense(64));
    layers
}

/// Why a model family cannot be built for the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("{0}")]
    Invalid(String),
}

/// The network for `kind` on rows of `shape`, ending in `outputs` values,
/// and the loss it trains with: mean squared error for `regression`, else
/// cross-entropy.
pub(super) fn build(
    kind: &ModelKind,
    shape: &[usize],
    outputs: usize,
    regression: bool,
    act: Activation,
    rng: &mut impl Rng,
) -> Result<(Network, Loss), ShapeError> {
    let inputs: usize = shape.iter().product();
    let mut layers = Vec::new();
    let head = if regression {
        Loss::MeanSquaredError
    } else {
        Loss::SoftmaxCrossEntropy
    };
    let loss = match kind {
        ModelKind::Linear => {
            layers.push(Layer::dense(inputs, 1, act, rng));
            Loss::MeanSquaredError
        }
        ModelKind::Logistic => {
            layers.push(Layer::dense(inputs, 1, act, rng));
            Loss::BinaryCrossEntropy
        }
        ModelKind::Softmax | ModelKind::Mlp(_) => {
            let hidden = match kind {
                ModelKind::Mlp(h) => h.as_slice(),
                _ => &[],
            };
            let mut width = inputs;
            for &h in hidden {
                layers.push(Layer::dense(width, h, act, rng));
                layers.push(Layer::Act(act));
                width = h;
            }
            layers.push(Layer::dense(width, outputs, act, rng));
            head
        }
        ModelKind::Cnn(spec) => {
            let width = cnn_layers(spec.as_deref(), shape, act, rng, &mut layers)?;
            layers.push(Layer::dense(width, outputs, act, rng));
            head
        }
        ModelKind::Recurrent(model) => {
            let width = sequence::build(model, shape, act, rng, &mut layers)?;
            layers.push(Layer::dense(width, outputs, act, rng));
            head
        }
    };
    Ok((Network { layers }, loss))
}

/// Appends the convolutional part of a cnn (`spec`, or [`default_cnn`]) on
/// rows of `shape` = `[c, h, w]` to `layers`; returns the width it ends with.
fn cnn_layers(
    spec: Option<&[CnnLayer]>,
    shape: &[usize],
    act: Activation,
    rng: &mut impl Rng,
    layers: &mut Vec<Layer>,
) -> Result<usize, ShapeError> {
    let &[c, h, w] = shape else {
        return Err(ShapeError::Invalid(format!(
            "a cnn needs an image shape CxHxW (e.g. --shape 1x8x8), got {shape:?}"
        )));
    };
    let default;
    let spec = match spec {
        Some(s) => s,
        None => {
            default = default_cnn(h, w);
            &default
        }
    };
    let mut width = c * h * w;
    let (mut c, mut h, mut w) = (c, h, w);
    let mut flat = false;
    for (i, t) in spec.iter().enumerate() {
        let bad = |why: String| ShapeError::Invalid(format!("cnn layer {} ({t:?}): {why}", i + 1));
        match *t {
            CnnLayer::Conv {
                filters,
                kernel,
                stride,
                pad,
            } => {
                if flat {
                    return Err(bad("a convolution cannot follow a dense layer".into()));
                }
                let geom = ConvGeom::new([c, h, w, filters, kernel, kernel, stride, pad]);
                geom.check().ok_or_else(|| {
                    bad(format!("does not fit a {c}×{h}×{w} input (kernel larger than the padded image, or padding ≥ kernel)"))
                })?;
                layers.push(Layer::conv(geom, act, rng));
                layers.push(Layer::Act(act));
                (c, h, w) = (filters, geom.out_h(), geom.out_w());
                width = c * h * w;
            }
            CnnLayer::Pool { kind, size } => {
                if flat {
                    return Err(bad("pooling cannot follow a dense layer".into()));
                }
                let geom = PoolGeom::new([c, h, w, size, size]);
                geom.check().ok_or_else(|| {
                    bad(format!(
                        "a {size}×{size} window does not fit a {h}×{w} image"
                    ))
                })?;
                layers.push(Layer::Pool(kind, geom));
                (h, w) = (geom.out_h(), geom.out_w());
                width = c * h * w;
            }
            CnnLayer::Dense(n) => {
                flat = true;
                layers.push(Layer::dense(width, n, act, rng));
                layers.push(Layer::Act(act));
                width = n;
            }
        }
    }
    Ok(width)
}

/// The graph layers and tensors of a trained network (after the input
/// standardisation). `target_scale` `(std, mean)` folds a regression
/// target's standardisation back into the last dense layer.
pub(super) fn export(
    net: &Network,
    loss: Loss,
    target_scale: Option<(f32, f32)>,
    tensors: &mut BTreeMap<String, Tensor>,
) -> Vec<LayerSpec> {
    let mut specs = Vec::new();
    let mut image = false;
    let last_dense = net
        .layers
        .iter()
        .rposition(|l| matches!(l, Layer::Dense(_)));
    // Tensors are numbered per kind: dense0, dense1, …, conv0, conv1, …,
    // rnn0, gru0, lstm0, … (indexed by the cell's gate count).
    let (mut dense_n, mut conv_n, mut recurrent_n) = (0, 0, [0; 5]);
    for (i, layer) in net.layers.iter().enumerate() {
        match layer {
            Layer::Dense(d) => {
                if image {
                    specs.push(LayerSpec::Flatten);
                    image = false;
                }
                let (wn, bn) = (
                    format!("dense{dense_n}.weight"),
                    format!("dense{dense_n}.bias"),
                );
                dense_n += 1;
                let (mut w, mut b) = (d.w.clone(), d.b.clone());
                if Some(i) == last_dense {
                    if let Some((std, mean)) = target_scale {
                        w *= std;
                        b = b * std + mean;
                    }
                    if loss == Loss::BinaryCrossEntropy {
                        // Logits [0, z]: softmax gives [1 − σ(z), σ(z)].
                        let zeros = ndarray::Array2::zeros((1, w.ncols()));
                        w = ndarray::concatenate(ndarray::Axis(0), &[zeros.view(), w.view()])
                            .expect("same width");
                        b = ndarray::concatenate(
                            ndarray::Axis(0),
                            &[ndarray::Array1::zeros(1).view(), b.view()],
                        )
                        .expect("1-D");
                    }
                }
                tensors.insert(
                    wn.clone(),
                    Tensor::new(w.shape().to_vec(), w.iter().copied().collect()),
                );
                tensors.insert(bn.clone(), Tensor::new(vec![b.len()], b.to_vec()));
                specs.push(LayerSpec::Dense {
                    weight: wn,
                    bias: bn,
                });
            }
            Layer::Conv(c) => {
                image = true;
                let g = &c.geom;
                let (wn, bn) = (format!("conv{conv_n}.weight"), format!("conv{conv_n}.bias"));
                conv_n += 1;
                tensors.insert(
                    wn.clone(),
                    Tensor::new(
                        vec![g.out_c, g.in_c, g.kh, g.kw],
                        c.w.iter().copied().collect(),
                    ),
                );
                tensors.insert(bn.clone(), Tensor::new(vec![g.out_c], c.b.to_vec()));
                specs.push(LayerSpec::Conv2d {
                    weight: wn,
                    bias: bn,
                    stride: g.stride,
                    padding: g.pad_top,
                    pads: None,
                    dilation: 1,
                    groups: 1,
                });
            }
            Layer::Pool(kind, g) => {
                image = true;
                let stride = (g.stride != g.k).then_some(g.stride);
                specs.push(match kind {
                    PoolKind::Max => LayerSpec::MaxPool {
                        kernel: g.k,
                        stride,
                    },
                    PoolKind::Avg => LayerSpec::AvgPool {
                        kernel: g.k,
                        stride,
                    },
                });
            }
            Layer::Act(a) => specs.push(a.spec()),
            Layer::Recurrent(r) => {
                // A sequence output `[T, D·H]` is flattened before a dense layer.
                image = r.sequence;
                let n = &mut recurrent_n[r.cell.gates()];
                specs.push(sequence::export(r, *n, tensors));
                *n += 1;
            }
        }
    }
    if loss != Loss::MeanSquaredError {
        specs.push(LayerSpec::Softmax);
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_kinds() {
        assert_eq!("mlp:8,4".parse(), Ok(ModelKind::Mlp(vec![8, 4])));
        let cnn: ModelKind = "cnn:c8k3,p2,c16k3s2p0,a2,d32".parse().unwrap();
        assert_eq!(
            cnn,
            ModelKind::Cnn(Some(vec![
                CnnLayer::Conv {
                    filters: 8,
                    kernel: 3,
                    stride: 1,
                    pad: 1
                },
                CnnLayer::Pool {
                    kind: PoolKind::Max,
                    size: 2
                },
                CnnLayer::Conv {
                    filters: 16,
                    kernel: 3,
                    stride: 2,
                    pad: 0
                },
                CnnLayer::Pool {
                    kind: PoolKind::Avg,
                    size: 2
                },
                CnnLayer::Dense(32),
            ]))
        );
        for bad in [
            "cnn:c8",
            "cnn:x2",
            "cnn:c0k3",
            "cnn:d",
            "cnn:c8k3q1",
            "mlp:0",
            "tree",
        ] {
            assert!(bad.parse::<ModelKind>().is_err(), "{bad}");
        }
    }

    #[test]
    fn default_cnn_fits_small_images() {
        let mut rng = rand::rng();
        let conv = |l: &[CnnLayer]| {
            l.iter()
                .filter(|l| matches!(l, CnnLayer::Conv { .. }))
                .count()
        };
        assert_eq!(conv(&default_cnn(8, 8)), 1);
        assert_eq!(conv(&default_cnn(28, 28)), 2);
        for shape in [[1, 8, 8], [3, 2, 2], [1, 28, 28], [2, 5, 3]] {
            let (net, _) = build(
                &ModelKind::Cnn(None),
                &shape,
                10,
                false,
                Activation::Relu,
                &mut rng,
            )
            .unwrap();
            let out = net.predict(ndarray::Array2::zeros((2, shape.iter().product())).view());
            assert_eq!(out.dim(), (2, 10), "{shape:?}");
        }
        let err = build(
            &"cnn:c4k5p0".parse().unwrap(),
            &[1, 3, 3],
            2,
            false,
            Activation::Relu,
            &mut rng,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("does not fit a 1×3×3 input"),
            "{err}"
        );
    }
}
