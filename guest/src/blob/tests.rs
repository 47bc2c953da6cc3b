//! The codec round trips every layer kind, and decoding is total.

use super::*;
use crate::{Activation, DenseI8, Int8Layer, Int8Output};
#[cfg(feature = "conv")]
use crate::{ConvGeom, ConvLayer, PoolGeom, PoolKind};

fn sample() -> Model<'static> {
    let layers = vec![
        Layer::Standardize {
            mean: vec![1.0, 2.0, 3.0].into(),
            inv_std: vec![0.5, 0.25, 1.0].into(),
        },
        Layer::dense_from_rows(
            1,
            3,
            2,
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            vec![0.1, -0.1].into(),
        )
        .unwrap(),
        Layer::Activation {
            kind: Activation::Tanh,
            len: 2,
        },
        Layer::Activation {
            kind: Activation::Softmax,
            len: 2,
        },
        Layer::LeakyRelu { alpha: 0.1, len: 2 },
        Layer::ScaleShift {
            inner: 1,
            scale: vec![2.0, -1.0].into(),
            shift: vec![0.5, 0.25].into(),
        },
        Layer::GroupSoftmax {
            width: 2,
            group: 1,
            log: true,
        },
    ];
    Model::new(3, layers).unwrap()
}

#[test]
fn round_trips() {
    let m = sample();
    let blob = encode(&m);
    assert_eq!(blob.len() % ALIGN, 0);
    let back = decode(&blob).unwrap();
    assert_eq!(back, m);
    let x = [0.5, -1.0, 2.0];
    assert_eq!(back.predict(&x).unwrap(), m.predict(&x).unwrap());
}

/// Every layer of the CNN family.
#[cfg(feature = "conv")]
fn conv_sample() -> Model<'static> {
    let geom = ConvGeom::new([1, 4, 4, 2, 3, 3, 1, 1]);
    let filters: Vec<f32> = (0..18).map(|v| v as f32 * 0.1 - 0.9).collect();
    let conv = |layer| Layer::conv(0, layer).unwrap();
    let layers = vec![
        Layer::conv2d_from_filters(0, geom, &filters, vec![0.5, -0.5].into()).unwrap(),
        conv(ConvLayer::Clip {
            min: -0.5,
            max: 6.0,
            len: 32,
        }),
        conv(ConvLayer::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
            len: 32,
        }),
        conv(ConvLayer::HardSwish { len: 32 }),
        conv(ConvLayer::PRelu {
            inner: 16,
            slope: vec![0.5, 0.25].into(),
        }),
        conv(ConvLayer::Pool {
            kind: PoolKind::Max,
            geom: PoolGeom {
                c: 2,
                h: 4,
                w: 4,
                k: 2,
                stride: 2,
            },
        }),
        conv(ConvLayer::Pool {
            kind: PoolKind::Avg,
            geom: PoolGeom {
                c: 2,
                h: 2,
                w: 2,
                k: 2,
                stride: 1,
            },
        }),
        conv(ConvLayer::GlobalAvgPool {
            channels: 2,
            inner: 1,
        }),
    ];
    Model::new(16, layers).unwrap()
}

#[cfg(feature = "conv")]
#[test]
fn conv_and_pool_round_trip() {
    let m = conv_sample();
    assert_eq!(m.output_len(), 2);
    let blob = encode(&m);
    let back = decode(&blob).unwrap();
    assert_eq!(back, m);
    let x: Vec<f32> = (0..16).map(|v| (v as f32 * 0.7).sin()).collect();
    assert_eq!(back.predict(&x).unwrap(), m.predict(&x).unwrap());
    for n in 0..blob.len() {
        assert!(decode(&blob[..n]).is_err(), "prefix of {n} bytes decoded");
    }
    for i in 0..blob.len() {
        let mut b = blob.clone();
        b[i] ^= 0xff;
        let _ = decode(&b);
    }
}

#[test]
fn every_truncation_is_an_error() {
    let blob = encode(&sample());
    for n in 0..blob.len() {
        assert!(decode(&blob[..n]).is_err(), "prefix of {n} bytes decoded");
    }
}

#[test]
fn every_single_byte_corruption_is_total() {
    // Flipping any byte must give an error or a (different) valid model,
    // never a panic.
    let blob = encode(&sample());
    for i in 0..blob.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = blob.clone();
            b[i] ^= flip;
            let _ = decode(&b);
        }
    }
}

