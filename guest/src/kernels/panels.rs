//! The weight layout of f32 dense layers: column panels.
//!
//! A dense layer's `inputs × outputs` weight matrix is stored as a sequence
//! of *panels*, each the input-major matrix (`inputs × width`) of `width`
//! consecutive outputs. The kernels sweep the inputs once per panel, so the
//! weights they read are one contiguous stream rather than a short run per
//! input `outputs` floats apart (in V8 that stride held batch-1 streaming
//! at ~45 GB/s of a ~76 GB/s ceiling; see `docs/benchmarks.md`).
//!
//! The width is what the SIMD kernel keeps in registers: 24 outputs, six
//! vectors, and a row narrower than 24 is one panel, which is then plain
//! input-major. When `outputs` is not a whole number of panels, the last
//! panel moves back to end at the last output ([`super::blocks`]),
//! repeating a few of its neighbour's columns; each output takes the *last*
//! panel that holds it (every kernel writes the panels in order), so even a
//! blob whose repeated columns disagree gives the same bits everywhere.

use alloc::vec::Vec;

use super::blocks;

/// Panel width for a layer with `outputs` outputs: 24, or `outputs` itself
/// below that.
///
/// Six accumulators and their six weight vectors, with the input's splat,
/// fit x86-64's 16 vector registers even when a compiler loads all of a
/// step's weights before its arithmetic, as wasmtime's Cranelift does: at
/// 32 outputs (eight of each, 17 registers) it kept two accumulators on the
/// stack, whose store-and-reload then sat on their add chains, and the MLP's
/// first layer took 21.1 µs in wasmtime against 14.2 in V8. Six chains still
/// hide the add latency (~3 cycles per input for 24 outputs, where eight
/// took ~4 for 32), so V8 lost nothing (docs/benchmarks.md, "Dense panels").
pub fn width(outputs: usize) -> usize {
    outputs.min(24)
}

/// The first output of each panel, in storage order.
pub fn starts(outputs: usize) -> impl Iterator<Item = usize> {
    // A layer without outputs has no panels (`blocks` needs a width ≥ 1).
    blocks(outputs, width(outputs).max(1))
}

/// Floats in the packed weight of an `inputs × outputs` layer (`None` if it
/// overflows `usize`).
pub fn packed_len(inputs: usize, outputs: usize) -> Option<usize> {
    outputs
        .div_ceil(width(outputs).max(1))
        .checked_mul(width(outputs))?
        .checked_mul(inputs)
}

/// Packs PyTorch-style output-major rows (`outputs × inputs`, the model
/// file's layout) into panels. `rows.len()` must be `inputs × outputs`.
pub fn pack_rows(rows: &[f32], inputs: usize, outputs: usize) -> Vec<f32> {
    let w = width(outputs);
    let mut packed = Vec::with_capacity(packed_len(inputs, outputs).unwrap_or(0));
    for start in starts(outputs) {
        for i in 0..inputs {
            packed.extend((start..start + w).map(|o| rows[o * inputs + i]));
        }
    }
    packed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;

    #[test]
    fn widths_and_starts() {
        let cases: [(usize, usize, &[usize]); 7] = [
            (0, 0, &[]),
            (3, 3, &[0]),
            (10, 10, &[0]),
            (30, 24, &[0, 6]),
            (84, 24, &[0, 24, 48, 60]),
            (120, 24, &[0, 24, 48, 72, 96]),
            (128, 24, &[0, 24, 48, 72, 96, 104]),
        ];
        for (outputs, w, s) in cases {
            assert_eq!(width(outputs), w, "{outputs}");
            assert_eq!(starts(outputs).collect::<Vec<_>>(), s, "{outputs}");
            assert_eq!(packed_len(5, outputs), Some(5 * w * s.len()), "{outputs}");
        }
        assert_eq!(packed_len(usize::MAX, 256), None);
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
            assert_eq!(Some(packed.len()), packed_len(inputs, outputs));
            let mut y = alloc::vec![f32::NAN; batch * outputs];
            reference::dense(&x, &packed, &b, inputs, outputs, &mut y);
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

    /// Repeated columns that disagree: the last panel's copy wins.
    #[test]
    fn the_last_panel_wins() {
        let (inputs, outputs) = (1, 30); // panels at 0 and 6, 18 columns repeated
        let mut packed = alloc::vec![1.0f32; packed_len(inputs, outputs).unwrap()];
        packed[24..].fill(2.0);
        let mut y = alloc::vec![0.0; outputs];
        reference::dense(&[1.0], &packed, &[0.0; 30], inputs, outputs, &mut y);
        assert_eq!(&y[..6], &[1.0; 6]);
        assert_eq!(&y[6..], &[2.0; 24]);
    }
}
