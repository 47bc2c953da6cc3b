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
//! A graph model ([`Model::graph`]) is written as version [`GRAPH_VERSION`]:
//! the same, with each layer record preceded by the tensors it reads
//! (count m, m tensor ids; 0 is the input, `i + 1` layer `i`'s output). A
//! chain is always written as version [`VERSION`], byte for byte as before
//! graphs existed.
//!
//! Tensors are referenced by (byte offset from the blob start, element
//! count). The records of the f32 layers are in [`float`] (op codes 1–6,
//! 30–32, 40–42) and [`conv`] (the CNN family: 7–13, 33, 34), those of the
//! int8 layers in [`int8`] (20–29), the recurrent family's in [`recurrent`]
//! (50–52), the tree family's in [`trees`] (60). A kernel without a family refuses its
//! ops by name.
//!
//! [`decode`] is total: every offset, count and width is checked, and the
//! result goes through [`Model::new`].

mod conv;
mod float;
mod int8;
mod records;
mod recurrent;
#[cfg(test)]
mod tests;
mod trees;

use alloc::vec::Vec;

pub use records::ALIGN;

#[cfg(feature = "dag")]
use crate::Node;
use crate::{DecodeError, Layer, Model};
use records::{Reader, TensorRef, align};

/// The first four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"KLNB";
/// The blob format version this crate writes and reads; an older blob is
/// refused rather than misread (the versions: `docs/model-format.md`).
pub const VERSION: u32 = 4;
/// The version of a graph model's blob: [`VERSION`]'s records, each
/// preceded by the ids of the tensors its layer reads.
pub const GRAPH_VERSION: u32 = 5;
/// Bytes before the first layer record.
pub const HEADER_LEN: usize = 20;

/// Serialises `model`. Widths and tensor sizes of a valid [`Model`] fit in
/// `u32` (see [`crate::MAX_WIDTH`]).
pub fn encode(model: &Model<'_>) -> Vec<u8> {
    let mut records: Vec<u32> = Vec::new();
    // (index of the offset word in `records`, tensor): offsets are patched in
    // once the size of the records is known.
    let mut tensors: Vec<(usize, TensorRef<'_>)> = Vec::new();
    #[cfg_attr(not(feature = "dag"), allow(unused_variables))]
    for (i, layer) in model.layers().iter().enumerate() {
        #[cfg(feature = "dag")]
        if let Some(inputs) = model.inputs().and_then(|w| w.get(i)) {
            records.push(inputs.len() as u32);
            records.extend(inputs.iter().map(|&t| t as u32));
        }
        match layer {
            Layer::Int8(l) => int8::encode(l, &mut records, &mut tensors),
            Layer::Conv(l, _) => conv::encode(l, &mut records, &mut tensors),
            Layer::Recurrent(l, _) => recurrent::encode(l, &mut records, &mut tensors),
            Layer::Trees(l, _) => trees::encode(l, &mut records, &mut tensors),
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
    #[cfg(feature = "dag")]
    let version = match model.inputs() {
        Some(_) => GRAPH_VERSION,
        None => VERSION,
    };
    #[cfg(not(feature = "dag"))]
    let version = VERSION;
    for v in [
        version,
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
    version_and_len(header).map(|(_, len)| len)
}

/// The version ([`VERSION`] or [`GRAPH_VERSION`]) and total length a blob
/// declares.
fn version_and_len(header: &[u8]) -> Result<(u32, usize), DecodeError> {
    if header.get(..4) != Some(&MAGIC[..]) {
        return Err(DecodeError::BadMagic);
    }
    let mut r = Reader::at(header, 4);
    let version = r.u32()?;
    // A kernel without graph models (feature `dag`) refuses their blobs by
    // version, and holds none of their code.
    if version != VERSION && !(cfg!(feature = "dag") && version == GRAPH_VERSION) {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    Ok((version, r.u32()? as usize))
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
    #[cfg_attr(not(feature = "dag"), allow(unused_variables))]
    let (version, declared) = version_and_len(bytes)?;
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
    #[cfg(feature = "dag")]
    if version == GRAPH_VERSION {
        return decode_graph(&mut r, input_len, count, scan);
    }
    let mut layers = Vec::with_capacity(count);
    for index in 0..count {
        let op = r.u32()?;
        let k = r.u32()? as usize;
        layers.push(layer(op, k, &mut r, index)?);
    }
    Ok(if scan {
        Model::new(input_len, layers)?
    } else {
        Model::new_unscanned(input_len, layers)?
    })
}

/// Layer `index`'s record: op `op` with `k` params.
fn layer<'a>(
    op: u32,
    k: usize,
    r: &mut Reader<'a>,
    index: usize,
) -> Result<Layer<'a>, DecodeError> {
    if int8::is_int8_op(op) {
        int8::decode(op, k, r, index)
    } else if let Some(name) = conv::op_name(op) {
        conv::decode(op, name, k, r, index)
    } else if let Some(name) = recurrent::op_name(op) {
        recurrent::decode(op, name, k, r, index)
    } else if op == trees::OP_TREES {
        trees::decode(k, r, index)
    } else {
        float::decode(op, k, r, index)
    }
}

/// The records of a graph blob ([`GRAPH_VERSION`]): each layer's input ids,
/// then its record. A kernel without `dag` holds none of this.
#[cfg(feature = "dag")]
fn decode_graph<'a>(
    r: &mut Reader<'a>,
    input_len: usize,
    count: usize,
    scan: bool,
) -> Result<Model<'a>, DecodeError> {
    let mut nodes = Vec::with_capacity(count);
    for index in 0..count {
        // Ids are checked by `Model::graph`; the reader stops at the blob's
        // end, which bounds the list.
        let m = r.u32()?;
        let mut inputs = Vec::new();
        for _ in 0..m {
            inputs.push(r.u32()? as usize);
        }
        let op = r.u32()?;
        let k = r.u32()? as usize;
        let layer = layer(op, k, r, index)?;
        nodes.push(Node { layer, inputs });
    }
    Ok(if scan {
        Model::graph(input_len, nodes)?
    } else {
        Model::graph_unscanned(input_len, nodes)?
    })
}
