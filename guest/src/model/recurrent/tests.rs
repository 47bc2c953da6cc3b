//! The recurrent layers against hand sums, batches, directions and their checks.

use super::*;
use crate::{Model, math};
use alloc::vec;

/// Deterministic values in about [-1, 1).
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|k| (((k + seed) * 7919 + seed * 31) % 211) as f32 / 105.0 - 1.0)
        .collect()
}

fn geom(cell: Cell, bidirectional: bool, sequence: bool) -> RecurrentGeom {
    RecurrentGeom {
        cell,
        steps: 5,
        features: 3,
        hidden: 7,
        bidirectional,
        sequence,
    }
}

/// The ONNX tensors `w`, `r`, `b` of `g`, seeded.
fn tensors(g: &RecurrentGeom, seed: usize) -> [Vec<f32>; 3] {
    let [w, r, b] = g.tensor_lens().unwrap();
    [values(w, seed), values(r, seed + 1), values(b, seed + 2)]
}

fn model(g: RecurrentGeom, [w, r, b]: &[Vec<f32>; 3]) -> Model<'static> {
    let layer = Layer::recurrent(0, g, w, r, b.clone().into()).unwrap();
    Model::new(g.input_len(), vec![layer]).unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// A two-step RNN of one value, by hand in the defined order.
#[test]
fn rnn_is_the_defined_sum() {
    let g = RecurrentGeom {
        steps: 2,
        features: 1,
        hidden: 1,
        ..geom(Cell::Rnn, false, true)
    };
    let t = [vec![0.5], vec![-0.75], vec![0.25, 0.125]];
    let out = model(g, &t).predict(&[1.5, -2.0]).unwrap();
    let q0 = 0.0 * -0.75 + 0.125;
    let h1 = math::tanh((1.5 * 0.5 + 0.25) + q0);
    let h2 = math::tanh((-2.0 * 0.5 + 0.25) + (h1 * -0.75 + 0.125));
    assert_eq!(bits(&out), bits(&[h1, h2]));
}

/// Rows of a batch run as they run alone; the last step of a sequence
/// output is the final state; each cell differs from the others.
#[test]
fn batches_sequences_and_cells_agree() {
    let mut finals = Vec::new();
    for cell in Cell::ALL {
        for bi in [false, true] {
            let t = tensors(&geom(cell, bi, false), 3);
            let (last, seq) = (
                model(geom(cell, bi, false), &t),
                model(geom(cell, bi, true), &t),
            );
            let x = values(3 * 15, 11);
            let batch = last.predict(&x).unwrap();
            let all = seq.predict(&x).unwrap();
            let d = usize::from(bi) + 1;
            assert_eq!(all.len(), 3 * 5 * d * 7);
            for (row, xr) in x.chunks(15).enumerate() {
                let one = last.predict(xr).unwrap();
                assert_eq!(bits(&one), bits(&batch[row * d * 7..][..d * 7]), "{cell:?}");
                let s = &all[row * 5 * d * 7..][..5 * d * 7];
                // Forward's last step, and backward's step 0.
                assert_eq!(bits(&one[..7]), bits(&s[4 * d * 7..][..7]));
                if bi {
                    assert_eq!(bits(&one[7..]), bits(&s[7..14]));
                }
            }
            finals.push(bits(&batch[..7]));
        }
    }
    for (i, a) in finals.iter().enumerate() {
        for b in finals.iter().skip(i + 2) {
            assert_ne!(a, b);
        }
    }
}

/// The backward direction is the forward one over the reversed steps.
#[test]
fn backward_reads_the_steps_in_reverse() {
    for cell in Cell::ALL {
        let g = geom(cell, true, false);
        let [w, r, b] = tensors(&g, 5);
        let half = |t: &[f32]| t[t.len() / 2..].to_vec();
        let fwd = geom(cell, false, false);
        let backward_alone = model(fwd, &[half(&w), half(&r), half(&b)]);
        let x = values(15, 2);
        let reversed: Vec<f32> = x.chunks(3).rev().flatten().copied().collect();
        let both = model(g, &[w, r, b]).predict(&x).unwrap();
        let alone = backward_alone.predict(&reversed).unwrap();
        assert_eq!(bits(&both[7..]), bits(&alone), "{cell:?}");
    }
}

