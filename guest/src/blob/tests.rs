//! The codec round trips every layer kind, and decoding is total.

use super::*;
use crate::{Activation, ConvGeom, DenseI8, Int8Layer, Int8Output, PoolGeom, PoolKind};

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
        Layer::PRelu {
            inner: 1,
            slope: vec![0.5, 0.25].into(),
        },
        Layer::GlobalAvgPool {
            channels: 1,
            inner: 2,
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

fn conv_sample() -> Model<'static> {
    let geom = ConvGeom {
        in_c: 1,
        in_h: 4,
        in_w: 4,
        out_c: 2,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
    };
    let filters: Vec<f32> = (0..18).map(|v| v as f32 * 0.1 - 0.9).collect();
    let layers = vec![
        Layer::conv2d_from_filters(0, geom, &filters, vec![0.5, -0.5].into()).unwrap(),
        Layer::Pool {
            kind: PoolKind::Max,
            geom: PoolGeom {
                c: 2,
                h: 4,
                w: 4,
                k: 2,
                stride: 2,
            },
        },
        Layer::Pool {
            kind: PoolKind::Avg,
            geom: PoolGeom {
                c: 2,
                h: 2,
                w: 2,
                k: 2,
                stride: 1,
            },
        },
    ];
    Model::new(16, layers).unwrap()
}

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
