//! Quantized (int8) layers: what a model built by `kiln quantize` runs.
//!
//! A quantized graph is an f32 graph in which runs of dense layers execute in
//! integers. [`Int8Layer::Quantize`] (or [`Int8Layer::QuantizeDynamic`])
//! turns f32 activations into int8; [`DenseI8`] layers multiply int8 by int8
//! into i32 and either requantize to int8 with an integer multiplier and
//! shift ([`Int8Output::Int8`]) or dequantize to f32
//! ([`Int8Output::Float`]), after which f32 layers (softmax…) continue.
//! [`ConvI8`] does the same for convolutions, and [`Int8Layer::Pool`] pools
//! int8 activations, so a quantized CNN stays in integers from its input
//! quantize to its last dense layer.
//! The arithmetic is defined in [`crate::kernels::generic`] and documented in
//! `docs/quantization.md`.
//!
//! Every value flowing between layers has a [`Domain`]; [`crate::Model::new`]
//! checks that each layer receives the domain it reads.

mod conv;
mod output;
mod scratch;

#[cfg(not(feature = "int8-conv"))]
pub(crate) use conv::NOT_HERE;
pub use conv::{ConvI8, PoolI8};
pub use output::{Domain, Int8Output};
pub(crate) use scratch::Int8Scratch;

use alloc::borrow::Cow;

use crate::ModelError;
use crate::kernels::{self, packing::dense_i8 as k};
use crate::model::check::{check_len, check_rows};
use output::{scale_ok, zp_ok};

/// A quantized layer.
#[derive(Debug, Clone, PartialEq)]
pub enum Int8Layer<'a> {
    /// f32 → int8: `q = clamp(nearest(x · (1/scale)) + zero_point, −128, 127)`.
    Quantize {
        len: usize,
        scale: f32,
        zero_point: i32,
    },
    /// f32 → int8 with a per-row symmetric scale `max|x| / 127`.
    QuantizeDynamic { len: usize },
    /// int8 × int8 → i32 → int8 or f32.
    Dense(DenseI8<'a>),
    /// int8 convolution → int8 or f32.
    Conv(ConvI8<'a>),
    /// Max or average pooling of int8 values (scale and zero point kept).
    Pool(PoolI8),
}

/// An int8 dense layer.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseI8<'a> {
    pub inputs: usize,
    pub outputs: usize,
    /// Weights in the packed layout of [`crate::kernels::packing::dense_i8::pack`].
    pub weight: Cow<'a, [i8]>,
    /// i32 bias at the accumulator scale, with the input zero point folded
    /// in (`bias − z_x · Σ_i W[o][i]`).
    pub bias: Cow<'a, [i32]>,
    pub output: Int8Output<'a>,
}

impl<'a> DenseI8<'a> {
    /// Packs output-major int8 rows (`outputs × inputs`, the model file's
    /// layout) into the kernel layout. `layer` is the index used in errors.
    pub fn from_rows(
        layer: usize,
        inputs: usize,
        outputs: usize,
        rows: &[i8],
        bias: Cow<'a, [i32]>,
        output: Int8Output<'a>,
    ) -> Result<Self, ModelError> {
        check_rows(layer, inputs, outputs, rows.len())?;
        let len = k::packed_len(inputs, outputs).ok_or(ModelError::TooLarge { layer })?;
        let mut weight = alloc::vec![0i8; len];
        k::pack(rows, inputs, outputs, &mut weight);
        Ok(DenseI8 {
            inputs,
            outputs,
            weight: Cow::Owned(weight),
            bias,
            output,
        })
    }
}

impl<'a> Int8Layer<'a> {
    /// Values per row this layer reads (0 for an invalid geometry).
    pub fn input_len(&self) -> usize {
        match self {
            Int8Layer::Quantize { len, .. } | Int8Layer::QuantizeDynamic { len } => *len,
            Int8Layer::Dense(d) => d.inputs,
            Int8Layer::Conv(c) => c.input_len(),
            Int8Layer::Pool(p) => p.input_len(),
        }
    }

    /// Values per row this layer writes (0 for an invalid geometry).
    pub fn output_len(&self) -> usize {
        match self {
            Int8Layer::Quantize { len, .. } | Int8Layer::QuantizeDynamic { len } => *len,
            Int8Layer::Dense(d) => d.outputs,
            Int8Layer::Conv(c) => c.output_len(),
            Int8Layer::Pool(p) => p.output_len(),
        }
    }

