//! The int8 convolution layer ([`ConvI8`]) and what runs around it in a
//! quantized CNN: int8 pooling (see [`crate::kernels::packing::conv_i8`] for the
//! arithmetic).
//!
//! A convolution reads int8 activations with a static scale and zero point
//! (the padding holds the zero point, the quantized real 0), multiplies them
//! by per-output-channel int8 filters into i32, and either requantizes to
//! int8 (optionally fusing a ReLU as the clamp) or dequantizes to f32 —
//! exactly the two outputs of the dense layer ([`Int8Output`]).
//! Pooling keeps the activation's scale and zero point, so a
//! conv → pool → conv → pool → dense chain never leaves the integers.
//!
//! They are compiled only with the feature `int8-conv`. Without it — the browser package, and the dense-only module kernel that
//! `kiln build` embeds for models without int8 convolutions, both within
//! their size budgets — [`Here`] is uninhabited, so no [`ConvI8`] or
//! [`PoolI8`] can exist and the compiler drops every path that would handle
//! one; the blob decoder refuses their op codes with a message pointing at
//! the full model module, which runs them.

use alloc::borrow::Cow;

use super::output::{Int8Output, zp_ok};
use super::scratch::Int8Scratch;
use crate::ModelError;
use crate::kernels::packing::conv_i8 as k;
use crate::kernels::{ConvGeom, PoolGeom, PoolKind};
use crate::model::check::check_len;

/// A marker every int8 convolution and pooling layer holds: `()` with the
/// feature `int8-conv`, uninhabited without it (see the module note).
#[cfg(feature = "int8-conv")]
pub(crate) type Here = ();
/// A marker every int8 convolution and pooling layer holds: uninhabited
/// without the feature `int8-conv` (see the module note).
#[cfg(not(feature = "int8-conv"))]
pub(crate) type Here = core::convert::Infallible;

/// Max or average pooling of int8 values; the scale and zero point stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolI8 {
    pub kind: PoolKind,
    pub geom: PoolGeom,
    pub(crate) here: Here,
}

impl PoolI8 {
    /// A pooling layer at index `layer` over a valid geometry. Always an
    /// error without the feature `int8-conv` (see the module note).
    pub fn new(layer: usize, kind: PoolKind, geom: PoolGeom) -> Result<Self, ModelError> {
        geom.check().ok_or(ModelError::Geometry { layer })?;
        #[cfg(feature = "int8-conv")]
        return Ok(PoolI8 {
            kind,
            geom,
            here: (),
        });
        #[cfg(not(feature = "int8-conv"))]
        {
            let _ = kind;
            Err(ModelError::Quant {
                layer,
                what: NOT_HERE,
            })
        }
    }
}

/// An int8 2-D convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvI8<'a> {
    /// Boxed, so that the largest int8 layer stays no larger than a dense
    /// one (every [`crate::Layer`] pays for the largest).
    pub geom: alloc::boxed::Box<ConvGeom>,
    /// Filters packed by [`k::pack_filters`] (groups of four output
    /// channels, neighbouring taps in pairs; see [`crate::kernels::packing::conv_i8`]).
    pub weight: Cow<'a, [i8]>,
    /// i32 bias at the accumulator scale with the input zero point folded in
    /// (`bias − z_x · Σ_t W[o][t]`).
    pub bias: Cow<'a, [i32]>,
    /// The input's zero point, written into the padding taps.
    pub input_zero_point: i32,
    /// Requantize or dequantize, as for [`super::DenseI8`]; a float output
    /// needs the static input scale (`input_scale: Some`).
    pub output: Int8Output<'a>,
    pub(crate) here: Here,
}