#[test]
fn checks_sizes_and_tensors() {
    let g = geom(Cell::Lstm, true, false);
    let [w, r, b] = tensors(&g, 1);
    let err = Layer::recurrent(2, g, &w[1..], &r, b.clone().into()).unwrap_err();
    assert!(matches!(
        err,
        ModelError::TensorLen {
            layer: 2,
            tensor: "w",
            ..
        }
    ));
    let bad = |g: RecurrentGeom, b: Vec<f32>| {
        let layer = Layer::Recurrent(
            RecurrentLayer {
                geom: g,
                weights: RecurrentWeights::F32 {
                    w: w.clone().into(),
                    r: r.clone().into(),
                },
                b: b.into(),
            },
            super::super::family::rnn(0, "lstm").unwrap(),
        );
        Model::new(g.input_len().max(1), vec![layer]).unwrap_err()
    };
    let short = b[1..].to_vec();
    assert!(matches!(
        bad(g, short),
        ModelError::TensorLen { tensor: "b", .. }
    ));
    let mut nan = b.clone();
    nan[3] = f32::NAN;
    assert_eq!(
        bad(g, nan),
        ModelError::NotFinite {
            layer: 0,
            tensor: "b"
        }
    );
    let zero = RecurrentGeom { hidden: 0, ..g };
    assert!(matches!(
        bad(zero, b.clone()),
        ModelError::BadParam {
            param: "hidden",
            ..
        }
    ));
    let huge = RecurrentGeom {
        steps: 1 << 40,
        ..g
    };
    assert_eq!(bad(huge, b), ModelError::TooLarge { layer: 0 });
}

/// int8 weights (feature `int8-rnn`).
#[cfg(feature = "int8-rnn")]
mod int8 {
    use super::*;

    /// `t` quantized per row of `cols` values: symmetric, `max|row| / 127`.
    fn quantize_rows(t: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
        let mut q = Vec::new();
        let mut scales = Vec::new();
        for row in t.chunks(cols) {
            let m = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let s = if m == 0.0 { 1.0 } else { m / 127.0 };
            q.extend(row.iter().map(|v| (v / s).round() as i8));
            scales.push(s);
        }
        (q, scales)
    }