    /// The domain this layer reads.
    pub fn input_domain(&self) -> Domain {
        match self {
            Int8Layer::Quantize { .. } | Int8Layer::QuantizeDynamic { .. } => Domain::F32,
            Int8Layer::Dense(d) => match &d.output {
                Int8Output::Float {
                    input_scale: None, ..
                } => Domain::Int8Dynamic,
                _ => Domain::Int8Static,
            },
            Int8Layer::Conv(_) | Int8Layer::Pool(_) => Domain::Int8Static,
        }
    }

    /// The domain this layer writes.
    pub fn output_domain(&self) -> Domain {
        match self {
            Int8Layer::Quantize { .. } => Domain::Int8Static,
            Int8Layer::QuantizeDynamic { .. } => Domain::Int8Dynamic,
            Int8Layer::Dense(DenseI8 { output, .. }) => output.domain(),
            Int8Layer::Conv(c) => c.output.domain(),
            Int8Layer::Pool(_) => Domain::Int8Static,
        }
    }

    // Without `int8-conv`, `Conv` is uninhabited (see `conv`), so its arm
    // is unreachable there.
    /// This layer with every tensor copied out of the blob it borrows.
    #[cfg_attr(not(feature = "int8-conv"), allow(unreachable_code))]
    pub fn into_owned(self) -> Int8Layer<'static> {
        fn own<T: Clone>(c: Cow<'_, [T]>) -> Cow<'static, [T]> {
            Cow::Owned(c.into_owned())
        }
        match self {
            Int8Layer::Quantize {
                len,
                scale,
                zero_point,
            } => Int8Layer::Quantize {
                len,
                scale,
                zero_point,
            },
            Int8Layer::QuantizeDynamic { len } => Int8Layer::QuantizeDynamic { len },
            Int8Layer::Dense(d) => Int8Layer::Dense(DenseI8 {
                inputs: d.inputs,
                outputs: d.outputs,
                weight: own(d.weight),
                bias: own(d.bias),
                output: d.output.into_owned(),
            }),
            Int8Layer::Conv(c) => Int8Layer::Conv(c.into_owned()),
            Int8Layer::Pool(p) => Int8Layer::Pool(p),
        }
    }

    /// Checks tensor lengths and quantization parameters.
    pub(crate) fn check(&self, layer: usize) -> Result<(), ModelError> {
        let bad = |what: &'static str| Err(ModelError::Quant { layer, what });
        let len = |tensor, expected, found| check_len(layer, tensor, expected, found);
        match self {
            Int8Layer::Quantize {
                scale, zero_point, ..
            } => {
                if !scale_ok(*scale) || !scale_ok(1.0 / *scale) {
                    return bad("the input scale must be a positive, finite number");
                }
                if !zp_ok(*zero_point) {
                    return bad("the zero point must be in -128..=127");
                }
                Ok(())
            }
            Int8Layer::QuantizeDynamic { .. } => Ok(()),
            Int8Layer::Dense(d) => {
                let packed =
                    k::packed_len(d.inputs, d.outputs).ok_or(ModelError::TooLarge { layer })?;
                len("weight", packed, d.weight.len())?;
                len("bias", d.outputs, d.bias.len())?;
                d.output.check(layer, d.outputs)
            }
            Int8Layer::Conv(c) => c.check(layer),
            Int8Layer::Pool(p) => p.check(layer),
        }
    }

