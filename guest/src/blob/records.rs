//! The pieces every layer record is made of: tensor references written by
//! [`push_tensor`] (their data placed later, [`TensorRef`]) and read back by
//! a [`Reader`], which checks each one against the blob.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::DecodeError;

/// Alignment of tensor data inside the blob (and of the blob in memory).
pub const ALIGN: usize = 16;

/// `n` rounded up to a multiple of [`ALIGN`].
pub(super) fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// A tensor to place in the blob: its record holds (offset, element count).
pub(super) enum TensorRef<'t> {
    F32(&'t [f32]),
    I8(&'t [i8]),
    I32(&'t [i32]),
    U32(&'t [u32]),
}

impl TensorRef<'_> {
    fn len(&self) -> usize {
        match self {
            TensorRef::F32(t) => t.len(),
            TensorRef::I8(t) => t.len(),
            TensorRef::I32(t) => t.len(),
            TensorRef::U32(t) => t.len(),
        }
    }

    pub(super) fn byte_len(&self) -> usize {
        match self {
            TensorRef::I8(t) => t.len(),
            TensorRef::F32(t) => t.len() * 4,
            TensorRef::I32(t) => t.len() * 4,
            TensorRef::U32(t) => t.len() * 4,
        }
    }

    pub(super) fn write_le(&self, out: &mut Vec<u8>) {
        match self {
            TensorRef::F32(t) => t
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            TensorRef::I8(t) => out.extend(t.iter().map(|&v| v as u8)),
            TensorRef::I32(t) => t
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            TensorRef::U32(t) => t
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        }
    }
}

/// Appends a tensor reference (offset patched later, element count) to a
/// layer record.
pub(super) fn push_tensor<'t>(
    records: &mut Vec<u32>,
    tensors: &mut Vec<(usize, TensorRef<'t>)>,
    t: TensorRef<'t>,
) {
    let count = t.len() as u32;
    tensors.push((records.len(), t));
    records.extend([0, count]);
}

/// Reads a blob's little-endian words and tensor references from `pos` on.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `bytes` starting at byte `pos`.
    pub(super) fn at(bytes: &'a [u8], pos: usize) -> Self {
        Reader { bytes, pos }
    }

    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        let end = self.pos + 4;
        let b = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated { at: end })?;
        self.pos = end;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An (offset, count) reference to f32 data inside the blob.
    pub(super) fn tensor(&mut self, layer: usize) -> Result<Cow<'a, [f32]>, DecodeError> {
        self.typed(layer, f32::from_le_bytes)
    }

    /// An (offset, count) reference to `T` data (`N` bytes each, little
    /// endian) inside the blob, borrowed when aligned.
    pub(super) fn typed<T: bytemuck::Pod, const N: usize>(
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
