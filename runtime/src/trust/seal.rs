//! Sealed files: a model file or module encrypted at rest with
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`).
//!
//! ```text
//! magic "KILNSEAL" (8)  version (1) = 1  nonce (24, random)  ciphertext ‖ tag (16)
//! ```
//!
//! The 33 header bytes are the associated data, so a changed version or
//! nonce fails authentication like a changed ciphertext. A 24-byte random
//! nonce never repeats in practice under one key. Unsealing checks the tag
//! before it returns any byte: a wrong key or one flipped bit gives
//! [`TrustError::Unseal`] and no plaintext at all.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::{SealKey, TrustError};

/// The first bytes of every sealed file.
pub const MAGIC: &[u8; 8] = b"KILNSEAL";
/// The format version written (and the only one read).
pub const VERSION: u8 = 1;
const NONCE: usize = 24;
const HEADER: usize = MAGIC.len() + 1 + NONCE;
const TAG: usize = 16;

/// Whether `bytes` is a sealed file (of any version).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// `plain` sealed under `key` with a fresh random nonce.
pub fn seal(plain: &[u8], key: &SealKey) -> Result<Vec<u8>, TrustError> {
    let mut nonce = [0u8; NONCE];
    getrandom::fill(&mut nonce).map_err(|e| TrustError::Io {
        path: "(the system's random source)".into(),
        source: std::io::Error::other(e),
    })?;
    let mut out = Vec::with_capacity(HEADER + plain.len() + TAG);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    let sealed = cipher(key)
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plain,
                aad: &out,
            },
        )
        // Only a message over 256 GiB is refused.
        .map_err(|_| TrustError::SealTooLarge(plain.len()))?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The plaintext of a sealed file, all of it or nothing.
pub fn unseal(sealed: &[u8], key: &SealKey) -> Result<Vec<u8>, TrustError> {
    if !is_sealed(sealed) {
        return Err(TrustError::NotSealed);
    }
    if sealed.len() < HEADER + TAG {
        return Err(TrustError::SealTruncated(sealed.len()));
    }
    let (header, body) = sealed.split_at(HEADER);
    if header[MAGIC.len()] != VERSION {
        return Err(TrustError::SealVersion(header[MAGIC.len()]));
    }
    let nonce: [u8; NONCE] = header[MAGIC.len() + 1..]
        .try_into()
        .expect("the header holds a whole nonce");
    cipher(key)
        .decrypt(
            &XNonce::from(nonce),
            Payload {
                msg: body,
                aad: header,
            },
        )
        .map_err(|_| TrustError::Unseal)
}

fn cipher(key: &SealKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&key.0.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_come_back_only_with_the_key_and_unchanged() {
        let key = SealKey([1; 32]);
        let plain = b"\0asm model bytes".to_vec();
        let sealed = seal(&plain, &key).unwrap();
        assert!(is_sealed(&sealed) && !is_sealed(&plain));
        assert_eq!(sealed.len(), HEADER + plain.len() + TAG);
        assert_eq!(unseal(&sealed, &key).unwrap(), plain);
        // Two seals differ (fresh nonces).
        assert_ne!(seal(&plain, &key).unwrap(), sealed);
        assert!(matches!(
            unseal(&sealed, &SealKey([2; 32])),
            Err(TrustError::Unseal)
        ));
        // Every byte is covered: the version, the nonce, the ciphertext, the tag.
        for i in MAGIC.len() + 1..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(unseal(&bad, &key), Err(TrustError::Unseal)),
                "byte {i}"
            );
        }
        let mut v2 = sealed.clone();
        v2[MAGIC.len()] = 2;
        assert!(matches!(unseal(&v2, &key), Err(TrustError::SealVersion(2))));
        assert!(matches!(
            unseal(&sealed[..HEADER + 3], &key),
            Err(TrustError::SealTruncated(_))
        ));
        assert!(matches!(unseal(&plain, &key), Err(TrustError::NotSealed)));
    }
}