impl<'a> ConvI8<'a> {
    /// Packs PyTorch-layout int8 filters (`out_c × in_c × kh × kw`, the
    /// model file's layout). `layer` is the index used in errors. Always an
    /// error without the feature `int8-conv` (see the module note).
    pub fn from_filters(
        layer: usize,
        geom: ConvGeom,
        filters: &[i8],
        bias: Cow<'a, [i32]>,
        input_zero_point: i32,
        output: Int8Output<'a>,
    ) -> Result<Self, ModelError> {
        geom.check_plain().ok_or(ModelError::Geometry { layer })?;
        let too_large = ModelError::TooLarge { layer };
        let n = geom.weight_len().ok_or(too_large.clone())?;
        if filters.len() != n {
            return Err(ModelError::TensorLen {
                layer,
                tensor: "weight",
                expected: n,
                found: filters.len(),
            });
        }
        let mut weight = alloc::vec![0i8; k::packed_len(&geom).ok_or(too_large)?];
        k::pack_filters(filters, &geom, &mut weight);
        #[cfg(feature = "int8-conv")]
        return Ok(ConvI8 {
            geom: geom.into(),
            weight: Cow::Owned(weight),
            bias,
            input_zero_point,
            output,
            here: (),
        });
        #[cfg(not(feature = "int8-conv"))]
        {
            let _ = (bias, input_zero_point, output, weight);
            Err(ModelError::Quant {
                layer,
                what: NOT_HERE,
            })
        }
    }
}

impl ConvI8<'_> {
    /// Values per row this layer reads (0 for an invalid geometry).
    pub(super) fn input_len(&self) -> usize {
        self.geom.input_len().unwrap_or(0)
    }

    /// Values per row this layer writes (0 for an invalid geometry).
    pub(super) fn output_len(&self) -> usize {
        self.geom.output_len().unwrap_or(0)
    }

    /// Checks geometry, tensor lengths and quantization parameters.
    pub(super) fn check(&self, layer: usize) -> Result<(), ModelError> {
        // Only the f32 convolution runs groups, dilation and uneven pads.
        self.geom
            .check_plain()
            .ok_or(ModelError::Geometry { layer })?;
        let packed = k::packed_len(&self.geom).ok_or(ModelError::TooLarge { layer })?;
        k::scratch_len(&self.geom).ok_or(ModelError::TooLarge { layer })?;
        check_len(layer, "weight", packed, self.weight.len())?;
        check_len(layer, "bias", self.geom.out_c, self.bias.len())?;
        if !zp_ok(self.input_zero_point) {
            return Err(ModelError::Quant {
                layer,
                what: "the input zero point must be in -128..=127",
            });
        }
        if let Int8Output::Float {
            input_scale: None, ..
        } = self.output
        {
            return Err(ModelError::Quant {
                layer,
                what: "an int8 convolution needs a static input scale",
            });
        }
        self.output.check(layer, self.geom.out_c)
    }

    /// Length of the convolution scratch the layer needs (`check` makes
    /// sure it exists).
    pub(super) fn cols_len(&self) -> usize {
        k::scratch_len(&self.geom).unwrap_or(0)
    }

    /// This layer with every tensor copied out of the blob it borrows.
    pub(super) fn into_owned(self) -> ConvI8<'static> {
        ConvI8 {
            geom: self.geom,
            weight: Cow::Owned(self.weight.into_owned()),
            bias: Cow::Owned(self.bias.into_owned()),
            input_zero_point: self.input_zero_point,
            output: self.output.into_owned(),
            here: self.here,
        }
    }

    /// Runs on `batch` rows of `q.cur` (int8); the result is in `q.cur`, or
    /// in `f32_buf` for a float output.
    pub(super) fn run(&self, batch: usize, f32_buf: &mut [f32], q: &mut Int8Scratch) {
        let (xn, yn) = (batch * self.input_len(), batch * self.output_len());
        let acc = &mut q.acc[..yn];
        let pad = self.input_zero_point as i8;
        let x = &q.cur[..xn];
        crate::kernels::conv2d_i8(
            x,
            &self.weight,
            &self.bias,
            &self.geom,
            pad,
            &mut q.cols,
            acc,
        );
        let plane = self.geom.out_h() * self.geom.out_w();
        match &self.output {
            Int8Output::Int8 {
                multiplier,
                shift,
                zero_point,
                relu,
            } => {
                let lo = if *relu { *zero_point } else { -128 };
                let y = &mut q.next[..yn];
                crate::kernels::requantize_planes(
                    acc,
                    multiplier,
                    shift,
                    *zero_point,
                    lo,
                    plane,
                    y,
                );
                core::mem::swap(&mut q.cur, &mut q.next);
            }
            Int8Output::Float {
                input_scale,
                weight_scale,
                bias,
            } => {
                // `check` refuses a conv without a static input scale.
                let s = input_scale.unwrap_or(1.0);
                let y = &mut f32_buf[..yn];
                crate::kernels::dequantize_planes(acc, s, weight_scale, bias, plane, y);
            }
        }
    }
}

