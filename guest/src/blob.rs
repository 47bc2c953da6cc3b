//! The compact model blob that `kiln build` embeds into a module.
//!
//! The kiln *model file* is safetensors (see `docs/model-format.md`); parsing
//! its JSON header inside every module would cost ~100 KB of wasm, so the host
//! derives this small binary form instead and the module decodes it with a
//! few dozen lines. All integers are little-endian `u32`:
//!
//! ```text
//! 0   magic "KLNB"          4   version (4)         8   total length in bytes
//! 12  input_len             16  layer count n
//! 20  n layer records: op, param count k, k params
//! ... f32 tensor data, each tensor starting at a multiple of 16 bytes
//! ```
//!
//! Tensors are referenced by (byte offset from the blob start, element
//! count). Op codes and params:
//!
//! | op | layer        | params                                   |
//! |----|--------------|------------------------------------------|
//! | 1  | standardize  | mean (off, len), inv_std (off, len)      |
//! | 2  | dense        | inputs, outputs, weight (off, len), bias (off, len) — weight in column panels ([`crate::kernels::packing::dense`]) |
//! | 3  | relu         | len                                      |
//! | 4  | sigmoid      | len                                      |
//! | 5  | tanh         | len                                      |
//! | 6  | softmax      | len                                      |
//! | 10 | conv2d       | in_c, in_h, in_w, out_c, kh, kw, stride, pad, weight (off, len), bias (off, len) — weight tap-major (`in_c × kh × kw × out_c`) |
//! | 11 | max pool     | c, h, w, k, stride                       |
//! | 12 | avg pool     | c, h, w, k, stride                       |
//! | 30 | leaky_relu   | len, alpha (f32 bits)                    |
//! | 31 | group_softmax | width, group, log (0 or 1)              |
//! | 32 | scale_shift  | inner, scale (off, len), shift (off, len) |
//! | 33 | global_avg_pool | channels, inner                       |
//! | 34 | prelu        | inner, slope (off, len)                  |
//!
//! Codes 10–19 are convolution and pooling layers, 20–29 int8 layers (20–26
//! used, see [`crate::int8`]'s `blob` module), 30–39 the ops ONNX import needs.
//!
//! [`decode`] is total: every offset, count and width is checked, and the
//! result goes through [`Model::new`].

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::{Activation, ConvGeom, DecodeError, Layer, Model, PoolGeom, PoolKind};

/// The first four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"KLNB";
/// The blob format version this crate writes and reads. Version 2 packs int8
/// dense weights four outputs × four inputs per 16 bytes (version 1: eight
/// outputs × two inputs). Version 3 packs int8 convolution filters in
/// groups of four output channels × pairs of neighbouring taps (version 2:
/// one zero-padded row per output channel; see
/// [`crate::kernels::packing::conv_i8`]). Version 4 stores f32 dense weights in
/// column [`panels`](crate::kernels::packing::dense) (version 3: input-major). An
/// older blob is refused rather than misread.
pub const VERSION: u32 = 4;
/// Bytes before the first layer record.
pub const HEADER_LEN: usize = 20;
/// Alignment of tensor data inside the blob (and of the blob in memory).
pub const ALIGN: usize = 16;

const OP_STANDARDIZE: u32 = 1;
const OP_DENSE: u32 = 2;
const OP_RELU: u32 = 3;
const OP_SIGMOID: u32 = 4;
const OP_TANH: u32 = 5;
const OP_SOFTMAX: u32 = 6;
const OP_CONV2D: u32 = 10;
const OP_MAX_POOL: u32 = 11;
const OP_AVG_POOL: u32 = 12;
const OP_LEAKY_RELU: u32 = 30;
const OP_GROUP_SOFTMAX: u32 = 31;
const OP_SCALE_SHIFT: u32 = 32;
const OP_GLOBAL_AVG_POOL: u32 = 33;
const OP_PRELU: u32 = 34;

