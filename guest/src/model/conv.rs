//! The CNN family of f32 layers ([`ConvLayer`], feature `conv`):
//! convolution, pooling and the activations of CNNs, each a
//! [`Layer::Conv`](super::Layer::Conv). A build without the feature — the
//! MLP module kernel — holds none of them ([`super::family`]).

use alloc::borrow::Cow;

use super::Tensor;
use super::check::{check_rows, check_tensor};
use crate::kernels::{self, ConvGeom, PoolGeom, PoolKind};
use crate::{Layer, ModelError};

/// A layer of the CNN family.
#[derive(Debug, Clone, PartialEq)]
pub enum ConvLayer<'a> {
    /// 2-D convolution over NCHW rows, `weight` stored tap-major
    /// (`in_c × kh × kw × out_c`), see [`kernels::generic::conv2d`].
    Conv2d {
        geom: ConvGeom,
        weight: Tensor<'a>,
        bias: Tensor<'a>,
    },
    /// Max or average pooling over NCHW rows, see [`kernels::generic::pool`].
    Pool { kind: PoolKind, geom: PoolGeom },
    /// The mean of each channel's `inner` values: `channels × inner` in,
    /// `channels` out.
    GlobalAvgPool { channels: usize, inner: usize },
    /// Per-channel leaky ReLU (ONNX `PRelu`): `if x < 0 { x · slope[c] }
    /// else { x }` over rows of `slope.len() × inner` values.
    PRelu { inner: usize, slope: Tensor<'a> },
    /// `clip(x, min, max)` over rows of `len` values (ONNX `Clip`; ReLU6),
    /// see [`kernels::generic::clip`].
    Clip { min: f32, max: f32, len: usize },
    /// `clip(alpha·x + beta, 0, 1)` over rows of `len` values (ONNX
    /// `HardSigmoid`), see [`kernels::generic::hard_sigmoid`].
    HardSigmoid { alpha: f32, beta: f32, len: usize },
    /// `x · clip(x/6 + 1/2, 0, 1)` over rows of `len` values (ONNX
    /// `HardSwish`), see [`kernels::generic::hard_swish`].
    HardSwish { len: usize },
}

impl<'a> Layer<'a> {
    /// `layer` (the index reported in errors) as a [`Layer`]: an error
    /// naming it in a build without the CNN family.
    pub fn conv(index: usize, layer: ConvLayer<'a>) -> Result<Self, ModelError> {
        let here = super::family::conv(index, layer.name())?;
        Ok(Layer::Conv(layer, here))
    }

    /// A convolution from PyTorch-style weights (`out_c × in_c/groups × kh
    /// × kw`, as the model file stores them), transposed to the kernel's
    /// tap-major layout per group. `layer` is the index reported in errors.
    pub fn conv2d_from_filters(
        layer: usize,
        geom: ConvGeom,
        filters: &[f32],
        bias: Tensor<'a>,
    ) -> Result<Self, ModelError> {
        let here = super::family::conv(layer, "conv2d")?;
        geom.check().ok_or(ModelError::Geometry { layer })?;
        let (taps, out_c) = (geom.taps().unwrap_or(0), geom.out_c);
        check_rows(layer, taps, out_c, filters.len())?;
        // Output o is output o % og of group o / og, whose weights start at
        // group · taps · og.
        let og = geom.group_out().max(1);
        let mut weight = alloc::vec![0.0f32; filters.len()];
        for (o, filter) in filters.chunks_exact(taps.max(1)).enumerate() {
            let start = o / og * taps * og + o % og;
            for (t, &v) in filter.iter().enumerate() {
                weight[start + t * og] = v;
            }
        }
        let conv = ConvLayer::Conv2d {
            geom,
            weight: Cow::Owned(weight),
            bias,
        };
        Ok(Layer::Conv(conv, here))
    }
}