impl PoolI8 {
    /// Values per row this layer reads (0 for an invalid geometry).
    pub(super) fn input_len(&self) -> usize {
        self.geom.input_len().unwrap_or(0)
    }

    /// Values per row this layer writes (0 for an invalid geometry).
    pub(super) fn output_len(&self) -> usize {
        self.geom.check().map_or(0, |()| self.geom.output_len())
    }

    /// Checks the geometry.
    pub(super) fn check(&self, layer: usize) -> Result<(), ModelError> {
        self.geom.check().ok_or(ModelError::Geometry { layer })
    }

    /// Pools `batch` rows of `q.cur`; the result is in `q.cur`.
    pub(super) fn run(&self, batch: usize, q: &mut Int8Scratch) {
        let (xn, yn) = (batch * self.input_len(), batch * self.output_len());
        crate::kernels::pool_i8(self.kind, &q.cur[..xn], &self.geom, &mut q.next[..yn]);
        core::mem::swap(&mut q.cur, &mut q.next);
    }
}

/// Why a build without `int8-conv` refuses these layers (see the module note).
#[cfg(not(feature = "int8-conv"))]
pub(crate) const NOT_HERE: &str = "int8 convolution is not in this kernel build (the browser package \
     leaves it out); run the model module `kiln build` makes (docs/abi.md) or quantize with --dynamic";

/// A build without the feature refuses int8 convolution and pooling by
/// layer, with [`NOT_HERE`], instead of running them.
#[cfg(all(test, not(feature = "int8-conv")))]
mod without_feature {
    use super::*;

    #[test]
    fn int8_conv_and_pool_are_refused_by_layer() {
        let g = PoolGeom {
            c: 1,
            h: 4,
            w: 4,
            k: 2,
            stride: 2,
        };
        let refused = |layer| ModelError::Quant {
            layer,
            what: NOT_HERE,
        };
        assert_eq!(PoolI8::new(3, PoolKind::Max, g), Err(refused(3)));
        let geom = ConvGeom::new([1, 4, 4, 1, 3, 3, 1, 1]);
        let conv = ConvI8::from_filters(
            5,
            geom,
            &[1; 9],
            alloc::vec![0].into(),
            0,
            Int8Output::Float {
                input_scale: Some(1.0),
                weight_scale: alloc::vec![1.0].into(),
                bias: alloc::vec![0.0].into(),
            },
        );
        assert_eq!(conv, Err(refused(5)));
    }
}

#[cfg(all(test, feature = "int8-conv"))]
mod tests {
    use super::*;
    use crate::model::{DenseI8, Int8Layer};
    use crate::{Layer, Model};

