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
