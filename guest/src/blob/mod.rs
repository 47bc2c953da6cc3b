//! The compact model blob that `kiln build` embeds into a module: the one
//! codec of [`Model`]s, every layer kind.
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
//! count). The records of the f32 layers are in [`float`] (op codes 1–19,
//! 30–39), those of the int8 layers in [`int8`] (20–29).
//!
//! [`decode`] is total: every offset, count and width is checked, and the
//! result goes through [`Model::new`].

mod float;
mod int8;
mod records;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;

pub use records::ALIGN;

use crate::{DecodeError, Layer, Model};
use records::{Reader, TensorRef, align};

/// The first four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"KLNB";
/// The blob format version this crate writes and reads; an older blob is
/// refused rather than misread (the versions: `docs/model-format.md`).
pub const VERSION: u32 = 4;
/// Bytes before the first layer record.
pub const HEADER_LEN: usize = 20;

/// Serialises `model`. Widths and tensor sizes of a valid [`Model`] fit in
/// `u32` (see [`crate::MAX_WIDTH`]).
pub fn encode(model: &Model<'_>) -> Vec<u8> {
    let mut records: Vec<u32> = Vec::new();
    // (index of the offset word in `records`, tensor): offsets are patched in
    // once the size of the records is known.
    let mut tensors: Vec<(usize, TensorRef<'_>)> = Vec::new();
    for layer in model.layers() {
        match layer {
            Layer::Int8(l) => int8::encode(l, &mut records, &mut tensors),
            _ => float::encode(layer, &mut records, &mut tensors),
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

/// Reads the total length a blob declares, after checking magic and version.
/// The module uses it to find the blob's end before decoding.
pub fn declared_len(header: &[u8]) -> Result<usize, DecodeError> {
    if header.get(..4) != Some(&MAGIC[..]) {
        return Err(DecodeError::BadMagic);
    }
    let mut r = Reader::at(header, 4);
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
    let mut r = Reader::at(bytes, 12);
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
        layers.push(if int8::is_int8_op(op) {
            int8::decode(op, k, &mut r, index)?
        } else {
            float::decode(op, k, &mut r, index)?
        });
    }
    Ok(if scan {
        Model::new(input_len, layers)?
    } else {
        Model::new_unscanned(input_len, layers)?
    })
}
