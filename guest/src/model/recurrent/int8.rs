//! int8 weights of a recurrent layer ([`RecurrentI8`], what `kiln
//! quantize` makes of one; `docs/quantization.md`, "Recurrent layers").
//!
//! `w` and `r` are int8 per output channel (symmetric, a scale per row of
//! `[G·H, F]` and `[G·H, H]`). Each product quantizes its input rows —
//! every step's features for the projection, the hidden state (or the
//! original GRU's reset state) for the recurrent product — per row to 7
//! bits around a zero point of 64 (`q = nearest(v · 63/m) + 64`, `m =
//! max|v|`), runs the int8 dense kernel (its bias is the folded zero
//! point, `−64 · Σ_i W[o][i]`), and dequantizes with the row's scale
//! (`f32(acc) · (m/63 · s_w[o]) + bias[o]`): the product whose definition
//! is [`crate::kernels::generic::product_i8`]. Quantized inputs therefore
//! lie in 1..=127, the range in which the relaxed-SIMD dot product is exact
//! (`kernels/wasm/relaxed.rs`), for inputs of any sign. The gates, the
//! cell state and the hidden state stay f32.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use super::{RecurrentGeom, Tensor};
use crate::kernels::generic::{MatrixI8, PRODUCT_ZERO_POINT};
use crate::kernels::packing::dense_i8 as k;
use crate::model::check::check_len;
use crate::model::family;
use crate::{Layer, ModelError, RecurrentLayer, RecurrentWeights};

/// The most features or hidden values an int8 layer takes: beyond, a sum
/// of `(q − 64) · w` could leave i32.
const MAX_INPUTS: usize = (1 << 31) / (64 * 128);

/// A recurrent layer's int8 weights, each direction's after the other's:
/// `w` and `r` packed for the int8 dense kernel ([`k::pack`]; the original
/// GRU's `r` as two matrices, see [`RecurrentWeights`]), a scale per
/// output channel (`D·G·H` each) and the folded zero point per channel
/// (`−64 · Σ_i W[o][i]`, i32).
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentI8<'a> {
    pub w: Cow<'a, [i8]>,
    pub w_scale: Tensor<'a>,
    pub w_fold: Cow<'a, [i32]>,
    pub r: Cow<'a, [i8]>,
    pub r_scale: Tensor<'a>,
    pub r_fold: Cow<'a, [i32]>,
}

/// The packed lengths of one direction's `w` and `r`.
fn packed_lens(g: &RecurrentGeom) -> Option<(usize, usize)> {
    let (f, h, gh) = (g.features, g.hidden, g.gate_len()?);
    let r = if g.splits_r() {
        k::packed_len(h, 2 * h)?.checked_add(k::packed_len(h, h)?)?
    } else {
        k::packed_len(h, gh)?
    };
    Some((k::packed_len(f, gh)?, r))
}

/// Values per batch row of the int8 buffers: row scales (f32), quantized
/// inputs (i8), accumulators (i32). Saturating.
pub(super) fn scratch_lens(g: &RecurrentGeom) -> [usize; 3] {
    let gh = g.gate_len().unwrap_or(usize::MAX);
    [
        g.steps,
        g.input_len().max(g.hidden),
        g.steps.saturating_mul(gh),
    ]
}

/// Packs the rows `rows` (`outputs × inputs`, output-major) onto `packed`
/// and their folded zero points onto `fold`.
fn pack(rows: &[i8], inputs: usize, outputs: usize, packed: &mut Vec<i8>, fold: &mut Vec<i32>) {
    let at = packed.len();
    packed.resize(at + k::packed_len(inputs, outputs).unwrap_or(0), 0);
    k::pack(rows, inputs, outputs, &mut packed[at..]);
    fold.extend(rows.chunks_exact(inputs.max(1)).map(|row| {
        let sum: i32 = row.iter().map(|&w| i32::from(w)).sum();
        sum.wrapping_mul(-PRODUCT_ZERO_POINT)
    }));
}

