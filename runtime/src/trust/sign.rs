//! Module signatures in the WebAssembly tool-conventions format, as
//! `wasmsign2` writes them (https://github.com/wasm-signatures/design,
//! "WebAssembly module signatures"; the `wasmsign2` crate is the reference
//! implementation and does the signing and the final check here).
//!
//! A signed module is the module with one custom section `signature` put
//! first, right after the 8-byte header. It holds:
//!
//! ```text
//! spec_version:u7 (1)  content_type:u7 (1, a module)  hash_fn:u7 (1, SHA-256)
//! count:u32   count × len:u32 SignedHashes
//!   SignedHashes: n:u32  n × [32-byte hash]  m:u32  m × len:u32 Signature
//!   Signature:    key_id (len:u32 bytes, may be empty)  alg:u8 (1, Ed25519)  len:u32 bytes
//! ```
//!
//! (integers unsigned LEB128). Each hash is the SHA-256 of every byte after
//! the `signature` section, and each signature is Ed25519 over `"wasmsig"
//! ‖ 01 01 01 ‖ hash`. Only a custom section is added: the code, data and
//! `kiln.meta` sections are untouched, so the module predicts the same bits.
//!
//! Before the `wasmsign2` crate reads a section, [`verify`] walks it here
//! with every length checked against the bytes left (the crate allocates a
//! length before reading it), and compares the contents' hash with the
//! signed ones: that tells "changed after signing" from "signed by a key
//! not trusted".

use std::ops::Range;

use sha2::{Digest, Sha256};
use wasmparser::{Parser, Payload};

use super::{TrustError, TrustedKeys};

/// The name of the signature section.
pub const SECTION: &str = "signature";
/// Bounds the format itself sets (wasmsign2's `MAX_HASHES`, `MAX_SIGNATURES`).
const MAX_HASHES: u32 = 64;
const MAX_SIGNATURES: u32 = 256;

/// `wasm` signed with `key`: its `signature` section (an old one replaced)
/// first, every other section as it was.
pub fn sign(wasm: &[u8], key: &wasmsign2::SecretKey) -> Result<Vec<u8>, TrustError> {
    // wasmparser checks every section's framing first: the crate below
    // allocates each section's declared length before reading it.
    for payload in Parser::new(0).parse_all(wasm) {
        payload?;
    }
    let module = wasmsign2::Module::deserialize(&mut &wasm[..]).map_err(TrustError::Sign)?;
    let signed = key.sign(module, None).map_err(TrustError::Sign)?;
    let mut out = Vec::with_capacity(wasm.len() + 128);
    signed.serialize(&mut out).map_err(TrustError::Sign)?;
    Ok(out)
}

/// Where a module's leading `signature` section lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureSection {
    /// The whole section, from its id byte to its end.
    pub section: Range<usize>,
    /// Its contents (after the name).
    pub data: Range<usize>,
}