    /// quantize → conv (relu, int8) → max pool → avg pool → conv (f32):
    /// a hand-checked run, the blob round trip, and totality of decoding
    /// every truncation and byte flip.
    fn layers(output_scale: Option<f32>) -> alloc::vec::Vec<Layer<'static>> {
        let g1 = ConvGeom {
            in_c: 1,
            in_h: 4,
            in_w: 4,
            out_c: 2,
            kh: 3,
            kw: 3,
            stride: 1,
            pad_top: 1,
            pad_left: 1,
            pad_bottom: 1,
            pad_right: 1,
            dilation: 1,
            groups: 1,
        };
        let ones = [1i8; 9];
        let mut filters = ones.to_vec();
        filters.extend(ones.map(|v| -v));
        let c1 = ConvI8::from_filters(
            1,
            g1,
            &filters,
            alloc::vec![0, 0].into(),
            0,
            Int8Output::Int8 {
                multiplier: alloc::vec![1 << 30; 2].into(),
                shift: alloc::vec![30; 2].into(),
                zero_point: 0,
                relu: true,
            },
        )
        .unwrap();
        let pool = |kind, h| {
            Layer::Int8(Int8Layer::Pool(
                PoolI8::new(
                    2,
                    kind,
                    PoolGeom {
                        c: 2,
                        h,
                        w: h,
                        k: 2,
                        stride: 2,
                    },
                )
                .unwrap(),
            ))
        };
        let g2 = ConvGeom {
            in_c: 2,
            in_h: 1,
            in_w: 1,
            out_c: 1,
            kh: 1,
            kw: 1,
            stride: 1,
            pad_top: 0,
            pad_left: 0,
            pad_bottom: 0,
            pad_right: 0,
            dilation: 1,
            groups: 1,
        };
        let c2 = ConvI8::from_filters(
            4,
            g2,
            &[2, 3],
            alloc::vec![1].into(),
            0,
            Int8Output::Float {
                input_scale: output_scale,
                weight_scale: alloc::vec![0.5].into(),
                bias: alloc::vec![0.25].into(),
            },
        )
        .unwrap();
        alloc::vec![
            Layer::Int8(Int8Layer::Quantize {
                len: 16,
                scale: 1.0,
                zero_point: 0
            }),
            Layer::Int8(Int8Layer::Conv(c1)),
            pool(PoolKind::Max, 4),
            pool(PoolKind::Avg, 2),
            Layer::Int8(Int8Layer::Conv(c2)),
        ]
    }

    fn cnn(output_scale: Option<f32>) -> Model<'static> {
        Model::new(16, layers(output_scale)).unwrap()
    }

    #[test]
    fn int8_cnn_runs_round_trips_and_decodes_totally() {
        let m = cnn(Some(2.0));
        // All ones: channel 0 sums the 4, 6 or 9 taps inside the image;
        // channel 1 is their negation, which the fused relu clamps to 0.
        // Every 2×2 window of channel 0's [[4,6,6,4],[6,9,9,6],…] has max 9;
        // the average of the four 9s is 9. c2: 2·9 + 3·0 + 1 = 19, then
        // 19 · (2 · 0.5) + 0.25.
        let x = [1.0f32; 16];
        assert_eq!(m.predict(&x).unwrap(), [19.25]);
        let blob = crate::blob::encode(&m);
        let back = crate::blob::decode(&blob).unwrap();
        assert_eq!(back, m);
        for n in 0..blob.len() {
            assert!(crate::blob::decode(&blob[..n]).is_err(), "prefix {n}");
        }
        for i in 0..blob.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = blob.clone();
                b[i] ^= flip;
                if let Ok(m) = crate::blob::decode(&b) {
                    let _ = m.predict(&x);
                }
            }
        }
    }

    #[test]
    fn bad_conv_parameters_are_refused() {
        assert!(matches!(
            Model::new(16, layers(None)),
            Err(ModelError::Quant { layer: 4, .. })
        ));
        for s in [0.0, -1.0, f32::NAN] {
            let mut l = layers(Some(1.0));
            if let Layer::Int8(Int8Layer::Conv(c)) = &mut l[4] {
                c.output = Int8Output::Float {
                    input_scale: Some(1.0),
                    weight_scale: alloc::vec![s].into(),
                    bias: alloc::vec![0.0].into(),
                };
            }
            assert!(matches!(
                Model::new(16, l),
                Err(ModelError::Quant { layer: 4, .. })
            ));
        }
        let mut l = layers(Some(1.0));
        if let Layer::Int8(Int8Layer::Conv(c)) = &mut l[1] {
            c.weight.to_mut().pop();
        }
        assert!(matches!(
            Model::new(16, l),
            Err(ModelError::TensorLen {
                layer: 1,
                tensor: "weight",
                ..
            })
        ));
        // A dense int8 layer cannot read the f32 output of the last conv.
        let d = DenseI8::from_rows(
            5,
            1,
            1,
            &[1],
            alloc::vec![0].into(),
            Int8Output::Float {
                input_scale: Some(1.0),
                weight_scale: alloc::vec![1.0].into(),
                bias: alloc::vec![0.0].into(),
            },
        )
        .unwrap();
        let mut l = layers(Some(1.0));
        l.push(Layer::Int8(Int8Layer::Dense(d)));
        assert!(matches!(
            Model::new(16, l),
            Err(ModelError::Domain { layer: 5, .. })
        ));
    }
}