#[test]
fn named_errors() {
    let mut blob = encode(&sample());
    blob[0] = b'X';
    assert_eq!(decode(&blob), Err(DecodeError::BadMagic));
    let mut blob = encode(&sample());
    blob[4] = 9;
    assert_eq!(
        decode(&blob),
        Err(DecodeError::UnsupportedVersion { found: 9 })
    );
    let mut blob = encode(&sample());
    // First layer's op code.
    blob[HEADER_LEN] = 77;
    assert_eq!(
        decode(&blob),
        Err(DecodeError::UnknownOp { layer: 0, op: 77 })
    );
    let mut blob = encode(&sample());
    blob[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode(&blob),
        Err(DecodeError::TooManyLayers { .. })
    ));
    // An op of the CNN family (9, hard_swish) in place of the first layer's
    // (with 4 params, where hard_swish has 1): a kernel without the family
    // names the op before reading params.
    let mut blob = encode(&sample());
    blob[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&9u32.to_le_bytes());
    let refused = crate::ModelError::NotInKernel {
        layer: 0,
        op: "hard_swish",
        feature: "conv",
    };
    assert_eq!(
        decode(&blob),
        Err(match cfg!(feature = "conv") {
            true => DecodeError::BadParams { layer: 0 },
            false => DecodeError::Model(refused),
        })
    );
}

/// A NaN weight: [`decode`] names it, [`decode_unscanned`] (a module's
/// per-instance decode) accepts the model, whose scores are then NaN.
#[test]
fn only_the_full_decode_scans_values() {
    let mut blob = encode(&sample());
    // Layer 1 is the dense layer: op, 6, inputs, outputs, weight offset.
    let record = HEADER_LEN + 4 * (2 + 4);
    let off = u32::from_le_bytes(blob[record + 16..record + 20].try_into().unwrap());
    let off = off as usize;
    blob[off..off + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(
        decode(&blob),
        Err(DecodeError::Model(crate::ModelError::NotFinite {
            layer: 1,
            tensor: "weight"
        }))
    );
    let model = decode_unscanned(&blob).unwrap();
    assert!(model.predict(&[1.0, 2.0, 3.0]).unwrap()[0].is_nan());
}

/// A static and a dynamic int8 model survive the blob round trip, and
/// every truncation or byte flip of their blobs is an error or another
/// valid model, never a panic.
#[test]
fn blob_round_trip_and_totality() {
    let float_out = |input_scale| Int8Output::Float {
        input_scale,
        weight_scale: alloc::vec![0.5, 0.25, 2.0].into(),
        bias: alloc::vec![0.0, 1.0, -1.0].into(),
    };
    let rows: alloc::vec::Vec<i8> = (0..15).map(|v| (v * 17 - 120) as i8).collect();
    let stat = Model::new(
        5,
        alloc::vec![
            Layer::Int8(Int8Layer::Quantize {
                len: 5,
                scale: 0.1,
                zero_point: -7
            }),
            Layer::Int8(Int8Layer::Dense(
                DenseI8::from_rows(
                    1,
                    5,
                    3,
                    &rows,
                    alloc::vec![1, -2, 3].into(),
                    Int8Output::Int8 {
                        multiplier: alloc::vec![1 << 30, 1 << 30, 1 << 30].into(),
                        shift: alloc::vec![33, 34, 35].into(),
                        zero_point: -128,
                        relu: true,
                    },
                )
                .unwrap(),
            )),
            Layer::Int8(Int8Layer::Dense(
                DenseI8::from_rows(
                    2,
                    3,
                    3,
                    &rows[..9],
                    alloc::vec![0; 3].into(),
                    float_out(Some(0.02))
                )
                .unwrap(),
            )),
        ],
    )
    .unwrap();
    let dynamic = Model::new(
        5,
        alloc::vec![
            Layer::Int8(Int8Layer::QuantizeDynamic { len: 5 }),
            Layer::Int8(Int8Layer::Dense(
                DenseI8::from_rows(1, 5, 3, &rows, alloc::vec![0; 3].into(), float_out(None))
                    .unwrap(),
            )),
        ],
    )
    .unwrap();
    let x = [0.3, -1.0, 2.5, 0.0, 7.0, 1.0, 1.0, 1.0, 1.0, -9.0];
    for m in [stat, dynamic] {
        let blob = encode(&m);
        let back = decode(&blob).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.predict(&x).unwrap(), m.predict(&x).unwrap());
        for n in 0..blob.len() {
            assert!(decode(&blob[..n]).is_err(), "prefix {n}");
        }
        for i in 0..blob.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = blob.clone();
                b[i] ^= flip;
                if let Ok(m) = decode(&b) {
                    let _ = m.predict(&x);
                }
            }
        }
    }
}

