//! A minimal, total reader of WebAssembly binaries: just enough to find one
//! custom section and one active data segment in a model module, without
//! pulling `wasmparser` (~100 KB) into the browser package.
//!
//! Every length is checked against the bytes present; any malformed input is
//! an `Err` with a short reason, never a panic.

use std::string::String;

/// The pieces of a module the browser package reads.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Parts<'a> {
    /// The contents of the first custom section with the requested name.
    pub(super) custom: Option<&'a [u8]>,
    /// The first active data segment whose bytes start with the prefix.
    pub(super) data: Option<&'a [u8]>,
}

const SECTION_CUSTOM: u8 = 0;
const SECTION_DATA: u8 = 11;

/// Walks the sections of `bytes` for the custom section `custom` and the
/// active data segment starting with `data_prefix`.
pub(super) fn parts<'a>(
    bytes: &'a [u8],
    custom: &str,
    data_prefix: &[u8],
) -> Result<Parts<'a>, String> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(4)? != b"\0asm" {
        return Err("bad magic".into());
    }
    if r.take(4)? != [1, 0, 0, 0] {
        return Err("unsupported binary version (expected 1)".into());
    }
    let mut found = Parts::default();
    while r.pos < bytes.len() {
        let id = r.byte()?;
        let len = r.u32()? as usize;
        let mut s = Reader {
            bytes: r.take(len)?,
            pos: 0,
        };
        match id {
            SECTION_CUSTOM => {
                let name_len = s.u32()? as usize;
                let name = s.take(name_len)?;
                if found.custom.is_none() && name == custom.as_bytes() {
                    found.custom = Some(&s.bytes[s.pos..]);
                }
            }
            SECTION_DATA => {
                for _ in 0..s.u32()? {
                    let active = match s.u32()? {
                        0 => true,
                        1 => false,
                        2 => {
                            s.u32()?; // memory index
                            true
                        }
                        flags => return Err(format!("unknown data segment kind {flags}")),
                    };
                    if active {
                        s.skip_const_expr()?;
                    }
                    let n = s.u32()? as usize;
                    let seg = s.take(n)?;
                    if active && found.data.is_none() && seg.starts_with(data_prefix) {
                        found.data = Some(seg);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("unexpected end at byte {}", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned LEB128 `u32`.
    fn u32(&mut self) -> Result<u32, String> {
        let mut v: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(v).map_err(|_| "integer too large".into());
            }
        }
        Err("integer representation too long".into())
    }

    /// A signed LEB128 value of at most 64 bits (skipped, not decoded).
    fn skip_sleb(&mut self) -> Result<(), String> {
        for _ in 0..10 {
            if self.byte()? & 0x80 == 0 {
                return Ok(());
            }
        }
        Err("integer representation too long".into())
    }

    /// The offset expression of an active segment: `i32.const n end` or
    /// `i64.const n end` (memory64), or `global.get i end`.
    fn skip_const_expr(&mut self) -> Result<(), String> {
        match self.byte()? {
            0x41 | 0x42 => self.skip_sleb()?,
            0x23 => {
                self.u32()?;
            }
            op => return Err(format!("unsupported offset expression opcode {op:#04x}")),
        }
        match self.byte()? {
            0x0b => Ok(()),
            _ => Err("offset expression does not end".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(sections: &[(u8, &[u8])]) -> std::vec::Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        for (id, body) in sections {
            m.push(*id);
            m.push(body.len() as u8);
            m.extend_from_slice(body);
        }
        m
    }

    #[test]
    fn finds_custom_section_and_segment() {
        let custom = [&[4u8][..], b"meta", b"{}"].concat();
        // Two segments: a passive one with the prefix (ignored), an active one.
        let data = [
            &[2u8, 1, 3, b'K', b'L', b'x'][..],
            &[0, 0x41, 16, 0x0b, 4, b'K', b'L', b'N', b'B'],
        ]
        .concat();
        let m = module(&[(0, &custom), (11, &data)]);
        let p = parts(&m, "meta", b"KL").unwrap();
        assert_eq!(p.custom, Some(&b"{}"[..]));
        assert_eq!(p.data, Some(&b"KLNB"[..]));
    }

    #[test]
    fn every_truncation_is_an_error_or_a_prefix() {
        let custom = [&[4u8][..], b"meta", b"{}"].concat();
        let data = [1u8, 0, 0x41, 16, 0x0b, 2, b'K', b'L'];
        let m = module(&[(0, &custom), (11, &data)]);
        for n in 0..m.len() {
            // Cutting at a section boundary leaves a valid shorter module.
            let _ = parts(&m[..n], "meta", b"KL");
        }
        assert!(parts(&m[..m.len() - 1], "meta", b"KL").is_err());
        assert!(parts(b"\0asm\x02\0\0\0", "meta", b"KL").is_err());
        assert!(parts(&[0, 0x61, 0x73], "meta", b"KL").is_err());
    }
}
