//! The gate updates of the recurrent cells — RNN, GRU (both formulations),
//! LSTM: the definition of their arithmetic.
//!
//! A recurrent layer computes, per step, two matrix products with the
//! dense kernel: the input projection `p = (Σ W x) + Wb` (for all steps at
//! once) and the recurrent one `q = (Σ R h) + Rb`; these functions combine
//! them into the new state, one row (one sequence) at a time. Gate `g` of
//! `G` is the `g`-th run of `H` values of `p` and `q`, in ONNX's gate order.
//! Every pre-activation is `p + q`, added in that order; `σ` and `tanh`
//! are [`math::sigmoid`] and [`math::tanh`]; no FMA, so each line below is
//! its values' bits. Callers ([`crate::Model`]) guarantee the lengths; the
//! loops zip, so a wrong length computes less, never reads out of bounds.

use super::{dense_i8, dequantize, dynamic_scale, quantize};
use crate::math::{sigmoid, tanh};

/// A simple RNN step: `h = tanh(p + q)` (`p`, `q`, `h`: `H` values).
pub fn rnn_cell(p: &[f32], q: &[f32], h: &mut [f32]) {
    for ((h, &p), &q) in h.iter_mut().zip(p).zip(q) {
        *h = tanh(p + q);
    }
}

/// The reset half of an original GRU step (`linear_before_reset` false):
/// `rh = σ(p_r + q_r) · h`, the state the candidate's recurrent product
/// reads (`p_r`, `q_r`: the reset gate's `H` values).
pub fn gru_reset(p_r: &[f32], q_r: &[f32], h: &[f32], rh: &mut [f32]) {
    for (((rh, &p), &q), &h) in rh.iter_mut().zip(p_r).zip(q_r).zip(h) {
        *rh = sigmoid(p + q) * h;
    }
}

/// A GRU step. `p` holds the gates z, r, h (`3H` values); `q_zr` the
/// recurrent products of z and r (`2H`), `q_h` the candidate's (`H`).
/// `z = σ(p_z + q_z)`, then with `linear_before_reset`
/// `n = tanh(p_h + σ(p_r + q_r) · q_h)` (`q_h = Rh h + Rbh`), otherwise
/// `n = tanh(p_h + q_h)` (`q_h = Rh (r ⊙ h) + Rbh`, from [`gru_reset`]);
/// `h = (1 − z) · n + z · h`.
pub fn gru_cell(p: &[f32], q_zr: &[f32], q_h: &[f32], h: &mut [f32], linear_before_reset: bool) {
    let n = h.len();
    let (Some(p_z), Some(p_r), Some(p_h), Some(q_z), Some(q_r)) = (
        p.get(..n),
        p.get(n..2 * n),
        p.get(2 * n..3 * n),
        q_zr.get(..n),
        q_zr.get(n..2 * n),
    ) else {
        return;
    };
    for j in 0..n.min(q_h.len()) {
        let z = sigmoid(p_z[j] + q_z[j]);
        let a = if linear_before_reset {
            p_h[j] + sigmoid(p_r[j] + q_r[j]) * q_h[j]
        } else {
            p_h[j] + q_h[j]
        };
        let c = tanh(a);
        h[j] = (1.0 - z) * c + z * h[j];
    }
}

/// An LSTM step. `p` and `q` hold the gates i, o, f, c (`4H` values each);
/// `i = σ(p_i + q_i)`, `o = σ(p_o + q_o)`, `f = σ(p_f + q_f)`,
/// `g = tanh(p_c + q_c)`, then `c = f · c + i · g` and `h = o · tanh(c)`.
pub fn lstm_cell(p: &[f32], q: &[f32], h: &mut [f32], c: &mut [f32]) {
    let n = h.len();
    if p.len() < 4 * n || q.len() < 4 * n || c.len() < n {
        return;
    }
    for j in 0..n {
        let i = sigmoid(p[j] + q[j]);
        let o = sigmoid(p[n + j] + q[n + j]);
        let f = sigmoid(p[2 * n + j] + q[2 * n + j]);
        let g = tanh(p[3 * n + j] + q[3 * n + j]);
        c[j] = f * c[j] + i * g;
        h[j] = o * tanh(c[j]);
    }
}

/// An int8 matrix of a recurrent layer as its product reads it: weights
/// packed for the int8 dense kernel, and per output channel a scale and
/// the folded zero point `−64 · Σ_i W[o][i]`.
#[derive(Clone, Copy, Debug)]
pub struct MatrixI8<'m> {
    pub w: &'m [i8],
    pub scale: &'m [f32],
    pub fold: &'m [i32],
}

/// The buffers of [`product_i8`]: per-row scales, quantized rows and
/// accumulators (at least rows, rows × inputs and rows × outputs values).
#[derive(Debug)]
pub struct ProductBuffers<'b> {
    pub scales: &'b mut [f32],
    pub q: &'b mut [i8],
    pub acc: &'b mut [i32],
}

