//! Calibration: the ranges of a model's activations on sample data, and the
//! int8 scale and zero point that cover them.

use crate::model::{LayerSpec, ModelFile, QuantParams};

use super::ShrinkError;

/// How an activation's range is taken from the calibration values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CalibMethod {
    /// The smallest and largest value seen.
    MinMax,
    /// The `p`-th and `(100 − p)`-th percentiles (e.g. `p = 99.99`), which
    /// ignores rare outliers in exchange for clipping them.
    Percentile(f64),
}

/// A real range `[lo, hi]` that contains 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantRange {
    pub lo: f32,
    pub hi: f32,
}

impl QuantRange {
    /// The range of `values` by `method`, widened to contain 0 (so 0 is
    /// represented exactly — ReLU outputs and padding are common).
    pub fn of(values: &[f32], method: CalibMethod) -> Self {
        let (mut lo, mut hi) = match method {
            CalibMethod::MinMax => values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                }),
            CalibMethod::Percentile(p) => {
                let mut sorted = values.to_vec();
                sorted.sort_by(f32::total_cmp);
                let at = |q: f64| {
                    let i = ((sorted.len().saturating_sub(1)) as f64 * q / 100.0).round() as usize;
                    sorted.get(i).copied().unwrap_or(0.0)
                };
                (at(100.0 - p), at(p))
            }
        };
        if !lo.is_finite() {
            lo = 0.0;
        }
        if !hi.is_finite() {
            hi = 0.0;
        }
        QuantRange {
            lo: lo.min(0.0),
            hi: hi.max(0.0),
        }
    }

    /// int8 parameters covering the range.
    ///
    /// A non-negative range (`lo = 0`: ReLU outputs, pixels) is quantized to
    /// **7 bits**, `scale = hi / 127`, zero point 0, so its values lie in
    /// 0..=127 — the operand range in which relaxed SIMD's 8-bit dot product
    /// is exact, which lets the relaxed kernel build multiply such layers at
    /// about twice the plain SIMD128 rate (`docs/quantization.md`, "Relaxed
    /// SIMD"). It costs one bit of resolution on those activations.
    ///
    /// Any other range is asymmetric over all 256 levels: `scale = (hi −
    /// lo) / 255`, `zero_point = round(−128 − lo / scale)`. The zero point
    /// costs nothing at run time (it is folded into the next layer's bias);
    /// for a symmetric range it comes out as 0 (or −1/0 by rounding).
    pub fn params(self) -> QuantParams {
        let span = self.hi - self.lo;
        if !(span > 0.0 && span.is_finite()) {
            return QuantParams {
                scale: 1.0,
                zero_point: 0,
            };
        }
        if self.lo == 0.0 {
            return QuantParams {
                scale: self.hi / 127.0,
                zero_point: 0,
            };
        }
        let scale = span / 255.0;
        let zero_point = (-128.0 - self.lo / scale).round().clamp(-128.0, 127.0) as i32;
        QuantParams { scale, zero_point }
    }

    /// Asymmetric parameters over all 256 levels, whatever the range:
    /// `scale = (hi − lo) / 255`, `zero_point = round(−128 − lo / scale)` (a
    /// ReLU output gets zero point −128). Used where the 7-bit rule of
    /// [`QuantRange::params`] buys nothing (int8 convolution outputs).
    pub fn params_full(self) -> QuantParams {
        let span = self.hi - self.lo;
        if !(span > 0.0 && span.is_finite()) {
            return QuantParams {
                scale: 1.0,
                zero_point: 0,
            };
        }
        let scale = span / 255.0;
        let zero_point = (-128.0 - self.lo / scale).round().clamp(-128.0, 127.0) as i32;
        QuantParams { scale, zero_point }
    }
}

/// The f32 values after graph layer `end` (exclusive: `end = 0` is the raw
/// input) of every calibration row, run by the kernel natively.
pub(super) fn activations(
    model: &ModelFile,
    rows: &[f32],
    end: usize,
) -> Result<Vec<f32>, ShrinkError> {
    if end == 0 {
        return Ok(rows.to_vec());
    }
    let mut prefix = model.clone();
    prefix.graph.layers.truncate(end);
    prefix.graph.labels.clear();
    // A prefix that ends on a layer whose width differs from the labels is
    // still a valid graph; `to_kernel` checks the rest.
    let kernel = prefix.to_kernel()?;
    Ok(kernel.predict(rows)?)
}

/// Whether `model` has layers that are already quantized.
pub(super) fn check_float(model: &ModelFile) -> Result<(), ShrinkError> {
    if !model.graph.wiring.is_empty() {
        return Err(ShrinkError::Graph("quantization"));
    }
    for (layer, l) in model.graph.layers.iter().enumerate() {
        if matches!(
            l,
            LayerSpec::Quantize { .. }
                | LayerSpec::QuantizeDynamic
                | LayerSpec::DenseInt8 { .. }
                | LayerSpec::Conv2dInt8 { .. }
        ) || l
            .recurrent_tensors()
            .is_some_and(|(_, scales)| scales != [None, None])
        {
            return Err(ShrinkError::AlreadyQuantized { layer, op: l.op() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_negative_range_is_seven_bit() {
        let r = QuantRange::of(&[0.0, 1.0, 1.27], CalibMethod::MinMax);
        let q = r.params();
        assert_eq!(q.zero_point, 0);
        assert!((q.scale - 0.01).abs() < 1e-7);
    }

    #[test]
    fn symmetric_range_has_zero_point_near_zero() {
        let q = QuantRange::of(&[-2.0, 2.0], CalibMethod::MinMax).params();
        assert!((-1..=0).contains(&q.zero_point), "{q:?}");
    }

    #[test]
    fn percentile_ignores_outliers() {
        let mut v: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        v.push(1000.0);
        let r = QuantRange::of(&v, CalibMethod::Percentile(99.9));
        assert!(r.hi < 1.0 && r.lo == 0.0, "{r:?}");
    }
}
