//! The f32 dense layer: the definition of its arithmetic.
//!
//! Buffers are row-major `batch × width` slices. Callers ([`crate::Model`])
//! guarantee the lengths; the kernel iterates with `chunks_exact`/`zip`, so
//! a wrong length computes less, never reads out of bounds.

use crate::kernels::packing::dense as panels;

/// Fully connected layer: `y[r][o] = (Σ_i x[r][i] · W[o][i]) + b[o]`.
///
/// `w` is stored in column [`panels`]. The sum for each output starts at
/// `+0.0` and adds the products in increasing `i`, one rounding per multiply
/// and per add (no FMA); the bias is added last. Outputs are independent,
/// so vectorising across `o` keeps this order exactly.
pub fn dense(x: &[f32], w: &[f32], b: &[f32], inputs: usize, outputs: usize, y: &mut [f32]) {
    for (start, width) in panels::panels(outputs) {
        let (Some(wp), Some(bp)) = (
            w.get(start * inputs..(start + width) * inputs),
            b.get(start..start + width),
        ) else {
            return;
        };
        for (xr, yr) in x
            .chunks_exact(inputs.max(1))
            .zip(y.chunks_exact_mut(outputs))
        {
            let yp = &mut yr[start..start + width];
            yp.fill(0.0);
            for (&xi, wr) in xr.iter().zip(wp.chunks_exact(width)) {
                for (yo, &wo) in yp.iter_mut().zip(wr) {
                    *yo += xi * wo;
                }
            }
            for (yo, &bo) in yp.iter_mut().zip(bp) {
                *yo += bo;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::packing::dense::pack_rows;

    #[test]
    fn dense_matches_definition() {
        // x = [1, 2], w (2 inputs × 3 outputs) input-major, b = [0.5, 0, -1]
        let x = [1.0, 2.0];
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [0.5, 0.0, -1.0];
        let mut y = [0.0; 3];
        dense(&x, &w, &b, 2, 3, &mut y);
        assert_eq!(y, [9.5, 12.0, 14.0]);
    }

    /// The reference kernel on packed rows computes, for every output, the
    /// sum in the order `docs/abi.md` defines: `+0`, then `x[i] · W[o][i]`
    /// for increasing `i`, then the bias.
    #[test]
    fn packed_dense_is_the_defined_sum() {
        for (batch, inputs, outputs) in [(2, 5, 84), (1, 7, 10), (3, 4, 120), (1, 3, 64), (2, 1, 1)]
        {
            let value = |k: usize| ((k * 7919) % 61) as f32 / 7.0 - 4.0;
            let rows: Vec<f32> = (0..inputs * outputs).map(value).collect();
            let b: Vec<f32> = (0..outputs).map(|o| value(o + 13)).collect();
            let x: Vec<f32> = (0..batch * inputs).map(|k| value(k + 29)).collect();
            let packed = pack_rows(&rows, inputs, outputs);
            assert_eq!(packed.len(), rows.len());
            let mut y = alloc::vec![f32::NAN; batch * outputs];
            dense(&x, &packed, &b, inputs, outputs, &mut y);
            for r in 0..batch {
                for o in 0..outputs {
                    let mut acc = 0.0f32;
                    for i in 0..inputs {
                        acc += x[r * inputs + i] * rows[o * inputs + i];
                    }
                    let want = acc + b[o];
                    assert_eq!(y[r * outputs + o].to_bits(), want.to_bits(), "{r},{o}");
                }
            }
        }
    }
}