/// Grouped and depthwise convolutions (op 13) round-trip, survive
/// truncation and byte flips, and give the values of the zero-filled full
/// convolution they replace (equal as numbers: the zeros only add ±0).
#[cfg(feature = "conv")]
#[test]
fn grouped_convs_round_trip_and_equal_the_zero_filled_conv() {
    // 4 channels of 7×6; SAME_UPPER at stride 2; dilation 1 and 2.
    for (groups, out_c, dilation) in [(4, 4, 1), (2, 6, 1), (4, 8, 2)] {
        let (in_c, per) = (4, 4 / groups);
        let geom = ConvGeom::new([in_c, 7, 6, out_c, 3, 3, 2, 0])
            .with_pads([0, 0, 1, 1])
            .with_dilation(dilation)
            .with_groups(groups);
        let filters: Vec<f32> = (0..out_c * per * 9)
            .map(|v| (v as f32 * 0.37).sin())
            .collect();
        let bias: Vec<f32> = (0..out_c).map(|o| o as f32 * 0.25 - 0.5).collect();
        let conv = Layer::conv2d_from_filters(0, geom, &filters, bias.clone().into()).unwrap();
        let m = Model::new(in_c * 42, vec![conv]).unwrap();
        // The same filters with zeros outside each group, one group.
        let mut full = vec![0.0; out_c * in_c * 9];
        for o in 0..out_c {
            let g = o / (out_c / groups);
            for i in 0..per {
                for t in 0..9 {
                    full[(o * in_c + g * per + i) * 9 + t] = filters[(o * per + i) * 9 + t];
                }
            }
        }
        let plain = geom.with_groups(1);
        let dense = Layer::conv2d_from_filters(0, plain, &full, bias.into()).unwrap();
        let reference = Model::new(in_c * 42, vec![dense]).unwrap();
        let x: Vec<f32> = (0..2 * in_c * 42).map(|v| (v as f32 * 0.7).cos()).collect();
        let (got, want) = (m.predict(&x).unwrap(), reference.predict(&x).unwrap());
        assert_eq!(Some(got.len() / 2), geom.output_len());
        assert!(got.iter().zip(&want).all(|(a, b)| a == b), "{groups}");
        let blob = encode(&m);
        let back = decode(&blob).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.predict(&x).unwrap(), got);
        for n in 0..blob.len() {
            assert!(decode(&blob[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0xff;
            if let Ok(m) = decode(&b) {
                let _ = m.predict(&x);
            }
        }
    }
}

/// A graph (a residual add, a gate, a concatenation) round trips as a
/// version-5 blob, and every truncation or byte flip of it is an error or
/// another valid model, never a panic.
#[cfg(feature = "dag")]
#[test]
fn graph_round_trip_and_totality() {
    let node = |layer, inputs: &[usize]| crate::Node {
        layer,
        inputs: inputs.to_vec(),
    };
    let relu = Layer::Activation {
        kind: Activation::Relu,
        len: 4,
    };
    let m = Model::graph(
        4,
        vec![
            node(
                Layer::dense_from_rows(0, 4, 4, &[0.5; 16], vec![0.1; 4].into()).unwrap(),
                &[0],
            ),
            node(relu, &[1]),
            node(Layer::Add { len: 4 }, &[2, 0]),
            node(
                Layer::dense_from_rows(3, 4, 2, &[0.25; 8], vec![0.0; 2].into()).unwrap(),
                &[3],
            ),
            node(
                Layer::Mul {
                    channels: 2,
                    inner: 2,
                },
                &[3, 4],
            ),
            node(Layer::Concat { parts: vec![4, 4] }, &[5, 0]),
        ],
    )
    .unwrap();
    let blob = encode(&m);
    assert_eq!(blob[4..8], GRAPH_VERSION.to_le_bytes());
    let back = decode(&blob).unwrap();
    assert_eq!(back, m);
    let x = [0.3, -1.0, 2.5, 0.0, 7.0, 1.0, -1.0, 1.0];
    assert_eq!(back.predict(&x).unwrap(), m.predict(&x).unwrap());
    for n in 0..blob.len() {
        assert!(decode(&blob[..n]).is_err(), "prefix {n}");
    }
    for i in 0..blob.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = blob.clone();
            b[i] ^= flip;
            if let Ok(m) = decode(&b) {
                let _ = m.predict(&x);
            }
        }
    }
    // A chain blob carrying a joining layer is refused by name.
    let mut chain = encode(&sample());
    chain[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&40u32.to_le_bytes());
    chain[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&1u32.to_le_bytes());
    assert!(decode(&chain).is_err());
}