impl<'a> Layer<'a> {
    /// A recurrent layer with int8 weights from the model file's tensors:
    /// `w` (`[D, G·H, F]`) and `r` (`[D, G·H, H]`) int8, their scales
    /// (`[D, G·H]`), and `b` (`[D, 2·G·H]`, f32); an error naming layer
    /// `index` in a build without the family or without `int8-rnn`.
    pub fn recurrent_int8(
        index: usize,
        geom: RecurrentGeom,
        [w, r]: [&[i8]; 2],
        [w_scale, r_scale]: [&[f32]; 2],
        b: Tensor<'a>,
    ) -> Result<Self, ModelError> {
        let here = family::rnn(index, geom.cell.name())?;
        let int8 = family::int8_rnn(index, geom.cell.name())?;
        let too_large = ModelError::TooLarge { layer: index };
        let [w_len, r_len, _] = geom.tensor_lens().ok_or(too_large.clone())?;
        let (f, h) = (geom.features, geom.hidden);
        if f > MAX_INPUTS || h > MAX_INPUTS {
            return Err(too_large);
        }
        check_len(index, "w", w_len, w.len())?;
        check_len(index, "r", r_len, r.len())?;
        let gh = geom.cell.gates() * h;
        let (mut wp, mut rp, mut wf, mut rf) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for d in 0..geom.directions() {
            pack(&w[d * gh * f..(d + 1) * gh * f], f, gh, &mut wp, &mut wf);
            let rd = &r[d * gh * h..(d + 1) * gh * h];
            if geom.splits_r() {
                let (zr, n) = rd.split_at(2 * h * h);
                pack(zr, h, 2 * h, &mut rp, &mut rf);
                pack(n, h, h, &mut rp, &mut rf);
            } else {
                pack(rd, h, gh, &mut rp, &mut rf);
            }
        }
        let weights = RecurrentI8 {
            w: Cow::Owned(wp),
            w_scale: Cow::Owned(w_scale.to_vec()),
            w_fold: Cow::Owned(wf),
            r: Cow::Owned(rp),
            r_scale: Cow::Owned(r_scale.to_vec()),
            r_fold: Cow::Owned(rf),
        };
        let layer = RecurrentLayer {
            geom,
            weights: RecurrentWeights::Int8(weights, int8),
            b,
        };
        Ok(Layer::Recurrent(layer, here))
    }
}

impl RecurrentI8<'_> {
    /// These weights with every tensor copied out of the blob they borrow.
    pub(super) fn into_owned(self) -> RecurrentI8<'static> {
        fn own<T: Clone>(c: Cow<'_, [T]>) -> Cow<'static, [T]> {
            Cow::Owned(c.into_owned())
        }
        RecurrentI8 {
            w: own(self.w),
            w_scale: own(self.w_scale),
            w_fold: own(self.w_fold),
            r: own(self.r),
            r_scale: own(self.r_scale),
            r_fold: own(self.r_fold),
        }
    }

    /// Checks the lengths of every tensor for `g`, and the scales.
    pub(super) fn check(&self, index: usize, g: &RecurrentGeom) -> Result<(), ModelError> {
        let too_large = ModelError::TooLarge { layer: index };
        if g.features > MAX_INPUTS || g.hidden > MAX_INPUTS {
            return Err(too_large);
        }
        let d = g.directions();
        let (pw, pr) = packed_lens(g).ok_or(too_large.clone())?;
        let dgh = g.gate_len().and_then(|n| n.checked_mul(d));
        let dgh = dgh.ok_or(too_large.clone())?;
        let times = |n: usize| n.checked_mul(d).ok_or(too_large.clone());
        check_len(index, "w", times(pw)?, self.w.len())?;
        check_len(index, "r", times(pr)?, self.r.len())?;
        for (tensor, len) in [
            ("w_scale", self.w_scale.len()),
            ("r_scale", self.r_scale.len()),
            ("w_fold", self.w_fold.len()),
            ("r_fold", self.r_fold.len()),
        ] {
            check_len(index, tensor, dgh, len)?;
        }
        let scale_ok = |s: &f32| s.is_finite() && *s > 0.0;
        if !self.w_scale.iter().chain(self.r_scale.iter()).all(scale_ok) {
            return Err(ModelError::Quant {
                layer: index,
                what: "weight scales must be positive, finite numbers",
            });
        }
        Ok(())
    }

    /// Direction `d`'s matrices `w` and `r`.
    pub(super) fn direction(
        &self,
        g: &RecurrentGeom,
        d: usize,
    ) -> Option<(MatrixI8<'_>, MatrixI8<'_>)> {
        let (pw, pr) = packed_lens(g)?;
        let gh = g.gate_len()?;
        let channels = d * gh..(d + 1) * gh;
        Some((
            MatrixI8 {
                w: self.w.get(d * pw..(d + 1) * pw)?,
                scale: self.w_scale.get(channels.clone())?,
                fold: self.w_fold.get(channels.clone())?,
            },
            MatrixI8 {
                w: self.r.get(d * pr..(d + 1) * pr)?,
                scale: self.r_scale.get(channels.clone())?,
                fold: self.r_fold.get(channels)?,
            },
        ))
    }
}

/// The first `rows` output channels of `m` (packed on their own, with
/// `inputs` values each) and the rest.
pub(super) fn split<'m>(
    m: MatrixI8<'m>,
    rows: usize,
    inputs: usize,
) -> Option<(MatrixI8<'m>, MatrixI8<'m>)> {
    let (w0, w1) = m.w.split_at_checked(k::packed_len(inputs, rows)?)?;
    let (s0, s1) = m.scale.split_at_checked(rows)?;
    let (f0, f1) = m.fold.split_at_checked(rows)?;
    Some((
        MatrixI8 {
            w: w0,
            scale: s0,
            fold: f0,
        },
        MatrixI8 {
            w: w1,
            scale: s1,
            fold: f1,
        },
    ))
}
