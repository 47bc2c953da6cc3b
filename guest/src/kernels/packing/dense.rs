//! The weight layout of f32 dense layers: column panels.
//!
//! A dense layer's `inputs × outputs` weight matrix is stored as a sequence
//! of *panels*, each the input-major matrix (`inputs × width`) of `width`
//! consecutive outputs: [`WIDTH`] outputs each, the last panel taking what
//! is left. The kernels sweep the inputs once per panel, so the weights they
//! read are one contiguous stream rather than a short run per input
//! `outputs` floats apart, which held V8's batch-1 streaming well below its
//! ceiling (`docs/benchmarks.md`, "Dense panels").
//! The panels hold every weight once, so the packed weight is exactly as
//! long as the matrix; a layer narrower than [`WIDTH`] is one panel, which
//! is plain input-major.

use alloc::vec::Vec;

/// Outputs per panel (the last one may be narrower).
///
/// Six accumulator vectors and their six weight vectors, with the input's
/// splat, fit x86-64's 16 vector registers even when a compiler loads all
/// of a step's weights before its arithmetic, as wasmtime's Cranelift does:
/// at 32 outputs (eight of each, 17 registers) it kept two accumulators on
/// the stack, whose store-and-reload then sat on their add chains. Six
/// chains still hide the add latency, so V8 lost nothing (the measurements:
/// `docs/benchmarks.md`, "Dense panels", "Why 24 and not 32").
pub const WIDTH: usize = 24;

/// Each panel's first output and width, in storage order; the panel that
/// starts at output `start` starts at weight `start × inputs`.
pub fn panels(outputs: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..outputs)
        .step_by(WIDTH)
        .map(move |start| (start, WIDTH.min(outputs - start)))
}

/// Packs PyTorch-style output-major rows (`outputs × inputs`, the model
/// file's layout) into panels. `rows.len()` must be `inputs × outputs`.
pub fn pack_rows(rows: &[f32], inputs: usize, outputs: usize) -> Vec<f32> {
    let mut packed = Vec::with_capacity(rows.len());
    for (start, width) in panels(outputs) {
        for i in 0..inputs {
            packed.extend((start..start + width).map(|o| rows[o * inputs + i]));
        }
    }
    packed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_bounds() {
        let cases: [(usize, &[(usize, usize)]); 6] = [
            (0, &[]),
            (3, &[(0, 3)]),
            (24, &[(0, 24)]),
            (30, &[(0, 24), (24, 6)]),
            (84, &[(0, 24), (24, 24), (48, 24), (72, 12)]),
            (120, &[(0, 24), (24, 24), (48, 24), (72, 24), (96, 24)]),
        ];
        for (outputs, want) in cases {
            assert_eq!(panels(outputs).collect::<Vec<_>>(), want, "{outputs}");
        }
    }
}