/// The zero point of a recurrent product's quantized rows: `64 ± 63`.
pub const PRODUCT_ZERO_POINT: i32 = 64;
/// The levels on each side of [`PRODUCT_ZERO_POINT`].
pub const PRODUCT_LEVELS: f32 = 63.0;

/// The int8 product of a recurrent layer (`docs/quantization.md`,
/// "Recurrent layers"): `y = x · Wᵀ + bias` over the rows of `x` (`inputs`
/// values each, `outputs` written per row): each row quantized with its
/// own scale to `64 ± 63` ([`dynamic_scale`] with 63 levels, then
/// [`quantize`]), the int8 dense kernel with the folded zero point as its
/// bias ([`dense_i8`]), the dequantize with the row's scale
/// ([`dequantize`]). Writes nothing if a buffer is short.
pub fn product_i8(
    m: MatrixI8<'_>,
    x: &[f32],
    dims: [usize; 2],
    bias: &[f32],
    y: &mut [f32],
    buf: &mut ProductBuffers<'_>,
) {
    product_i8_with((quantize, dense_i8, dequantize), m, x, dims, bias, y, buf);
}

/// [`product_i8`] over the kernels `(quantize, dense, dequantize)`: the
/// definitions, or a target's overrides (`kernels::blocked::recurrent_i8`),
/// which then give the definition's bits.
#[inline(always)]
pub fn product_i8_with<Q, D, U>(
    (quantize, dense, dequantize): (Q, D, U),
    m: MatrixI8<'_>,
    x: &[f32],
    [inputs, outputs]: [usize; 2],
    bias: &[f32],
    y: &mut [f32],
    buf: &mut ProductBuffers<'_>,
) where
    Q: Fn(&[f32], f32, i32, &mut [i8]),
    D: Fn(&[i8], &[i8], &[i32], usize, usize, &mut [i32]),
    U: Fn(&[i32], &[f32], &[f32], &[f32], &mut [f32]),
{
    let rows = x.len() / inputs.max(1);
    let (Some(scales), Some(q), Some(acc)) = (
        buf.scales.get_mut(..rows),
        rows.checked_mul(inputs).and_then(|n| buf.q.get_mut(..n)),
        rows.checked_mul(outputs).and_then(|n| buf.acc.get_mut(..n)),
    ) else {
        return;
    };
    let quantized = x
        .chunks_exact(inputs.max(1))
        .zip(q.chunks_exact_mut(inputs.max(1)));
    for ((xr, qr), s) in quantized.zip(scales.iter_mut()) {
        let (scale, inv) = dynamic_scale(xr, PRODUCT_LEVELS);
        *s = scale;
        quantize(xr, inv, PRODUCT_ZERO_POINT, qr);
    }
    dense(&*q, m.w, m.fold, inputs, outputs, &mut *acc);
    dequantize(&*acc, &*scales, m.scale, bias, y);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each cell against its formula in f64, on a few values.
    #[test]
    fn cells_follow_their_formulas() {
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let (p, q) = ([0.3f32, -1.2, 0.7, 2.0], [-0.1f32, 0.4, 0.2, -0.5]);
        let mut h = [0.5f32];
        let mut c = [-0.25f32];
        lstm_cell(&p, &q, &mut h, &mut c);
        let a: Vec<f64> = p.iter().zip(&q).map(|(&p, &q)| (p + q) as f64).collect();
        let c_want = s(a[2]) * -0.25 + s(a[0]) * a[3].tanh();
        assert!((c[0] as f64 - c_want).abs() < 1e-6);
        assert!((h[0] as f64 - s(a[1]) * c_want.tanh()).abs() < 1e-6);

        for lbr in [true, false] {
            let mut h = [0.5f32];
            let (p, q) = ([0.3f32, -1.2, 0.7], [-0.1f32, 0.4]);
            let q_h = [0.9f32];
            gru_cell(&p, &q, &q_h, &mut h, lbr);
            let z = s(0.2);
            let a = if lbr { 0.7 + s(-0.8) * 0.9 } else { 0.7 + 0.9 };
            let want = (1.0 - z) * f64::tanh(a) + z * 0.5;
            assert!((h[0] as f64 - want).abs() < 1e-6, "{lbr}");
        }
        let mut rh = [0.0f32];
        gru_reset(&[1.0], &[0.5], &[2.0], &mut rh);
        assert!((rh[0] as f64 - 2.0 * s(1.5)).abs() < 1e-6);
        let mut h = [0.0f32];
        rnn_cell(&[0.25], &[0.5], &mut h);
        assert!((h[0] as f64 - 0.75f64.tanh()).abs() < 1e-6);
    }
}