/// Serialises `model`. Widths and tensor sizes of a valid [`Model`] fit in
/// `u32` (see [`crate::model::MAX_WIDTH`]).
pub fn encode(model: &Model<'_>) -> Vec<u8> {
    let mut records: Vec<u32> = Vec::new();
    // (index of the offset word in `records`, tensor): offsets are patched in
    // once the size of the records is known.
    let mut tensors: Vec<(usize, TensorRef<'_>)> = Vec::new();
    for layer in model.layers() {
        let refs: [Option<&[f32]>; 2] = match layer {
            Layer::Int8(l) => {
                crate::int8::blob::encode(l, &mut records, &mut tensors);
                [None, None]
            }
            Layer::Standardize { mean, inv_std } => {
                records.extend([OP_STANDARDIZE, 4]);
                [Some(mean), Some(inv_std)]
            }
            Layer::Dense {
                inputs,
                outputs,
                weight,
                bias,
            } => {
                records.extend([OP_DENSE, 6, *inputs as u32, *outputs as u32]);
                [Some(weight), Some(bias)]
            }
            Layer::Activation { kind, len } => {
                let op = match kind {
                    Activation::Relu => OP_RELU,
                    Activation::Sigmoid => OP_SIGMOID,
                    Activation::Tanh => OP_TANH,
                    Activation::Softmax => OP_SOFTMAX,
                };
                records.extend([op, 1, *len as u32]);
                [None, None]
            }
            Layer::Conv2d { geom, weight, bias } => {
                let g = geom;
                records.extend([OP_CONV2D, 12]);
                records.extend(g.dims().map(|v| v as u32));
                [Some(weight), Some(bias)]
            }
            Layer::Pool { kind, geom: g } => {
                let op = match kind {
                    PoolKind::Max => OP_MAX_POOL,
                    PoolKind::Avg => OP_AVG_POOL,
                };
                records.extend([op, 5]);
                records.extend([g.c, g.h, g.w, g.k, g.stride].map(|v| v as u32));
                [None, None]
            }
            Layer::LeakyRelu { alpha, len } => {
                records.extend([OP_LEAKY_RELU, 2, *len as u32, alpha.to_bits()]);
                [None, None]
            }
            Layer::GroupSoftmax { width, group, log } => {
                records.extend([
                    OP_GROUP_SOFTMAX,
                    3,
                    *width as u32,
                    *group as u32,
                    *log as u32,
                ]);
                [None, None]
            }
            Layer::ScaleShift {
                inner,
                scale,
                shift,
            } => {
                records.extend([OP_SCALE_SHIFT, 5, *inner as u32]);
                [Some(scale), Some(shift)]
            }
            Layer::PRelu { inner, slope } => {
                records.extend([OP_PRELU, 3, *inner as u32]);
                [Some(slope), None]
            }
            Layer::GlobalAvgPool { channels, inner } => {
                records.extend([OP_GLOBAL_AVG_POOL, 2, *channels as u32, *inner as u32]);
                [None, None]
            }
        };
        for t in refs.into_iter().flatten() {
            tensors.push((records.len(), TensorRef::F32(t)));
            records.extend([0, t.len() as u32]);
        }
    }
    let mut offset = align(HEADER_LEN + records.len() * 4);
    for (slot, t) in &tensors {
        records[*slot] = offset as u32;
        offset = align(offset + t.byte_len());
    }
    let total = offset;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&MAGIC);
    for v in [
        VERSION,
        total as u32,
        model.input_len() as u32,
        model.layers().len() as u32,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in &records {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (_, t) in &tensors {
        out.resize(align(out.len()), 0);
        t.write_le(&mut out);
    }
    out.resize(total, 0);
    out
}

/// A tensor to place in the blob: its record holds (offset, element count).
pub(crate) enum TensorRef<'t> {
    F32(&'t [f32]),
    I8(&'t [i8]),
    I32(&'t [i32]),
}

impl TensorRef<'_> {
    fn len(&self) -> usize {
        match self {
            TensorRef::F32(t) => t.len(),
            TensorRef::I8(t) => t.len(),
            TensorRef::I32(t) => t.len(),
        }
    }

    fn byte_len(&self) -> usize {
        match self {
            TensorRef::I8(t) => t.len(),
            TensorRef::F32(t) => t.len() * 4,
            TensorRef::I32(t) => t.len() * 4,
        }
    }

    fn write_le(&self, out: &mut Vec<u8>) {
        match self {
            TensorRef::F32(t) => t
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            TensorRef::I8(t) => out.extend(t.iter().map(|&v| v as u8)),
            TensorRef::I32(t) => t
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        }
    }
}

/// Appends a tensor reference (offset patched later, element count) to a
/// layer record.
pub(crate) fn push_tensor<'t>(
    records: &mut Vec<u32>,
    tensors: &mut Vec<(usize, TensorRef<'t>)>,
    t: TensorRef<'t>,
) {
    let count = t.len() as u32;
    tensors.push((records.len(), t));
    records.extend([0, count]);
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Reads the total length a blob declares, after checking magic and version.
/// The module uses it to find the blob's end before decoding.
pub fn declared_len(header: &[u8]) -> Result<usize, DecodeError> {
    let mut r = Reader {
        bytes: header,
        pos: 0,
    };
    if header.get(..4) != Some(&MAGIC[..]) {
        return Err(DecodeError::BadMagic);
    }
    r.pos = 4;
    let version = r.u32()?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    Ok(r.u32()? as usize)
}

/// Decodes a blob, borrowing tensors from `bytes` where they are aligned,
/// and checks it completely ([`Model::new`]).
pub fn decode(bytes: &[u8]) -> Result<Model<'_>, DecodeError> {
    decode_with(bytes, true)
}

/// [`decode`] without scanning the f32 tensors for NaN and infinity
/// ([`Model::new_unscanned`]): a model module's per-instance decode.
pub fn decode_unscanned(bytes: &[u8]) -> Result<Model<'_>, DecodeError> {
    decode_with(bytes, false)
}

fn decode_with(bytes: &[u8], scan: bool) -> Result<Model<'_>, DecodeError> {
    let declared = declared_len(bytes)?;
    if declared != bytes.len() {
        return Err(DecodeError::LengthMismatch {
            declared,
            actual: bytes.len(),
        });
    }
    let mut r = Reader { bytes, pos: 12 };
    let input_len = r.u32()? as usize;
    let count = r.u32()? as usize;
    // Every record takes at least 8 bytes: refuse counts the blob cannot hold
    // before allocating for them.
    if count > (bytes.len() - HEADER_LEN) / 8 {
        return Err(DecodeError::TooManyLayers { count });
    }
    let mut layers = Vec::with_capacity(count);
    for index in 0..count {
        let op = r.u32()?;
        let k = r.u32()? as usize;
        let expected = match op {
            OP_STANDARDIZE => 4,
            OP_DENSE => 6,
            OP_RELU | OP_SIGMOID | OP_TANH | OP_SOFTMAX => 1,
            OP_CONV2D => 12,
            OP_MAX_POOL | OP_AVG_POOL => 5,
            op if crate::int8::blob::is_int8_op(op) => {
                layers.push(crate::int8::blob::decode(op, k, &mut r, index)?);
                continue;
            }
            OP_LEAKY_RELU | OP_GLOBAL_AVG_POOL => 2,
            OP_GROUP_SOFTMAX | OP_PRELU => 3,
            OP_SCALE_SHIFT => 5,
            _ => return Err(DecodeError::UnknownOp { layer: index, op }),
        };
        if k != expected {
            return Err(DecodeError::BadParams { layer: index });
        }
        let layer = match op {
            OP_STANDARDIZE => Layer::Standardize {
                mean: r.tensor(index)?,
                inv_std: r.tensor(index)?,
            },
            OP_DENSE => Layer::Dense {
                inputs: r.u32()? as usize,
                outputs: r.u32()? as usize,
                weight: r.tensor(index)?,
                bias: r.tensor(index)?,
            },
            OP_CONV2D => {
                let mut d = [0usize; 8];
                for v in &mut d {
                    *v = r.u32()? as usize;
                }
                Layer::Conv2d {
                    geom: ConvGeom::new(d),
                    weight: r.tensor(index)?,
                    bias: r.tensor(index)?,
                }
            }
            OP_MAX_POOL | OP_AVG_POOL => {
                let mut d = [0usize; 5];
                for v in &mut d {
                    *v = r.u32()? as usize;
                }
                Layer::Pool {
                    kind: if op == OP_MAX_POOL {
                        PoolKind::Max
                    } else {
                        PoolKind::Avg
                    },
                    geom: PoolGeom::new(d),
                }
            }
            OP_LEAKY_RELU => Layer::LeakyRelu {
                len: r.u32()? as usize,
                alpha: f32::from_bits(r.u32()?),
            },
            OP_GROUP_SOFTMAX => Layer::GroupSoftmax {
                width: r.u32()? as usize,
                group: r.u32()? as usize,
                log: match r.u32()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::BadParams { layer: index }),
                },
            },
            OP_SCALE_SHIFT => Layer::ScaleShift {
                inner: r.u32()? as usize,
                scale: r.tensor(index)?,
                shift: r.tensor(index)?,
            },
            OP_PRELU => Layer::PRelu {
                inner: r.u32()? as usize,
                slope: r.tensor(index)?,
            },
            OP_GLOBAL_AVG_POOL => Layer::GlobalAvgPool {
                channels: r.u32()? as usize,
                inner: r.u32()? as usize,
            },
            _ => {
                let kind = match op {
                    OP_RELU => Activation::Relu,
                    OP_SIGMOID => Activation::Sigmoid,
                    OP_TANH => Activation::Tanh,
                    _ => Activation::Softmax,
                };
                Layer::Activation {
                    kind,
                    len: r.u32()? as usize,
                }
            }
        };
        layers.push(layer);
    }
    Ok(if scan {
        Model::new(input_len, layers)?
    } else {
        Model::new_unscanned(input_len, layers)?
    })
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let end = self.pos + 4;
        let b = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated { at: end })?;
        self.pos = end;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An (offset, count) reference to f32 data inside the blob.
    pub(crate) fn tensor(&mut self, layer: usize) -> Result<Cow<'a, [f32]>, DecodeError> {
        self.typed(layer, f32::from_le_bytes)
    }

    /// An (offset, count) reference to `T` data (`N` bytes each, little
    /// endian) inside the blob, borrowed when aligned.
    pub(crate) fn typed<T: bytemuck::Pod, const N: usize>(
        &mut self,
        layer: usize,
        from_le: fn([u8; N]) -> T,
    ) -> Result<Cow<'a, [T]>, DecodeError> {
        let bad = DecodeError::BadTensor { layer };
        let off = self.u32()? as usize;
        let len = self.u32()? as usize;
        let end = len
            .checked_mul(N)
            .and_then(|n| n.checked_add(off))
            .ok_or(bad.clone())?;
        if !off.is_multiple_of(ALIGN) {
            return Err(bad);
        }
        let raw = self.bytes.get(off..end).ok_or(bad)?;
        #[cfg(target_endian = "little")]
        if let Ok(values) = bytemuck::try_cast_slice::<u8, T>(raw) {
            return Ok(Cow::Borrowed(values));
        }
        Ok(Cow::Owned(
            raw.chunks_exact(N)
                .map(|c| {
                    let mut b = [0u8; N];
                    b.copy_from_slice(c);
                    from_le(b)
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let geom = ConvGeom::new([1, 4, 4, 2, 3, 3, 1, 1]);
        let filters: Vec<f32> = (0..18).map(|v| v as f32 * 0.1 - 0.9).collect();
        let layers = vec![
            Layer::conv2d_from_filters(0, geom, &filters, vec![0.5, -0.5].into()).unwrap(),
            Layer::Pool {
                kind: PoolKind::Max,
                geom: PoolGeom::new([2, 4, 4, 2, 2]),
            },
            Layer::Pool {
                kind: PoolKind::Avg,
                geom: PoolGeom::new([2, 2, 2, 2, 1]),
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
}