/// Stacked recurrent layers of every cell — sequence output into the
/// next, bidirectional, layers 1 and 2 with int8 weights (with
/// `int8-rnn`), the dense head after.
#[cfg(feature = "rnn")]
fn recurrent_sample() -> Model<'static> {
    use crate::{Cell, RecurrentGeom};
    let (steps, mut features, hidden) = (3, 2, 3);
    let mut layers = Vec::new();
    for (i, cell) in Cell::ALL.into_iter().enumerate() {
        let geom = RecurrentGeom {
            cell,
            steps,
            features,
            hidden,
            bidirectional: i % 2 == 1,
            sequence: i < 3,
        };
        let [w, r, b] = geom.tensor_lens().unwrap();
        let v = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|k| ((k * 13 + s) % 17) as f32 / 8.0 - 1.0)
                .collect()
        };
        let (wv, rv, bv) = (v(w, i), v(r, i + 1), v(b, i + 2).into());
        let layer = if cfg!(feature = "int8-rnn") && (i == 1 || i == 2) {
            let q = |t: &[f32]| t.iter().map(|&v| (v * 100.0) as i8).collect::<Vec<_>>();
            let gh = w / geom.directions() / features;
            let s = |n: usize| (1..=n).map(|k| k as f32 / 64.0).collect::<Vec<_>>();
            let scales = [s(geom.directions() * gh), s(geom.directions() * gh)];
            let scales = [scales[0].as_slice(), scales[1].as_slice()];
            Layer::recurrent_int8(i, geom, [&q(&wv), &q(&rv)], scales, bv)
        } else {
            Layer::recurrent(i, geom, &wv, &rv, bv)
        };
        layers.push(layer.unwrap());
        features = geom.directions() * hidden;
    }
    let head = Layer::dense_from_rows(4, 6, 2, &[0.5; 12], vec![0.1, -0.1].into()).unwrap();
    layers.push(head);
    Model::new(6, layers).unwrap()
}

#[cfg(feature = "rnn")]
#[test]
fn recurrent_round_trip_and_totality() {
    let m = recurrent_sample();
    let blob = encode(&m);
    let back = decode(&blob).unwrap();
    assert_eq!(back, m);
    let x = [0.5, -1.0, 2.0, 0.25, -0.5, 1.5];
    let y = m.predict(&x).unwrap();
    assert_eq!(back.predict(&x).unwrap(), y);
    assert!(y.iter().all(|v| v.is_finite()));
    for n in 0..blob.len() {
        assert!(decode(&blob[..n]).is_err(), "prefix of {n} bytes decoded");
    }
    for i in 0..blob.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = blob.clone();
            b[i] ^= flip;
            if let Ok(model) = decode(&b) {
                // A model the corruption left valid still runs.
                let x = alloc::vec![0.5; model.input_len()];
                let _ = model.predict(&x);
            }
        }
    }
    // Layer 0's flags (op, 10, steps, features, hidden, flags): an unknown
    // bit, linear_before_reset on an RNN, int8 with the f32 params.
    let flags = HEADER_LEN + 4 * 5;
    for bad in [16u32, 4, 8] {
        let mut b = blob.clone();
        b[flags..flags + 4].copy_from_slice(&bad.to_le_bytes());
        assert_eq!(decode(&b), Err(DecodeError::BadParams { layer: 0 }));
    }
}

/// A kernel without the recurrent family names the op before reading
/// its params.
#[cfg(not(feature = "rnn"))]
#[test]
fn recurrent_ops_are_refused_by_name() {
    let mut blob = encode(&sample());
    blob[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&51u32.to_le_bytes());
    let refused = crate::ModelError::NotInKernel {
        layer: 0,
        op: "gru",
        feature: "rnn",
    };
    assert_eq!(decode(&blob), Err(DecodeError::Model(refused)));
}

/// A kernel without `int8-rnn` names the op of int8 weights before reading
/// them.
#[cfg(all(feature = "rnn", not(feature = "int8-rnn")))]
#[test]
fn int8_recurrent_weights_are_refused_by_name() {
    let mut blob = encode(&recurrent_sample());
    // Layer 0 (rnn): int8 flag and the int8 params' count.
    blob[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&18u32.to_le_bytes());
    blob[HEADER_LEN + 4 * 5..HEADER_LEN + 4 * 6].copy_from_slice(&8u32.to_le_bytes());
    let refused = crate::ModelError::NotInKernel {
        layer: 0,
        op: "rnn",
        feature: "int8-rnn",
    };
    assert_eq!(decode(&blob), Err(DecodeError::Model(refused)));
}