    /// Runs the layer on `batch` rows. f32 data is read from and written to
    /// `f32_buf`; int8 data lives in `q`.
    pub(crate) fn run(&self, batch: usize, f32_buf: &mut [f32], q: &mut Int8Scratch) {
        match self {
            Int8Layer::Quantize {
                len,
                scale,
                zero_point,
            } => {
                let n = batch * len;
                kernels::quantize_i8(&f32_buf[..n], 1.0 / scale, *zero_point, &mut q.cur[..n]);
            }
            Int8Layer::QuantizeDynamic { len } => {
                let len = (*len).max(1);
                for (r, (x, y)) in f32_buf
                    .chunks_exact(len)
                    .zip(q.cur.chunks_exact_mut(len))
                    .take(batch)
                    .enumerate()
                {
                    let (scale, inv) = kernels::dynamic_scale(x, 127.0);
                    q.row_scale[r] = scale;
                    kernels::quantize_i8(x, inv, 0, y);
                }
            }
            Int8Layer::Dense(d) => {
                let (xn, yn) = (batch * d.inputs, batch * d.outputs);
                let acc = &mut q.acc[..yn];
                kernels::dense_i8(&q.cur[..xn], &d.weight, &d.bias, d.inputs, d.outputs, acc);
                match &d.output {
                    Int8Output::Int8 {
                        multiplier,
                        shift,
                        zero_point,
                        relu,
                    } => {
                        let lo = if *relu { *zero_point } else { -128 };
                        kernels::requantize(
                            acc,
                            multiplier,
                            shift,
                            *zero_point,
                            lo,
                            &mut q.next[..yn],
                        );
                        core::mem::swap(&mut q.cur, &mut q.next);
                    }
                    Int8Output::Float {
                        input_scale,
                        weight_scale,
                        bias,
                    } => {
                        if let Some(s) = input_scale {
                            q.row_scale[..batch].fill(*s);
                        }
                        kernels::dequantize(
                            acc,
                            &q.row_scale[..batch],
                            weight_scale,
                            bias,
                            &mut f32_buf[..yn],
                        );
                    }
                }
            }
            Int8Layer::Conv(c) => c.run(batch, f32_buf, q),
            Int8Layer::Pool(p) => p.run(batch, q),
        }
    }

    /// Length of the im2col column this layer needs (0 for most).
    pub(crate) fn cols_len(&self) -> usize {
        match self {
            Int8Layer::Conv(c) => c.cols_len(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Layer, Model};

    /// x → quantize → dense int8 (relu) → dense int8 → f32, checked against a
    /// hand computation.
    #[test]
    fn static_pipeline() {
        let q = Layer::Int8(Int8Layer::Quantize {
            len: 2,
            scale: 0.5,
            zero_point: 0,
        });
        // W = [[1, 2], [-1, 1]]; M = 0.5 (m = 2^30, shift 31)
        let d1 = DenseI8::from_rows(
            1,
            2,
            2,
            &[1, 2, -1, 1],
            alloc::vec![0, 0].into(),
            Int8Output::Int8 {
                multiplier: alloc::vec![1 << 30; 2].into(),
                shift: alloc::vec![31; 2].into(),
                zero_point: 0,
                relu: true,
            },
        )
        .unwrap();
        let d2 = DenseI8::from_rows(
            2,
            2,
            1,
            &[3, 1],
            alloc::vec![4].into(),
            Int8Output::Float {
                input_scale: Some(0.25),
                weight_scale: alloc::vec![2.0].into(),
                bias: alloc::vec![0.0].into(),
            },
        )
        .unwrap();
        let m = Model::new(
            2,
            alloc::vec![
                q,
                Layer::Int8(Int8Layer::Dense(d1)),
                Layer::Int8(Int8Layer::Dense(d2))
            ],
        )
        .unwrap();
        // x = [1, 2] → q = [2, 4] → acc1 = [10, 2] → [5, 1] → acc2 = 15 + 1 + 4 = 20
        // → 20 · (0.25 · 2) = 10
        assert_eq!(m.predict(&[1.0, 2.0]).unwrap(), [10.0]);
        // x = [-1, 0] → q = [-2, 0] → acc1 = [-2, 2] → relu [0, 1] → 1 + 4 = 5 → 2.5
        assert_eq!(m.predict(&[-1.0, 0.0]).unwrap(), [2.5]);
    }

    #[test]
    fn domains_are_checked() {
        let d = DenseI8::from_rows(
            0,
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
        let err = Model::new(1, alloc::vec![Layer::Int8(Int8Layer::Dense(d))]).unwrap_err();
        assert!(
            matches!(err, ModelError::Domain { layer: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn bad_scales_are_refused() {
        for scale in [0.0, -1.0, f32::NAN, f32::INFINITY, 1e-45] {
            let l = Layer::Int8(Int8Layer::Quantize {
                len: 1,
                scale,
                zero_point: 0,
            });
            assert!(matches!(
                Model::new(1, alloc::vec![l]),
                Err(ModelError::Quant { layer: 0, .. })
            ));
        }
    }
}