/// `wasm`'s leading `signature` section; `None` if the first section is not
/// one.
pub fn signature_range(
    wasm: &[u8],
) -> Result<Option<SignatureSection>, wasmparser::BinaryReaderError> {
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::Version { .. } => continue,
            Payload::CustomSection(c) if c.name() == SECTION => {
                // Offsets into `wasm`, so they fit a usize.
                let at = |o: u64| usize::try_from(o).unwrap_or(usize::MAX).min(wasm.len());
                let (data, end) = (at(c.data_offset()), at(c.range().end));
                // The section starts at the header's end (8 bytes).
                return Ok(Some(SignatureSection {
                    section: 8..end,
                    data: data..end,
                }));
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Checks that `wasm` carries a signature of one of `keys` over exactly its
/// contents.
pub fn verify(wasm: &[u8], keys: &TrustedKeys) -> Result<(), TrustError> {
    let SignatureSection { section, data } = signature_range(wasm)?.ok_or(TrustError::Unsigned)?;
    let signed = signed_hashes(&wasm[data]).map_err(TrustError::BadSignature)?;
    let actual: [u8; 32] = Sha256::digest(&wasm[section.end..]).into();
    if !signed.contains(&actual) {
        return Err(TrustError::Tampered {
            actual: crate::module::sha256_hex(&wasm[section.end..]),
        });
    }
    match keys.set().verify(&mut &wasm[..], None) {
        Ok(_) => Ok(()),
        Err(wasmsign2::WSError::VerificationFailed) => Err(TrustError::Untrusted),
        Err(e) => Err(TrustError::BadSignature(e.to_string())),
    }
}

/// `wasm` without its leading `signature` section, if it has one.
pub fn unsigned(wasm: &[u8]) -> Result<Option<Vec<u8>>, wasmparser::BinaryReaderError> {
    Ok(signature_range(wasm)?.map(|s| [&wasm[..s.section.start], &wasm[s.section.end..]].concat()))
}

/// Reads the signature section's payload with every length bounded by the
/// bytes left; returns the hashes it signs.
fn signed_hashes(data: &[u8]) -> Result<Vec<[u8; 32]>, String> {
    let mut r = Reader(data);
    for (what, want) in [
        ("specification version", 1),
        ("content type", 1),
        ("hash function", 1),
    ] {
        let got = r.u32(what)?;
        if got != want {
            return Err(format!("{what} {got}; only {want} is defined"));
        }
    }
    let mut hashes = Vec::new();
    let sets = r.count("signed hash sets", MAX_HASHES)?;
    for _ in 0..sets {
        let mut set = Reader(r.slice("signed hash set")?);
        for _ in 0..set.count("hashes", MAX_HASHES)? {
            let hash = set.take(32, "hash")?;
            hashes.push(hash.try_into().expect("32 bytes"));
        }
        for _ in 0..set.count("signatures", MAX_SIGNATURES)? {
            let mut sig = Reader(set.slice("signature")?);
            sig.slice("key id")?;
            sig.take(1, "algorithm")?;
            sig.slice("signature bytes")?;
        }
    }
    Ok(hashes)
}

/// A cursor over a byte slice whose reads never pass its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err(format!("{what}: {n} bytes declared, {} left", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// An unsigned LEB128 of at most 32 bits.
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.take(1, what)?[0];
            v |= u32::from(b & 0x7f).checked_shl(7 * i).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("{what}: an integer longer than 5 bytes"))
    }

    fn count(&mut self, what: &str, max: u32) -> Result<u32, String> {
        let n = self.u32(what)?;
        if n > max {
            return Err(format!("{n} {what}, more than the format's {max}"));
        }
        Ok(n)
    }

    fn slice(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.u32(what)?;
        self.take(usize::try_from(n).unwrap_or(usize::MAX), what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> Vec<u8> {
        wat::parse_str(
            r#"(module (func (export "f") (result i32) i32.const 7) (@custom "kiln.meta" "{}"))"#,
        )
        .unwrap()
    }

    #[test]
    fn signed_modules_verify_and_changed_ones_do_not() {
        let pair = wasmsign2::KeyPair::generate();
        let trusted = TrustedKeys::from_keys(vec![pair.pk.clone()]);
        let wasm = module();
        assert!(matches!(verify(&wasm, &trusted), Err(TrustError::Unsigned)));
        let signed = sign(&wasm, &pair.sk).unwrap();
        verify(&signed, &trusted).unwrap();
        // Only the section was added, first.
        assert_eq!(unsigned(&signed).unwrap().unwrap(), wasm);
        // Re-signing replaces the signature.
        let again = sign(&signed, &pair.sk).unwrap();
        assert_eq!(again.len(), signed.len());
        verify(&again, &trusted).unwrap();

        let other = TrustedKeys::from_keys(vec![wasmsign2::KeyPair::generate().pk]);
        assert!(matches!(
            verify(&signed, &other),
            Err(TrustError::Untrusted)
        ));
        let mut changed = signed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(matches!(
            verify(&changed, &trusted),
            Err(TrustError::Tampered { .. })
        ));
    }

    /// Every single-byte change inside the signature section, and every
    /// truncation of the module, is refused, and nothing panics.
    #[test]
    fn any_change_to_a_signed_module_is_refused() {
        let pair = wasmsign2::KeyPair::generate();
        let trusted = TrustedKeys::from_keys(vec![pair.pk.clone()]);
        let signed = sign(&module(), &pair.sk).unwrap();
        let at = signature_range(&signed).unwrap().unwrap().section;
        for i in at.clone() {
            for bit in [0x01, 0x80] {
                let mut bad = signed.clone();
                bad[i] ^= bit;
                assert!(verify(&bad, &trusted).is_err(), "byte {i} ^ {bit:#x}");
            }
        }
        for len in 0..signed.len() {
            assert!(
                verify(&signed[..len], &trusted).is_err(),
                "truncated to {len}"
            );
        }
    }

    /// Lengths that point past the section are refused before the crate
    /// would allocate them.
    #[test]
    fn a_hostile_signature_section_is_refused() {
        let trusted = TrustedKeys::from_keys(vec![wasmsign2::KeyPair::generate().pk]);
        let with = |payload: &[u8]| {
            let mut m = wasm_encoder::Module::new();
            m.section(&wasm_encoder::CustomSection {
                name: SECTION.into(),
                data: payload.into(),
            });
            m.finish()
        };
        for payload in [
            &[][..],
            &[1, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f],
            &[1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f],
            &[1, 1, 1, 1, 5, 1, 0, 0, 0, 0],
            &[2, 1, 1, 0],
            &[1, 1, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ] {
            let e = verify(&with(payload), &trusted).unwrap_err();
            assert!(matches!(e, TrustError::BadSignature(_)), "{payload:?}: {e}");
        }
    }
}