impl ConvLayer<'_> {
    /// The layer's op, as errors name it.
    pub fn name(&self) -> &'static str {
        match self {
            ConvLayer::Conv2d { .. } => "conv2d",
            ConvLayer::Pool {
                kind: PoolKind::Max,
                ..
            } => "max_pool",
            ConvLayer::Pool {
                kind: PoolKind::Avg,
                ..
            } => "avg_pool",
            ConvLayer::GlobalAvgPool { .. } => "global_avg_pool",
            ConvLayer::PRelu { .. } => "prelu",
            ConvLayer::Clip { .. } => "clip",
            ConvLayer::HardSigmoid { .. } => "hard_sigmoid",
            ConvLayer::HardSwish { .. } => "hard_swish",
        }
    }

    /// Values per row this layer reads (0 for an invalid geometry).
    pub(super) fn input_len(&self) -> usize {
        match self {
            ConvLayer::Conv2d { geom, .. } => geom.input_len().unwrap_or(0),
            ConvLayer::Pool { geom, .. } => geom.input_len().unwrap_or(0),
            ConvLayer::PRelu { inner, slope } => slope.len().saturating_mul(*inner),
            ConvLayer::GlobalAvgPool { channels, inner } => channels.saturating_mul(*inner),
            ConvLayer::Clip { len, .. }
            | ConvLayer::HardSigmoid { len, .. }
            | ConvLayer::HardSwish { len } => *len,
        }
    }

    /// Values per row this layer writes (0 for an invalid geometry).
    pub(super) fn output_len(&self) -> usize {
        match self {
            ConvLayer::Conv2d { geom, .. } => geom.output_len().unwrap_or(0),
            ConvLayer::Pool { geom, .. } => geom.check().map_or(0, |()| geom.output_len()),
            ConvLayer::GlobalAvgPool { channels, .. } => *channels,
            _ => self.input_len(),
        }
    }

    /// Whether the layer writes a new tensor ([`ConvLayer::run_into`])
    /// rather than rewriting its input ([`ConvLayer::run_in_place`]).
    pub(super) fn writes_anew(&self) -> bool {
        matches!(
            self,
            ConvLayer::Conv2d { .. } | ConvLayer::Pool { .. } | ConvLayer::GlobalAvgPool { .. }
        )
    }

    /// This layer with every tensor copied out of the blob it borrows.
    pub(super) fn into_owned(self) -> ConvLayer<'static> {
        let own = |t: Tensor<'_>| Cow::Owned(t.into_owned());
        match self {
            ConvLayer::Conv2d { geom, weight, bias } => ConvLayer::Conv2d {
                geom,
                weight: own(weight),
                bias: own(bias),
            },
            ConvLayer::Pool { kind, geom } => ConvLayer::Pool { kind, geom },
            ConvLayer::GlobalAvgPool { channels, inner } => {
                ConvLayer::GlobalAvgPool { channels, inner }
            }
            ConvLayer::PRelu { inner, slope } => ConvLayer::PRelu {
                inner,
                slope: own(slope),
            },
            ConvLayer::Clip { min, max, len } => ConvLayer::Clip { min, max, len },
            ConvLayer::HardSigmoid { alpha, beta, len } => {
                ConvLayer::HardSigmoid { alpha, beta, len }
            }
            ConvLayer::HardSwish { len } => ConvLayer::HardSwish { len },
        }
    }

    /// Checks the geometry of a convolution or pooling layer: what its
    /// widths rest on, so it comes before every other check.
    pub(super) fn check_geometry(&self, index: usize) -> Result<(), ModelError> {
        let geometry = ModelError::Geometry { layer: index };
        match self {
            ConvLayer::Conv2d { geom, .. } => geom.check().ok_or(geometry),
            ConvLayer::Pool { geom, .. } => geom.check().ok_or(geometry),
            _ => Ok(()),
        }
    }

    /// Checks the layer's parameters; `scan` also checks that every f32
    /// tensor is finite.
    pub(super) fn check(&self, index: usize, scan: bool) -> Result<(), ModelError> {
        let bad_param = |param| ModelError::BadParam {
            layer: index,
            param,
        };
        self.check_geometry(index)?;
        match self {
            ConvLayer::Conv2d { geom, weight, bias } => {
                let too_large = ModelError::TooLarge { layer: index };
                let n = geom.weight_len().ok_or(too_large)?;
                check_tensor(index, "weight", n, weight, scan)?;
                check_tensor(index, "bias", geom.out_c, bias, scan)
            }
            ConvLayer::Pool { .. } | ConvLayer::HardSwish { .. } => Ok(()),
            ConvLayer::GlobalAvgPool { channels, inner } => {
                if *channels == 0 || *inner == 0 {
                    return Err(bad_param("inner"));
                }
                Ok(())
            }
            ConvLayer::PRelu { inner, slope } => {
                if *inner == 0 || slope.is_empty() {
                    return Err(bad_param("inner"));
                }
                check_tensor(index, "slope", slope.len(), slope, scan)
            }
            // Infinite bounds clip one side only; NaN bounds or min > max
            // have no meaning.
            ConvLayer::Clip { min, max, .. } => match (min.is_nan(), max.is_nan() || min > max) {
                (true, _) => Err(bad_param("min")),
                (_, true) => Err(bad_param("max")),
                _ => Ok(()),
            },
            ConvLayer::HardSigmoid { alpha, beta, .. } => {
                match (alpha.is_finite(), beta.is_finite()) {
                    (false, _) => Err(bad_param("alpha")),
                    (_, false) => Err(bad_param("beta")),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Runs a layer that writes a new tensor ([`ConvLayer::writes_anew`]):
    /// reads `x`, writes `y`.
    #[inline(always)]
    pub(super) fn run_into(&self, x: &[f32], y: &mut [f32]) {
        match self {
            ConvLayer::Conv2d { geom, weight, bias } => kernels::conv2d(x, weight, bias, geom, y),
            ConvLayer::Pool { kind, geom } => kernels::pool(*kind, x, geom, y),
            ConvLayer::GlobalAvgPool { channels, inner } => {
                kernels::global_avg_pool(x, *channels, *inner, y)
            }
            _ => {}
        }
    }

    /// Runs a layer that rewrites its tensor `x` in place.
    #[inline(always)]
    pub(super) fn run_in_place(&self, x: &mut [f32]) {
        match self {
            ConvLayer::PRelu { inner, slope } => kernels::prelu(x, slope, *inner),
            ConvLayer::Clip { min, max, .. } => kernels::clip(x, *min, *max),
            ConvLayer::HardSigmoid { alpha, beta, .. } => kernels::hard_sigmoid(x, *alpha, *beta),
            ConvLayer::HardSwish { .. } => kernels::hard_swish(x),
            _ => {}
        }
    }
}

/// A build without the family refuses its layers by name.
#[cfg(all(test, not(feature = "conv")))]
mod without_feature {
    use super::*;

    #[test]
    fn conv_layers_are_refused_by_name() {
        let refused = |layer, op| ModelError::NotInKernel {
            layer,
            op,
            feature: "conv",
        };
        let geom = ConvGeom::new([1, 4, 4, 1, 3, 3, 1, 1]);
        let conv = Layer::conv2d_from_filters(2, geom, &[1.0; 9], alloc::vec![0.0].into());
        assert_eq!(conv, Err(refused(2, "conv2d")));
        let clip = ConvLayer::Clip {
            min: 0.0,
            max: 6.0,
            len: 4,
        };
        assert_eq!(Layer::conv(4, clip), Err(refused(4, "clip")));
    }
}

#[cfg(all(test, feature = "conv"))]
mod tests {
    use super::*;
    use crate::Model;
    use alloc::vec;

    fn conv(layer: ConvLayer<'static>) -> Layer<'static> {
        Layer::conv(0, layer).unwrap()
    }

    #[test]
    fn checks_the_import_layers() {
        let bad = |layer| Model::new(4, vec![conv(layer)]).unwrap_err();
        assert_eq!(
            bad(ConvLayer::Clip {
                min: 1.0,
                max: 0.0,
                len: 4
            }),
            ModelError::BadParam {
                layer: 0,
                param: "max"
            }
        );
        assert!(matches!(
            bad(ConvLayer::HardSigmoid {
                alpha: f32::INFINITY,
                beta: 0.5,
                len: 4
            }),
            ModelError::BadParam { param: "alpha", .. }
        ));
        let relu6 = conv(ConvLayer::Clip {
            min: 0.0,
            max: 6.0,
            len: 4,
        });
        let m = Model::new(4, vec![relu6, conv(ConvLayer::HardSwish { len: 4 })]).unwrap();
        assert_eq!(
            m.predict(&[-1.0, 1.5, 9.0, 3.0]).unwrap(),
            [0.0, 1.125, 6.0, 3.0]
        );
        assert!(matches!(
            bad(ConvLayer::GlobalAvgPool {
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
                conv(ConvLayer::GlobalAvgPool {
                    channels: 2,
                    inner: 2,
                }),
            ],
        )
        .unwrap();
        assert_eq!(m.predict(&[1.0, 2.0, 3.0, 4.0]).unwrap(), [4.0, -3.5]);
    }
}
