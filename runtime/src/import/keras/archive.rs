//! The zip container of a Keras 3 `.keras` file: just enough of the format
//! to find a member by name in the central directory and read it, stored
//! or deflated, checking its CRC-32. Every offset and length is checked
//! against the file, a member never inflates past its declared size, and
//! no size is believed beyond [`MAX_FILE_BYTES`]. ZIP64, encryption and
//! multi-disk archives are refused (Keras writes none of them).

use std::io::Read;

use super::{KerasError, MAX_FILE_BYTES};

const EOCD: u32 = 0x0605_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;

/// A zip archive's bytes and where its central directory lies.
pub(super) struct Zip<'a> {
    bytes: &'a [u8],
    central: &'a [u8],
    entries: usize,
}

fn bad(problem: impl Into<String>) -> KerasError {
    KerasError::Archive {
        file: "the .keras archive".into(),
        problem: problem.into(),
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?).into())
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn usize_at(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u32_at(b, at)?).ok()
}

impl<'a> Zip<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Result<Self, KerasError> {
        let last = bytes
            .len()
            .checked_sub(EOCD_LEN)
            .ok_or_else(|| bad("it is too short to be a zip archive"))?;
        // The end record is followed by a comment of at most 64 KiB.
        let eocd = (last.saturating_sub(0xffff)..=last)
            .rev()
            .find(|&at| u32_at(bytes, at) == Some(EOCD))
            .ok_or_else(|| bad("no end of central directory record (truncated?)"))?;
        let field = |off| u16_at(bytes, eocd + off).unwrap_or(0);
        if field(4) != 0 || field(6) != 0 || field(8) != field(10) {
            return Err(bad("multi-disk archives are not supported"));
        }
        let entries = field(10);
        let size = usize_at(bytes, eocd + 12).unwrap_or(0);
        let offset = usize_at(bytes, eocd + 16).unwrap_or(0);
        if entries == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff {
            return Err(bad("ZIP64 archives are not supported"));
        }
        let central = offset
            .checked_add(size)
            .filter(|&end| end <= eocd)
            .and_then(|end| bytes.get(offset..end))
            .ok_or_else(|| bad("the central directory lies outside the file"))?;
        Ok(Zip {
            bytes,
            central,
            entries,
        })
    }

    /// The bytes of member `name`.
    pub(super) fn member(&self, name: &str) -> Result<Vec<u8>, KerasError> {
        let mut at = 0usize;
        for _ in 0..self.entries {
            let c = self.central;
            if u32_at(c, at) != Some(CENTRAL) {
                return Err(bad("a central directory entry is malformed"));
            }
            let field = |off: usize| u16_at(c, at + off).unwrap_or(0);
            let (flags, method) = (field(8), field(10));
            let crc = u32_at(c, at + 16).unwrap_or(0);
            let packed = usize_at(c, at + 20).unwrap_or(0);
            let size = usize_at(c, at + 24).unwrap_or(0);
            let (name_len, extra, comment) = (field(28), field(30), field(32));
            let local = usize_at(c, at + 42).unwrap_or(0);
            let entry_name = c
                .get(at + CENTRAL_LEN..at + CENTRAL_LEN + name_len)
                .ok_or_else(|| bad("a central directory entry is truncated"))?;
            at += CENTRAL_LEN + name_len + extra + comment;
            if entry_name != name.as_bytes() {
                continue;
            }
            let bad = |p: &str| bad(format!("member `{name}`: {p}"));
            if flags & 1 != 0 {
                return Err(bad("it is encrypted"));
            }
            if size > MAX_FILE_BYTES {
                return Err(bad("it is too large"));
            }
            if u32_at(self.bytes, local) != Some(LOCAL) {
                return Err(bad("its local header is missing"));
            }
            let skip = u16_at(self.bytes, local + 26).unwrap_or(0)
                + u16_at(self.bytes, local + 28).unwrap_or(0);
            let start = local + LOCAL_LEN + skip;
            let data = start
                .checked_add(packed)
                .and_then(|end| self.bytes.get(start..end))
                .ok_or_else(|| bad("its data lies outside the file"))?;
            let out = match method {
                0 if packed == size => data.to_vec(),
                0 => return Err(bad("stored with two different sizes")),
                8 => {
                    let mut out = Vec::new();
                    flate2::read::DeflateDecoder::new(data)
                        .take(size as u64 + 1)
                        .read_to_end(&mut out)
                        .map_err(|e| bad(&format!("it does not inflate ({e})")))?;
                    if out.len() != size {
                        return Err(bad("it inflates to a size other than declared"));
                    }
                    out
                }
                m => return Err(bad(&format!("compression method {m} is not supported"))),
            };
            let mut check = flate2::Crc::new();
            check.update(&out);
            if check.sum() != crc {
                return Err(bad("its CRC-32 does not match (corrupted?)"));
            }
            return Ok(out);
        }
        Err(bad(format!("it has no member `{name}`")))
    }
}