    fn int8_model(g: RecurrentGeom, [w, r, b]: &[Vec<f32>; 3]) -> Model<'static> {
        let (wq, ws) = quantize_rows(w, g.features);
        let (rq, rs) = quantize_rows(r, g.hidden);
        let layer = Layer::recurrent_int8(0, g, [&wq, &rq], [&ws, &rs], b.clone().into()).unwrap();
        Model::new(g.input_len(), vec![layer]).unwrap()
    }

    /// A one-step RNN of two features and one hidden value, int8, by hand:
    /// the input quantized to 64 ± 63 with its row's scale, the integer sum
    /// with the folded zero point, the dequantize, `tanh`.
    #[test]
    fn int8_rnn_is_the_defined_sum() {
        let g = RecurrentGeom {
            steps: 1,
            features: 2,
            hidden: 1,
            ..geom(Cell::Rnn, false, false)
        };
        let layer = Layer::recurrent_int8(
            0,
            g,
            [&[100, -50], &[7]],
            [&[0.01], &[0.5]],
            vec![0.25, 0.125].into(),
        )
        .unwrap();
        let m = Model::new(2, vec![layer]).unwrap();
        let x = [0.5f32, -2.0];
        // m = 2: q = nearest(x · 63/2) + 64 = [80, 1] (15.75 → 16, −63).
        let s = 2.0f32 / 63.0;
        let acc = 80 * 100 - 50 - 64 * (100 - 50);
        let p = acc as f32 * (s * 0.01) + 0.25;
        // The state is 0: its scale is 1, q = 64, acc = 64·7 − 64·7 = 0.
        let q = 0.0f32 * (1.0 * 0.5) + 0.125;
        assert_eq!(bits(&m.predict(&x).unwrap()), bits(&[math::tanh(p + q)]));
    }

    /// Every cell, both directions: int8 weights stay near the f32 layer's
    /// outputs, a row runs as it runs in a batch, and a sequence output ends
    /// in the final state.
    #[test]
    fn int8_layers_follow_f32_and_batch() {
        for cell in Cell::ALL {
            for bi in [false, true] {
                let t = tensors(&geom(cell, bi, false), 7);
                let f32m = model(geom(cell, bi, false), &t);
                let last = int8_model(geom(cell, bi, false), &t);
                let seq = int8_model(geom(cell, bi, true), &t);
                let x = values(3 * 15, 4);
                let want = f32m.predict(&x).unwrap();
                let got = last.predict(&x).unwrap();
                let worst = want
                    .iter()
                    .zip(&got)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(worst < 0.05, "{cell:?} bi {bi}: {worst}");
                let all = seq.predict(&x).unwrap();
                let d = usize::from(bi) + 1;
                for (row, xr) in x.chunks(15).enumerate() {
                    let one = last.predict(xr).unwrap();
                    assert_eq!(bits(&one), bits(&got[row * d * 7..][..d * 7]), "{cell:?}");
                    let s = &all[row * 5 * d * 7..][..5 * d * 7];
                    assert_eq!(bits(&one[..7]), bits(&s[4 * d * 7..][..7]));
                }
            }
        }
    }

    #[test]
    fn int8_weights_are_checked() {
        let g = geom(
            Cell::Gru {
                linear_before_reset: false,
            },
            true,
            false,
        );
        let [w, r, b] = tensors(&g, 1);
        let (wq, ws) = quantize_rows(&w, g.features);
        let (rq, rs) = quantize_rows(&r, g.hidden);
        let err =
            Layer::recurrent_int8(4, g, [&wq, &rq[1..]], [&ws, &rs], b.clone().into()).unwrap_err();
        assert!(matches!(
            err,
            ModelError::TensorLen {
                layer: 4,
                tensor: "r",
                ..
            }
        ));
        let mut zero = rs.clone();
        zero[5] = 0.0;
        let layer =
            Layer::recurrent_int8(0, g, [&wq, &rq], [&ws, &zero], b.clone().into()).unwrap();
        assert!(matches!(
            Model::new(g.input_len(), vec![layer]),
            Err(ModelError::Quant { layer: 0, .. })
        ));
        let layer = Layer::recurrent_int8(0, g, [&wq, &rq], [&ws[1..], &rs], b.into()).unwrap();
        assert!(matches!(
            Model::new(g.input_len(), vec![layer]),
            Err(ModelError::TensorLen {
                tensor: "w_scale",
                ..
            })
        ));
    }
}

/// A build without `int8-rnn` refuses int8 weights by name.
#[cfg(not(feature = "int8-rnn"))]
#[test]
fn int8_weights_are_refused_without_their_feature() {
    let g = geom(Cell::Lstm, false, false);
    let [w, r, b] = g.tensor_lens().unwrap();
    let scales = vec![1.0; g.gate_len().unwrap()];
    let layer = Layer::recurrent_int8(
        2,
        g,
        [&vec![1; w], &vec![1; r]],
        [&scales, &scales],
        vec![0.0; b].into(),
    );
    let refused = ModelError::NotInKernel {
        layer: 2,
        op: "lstm",
        feature: "int8-rnn",
    };
    assert_eq!(layer, Err(refused));
}
