//! Trust in model files: who made a module and whether it changed since
//! (signatures, digest pins), and who may read a model at rest (sealing).
//!
//! * [`sign`]: Ed25519 signatures in the WebAssembly tool-conventions
//!   format that `wasmsign2` implements — a custom section `signature`
//!   first in the module, over everything after it — so any tool of that
//!   format verifies kiln's modules and kiln verifies theirs. The format is
//!   the `wasmsign2` crate's (used here for keys, signing and the final
//!   check); kiln reads the section itself first, bounded, to say *why* a
//!   module is refused.
//! * [`keys`]: the key files `kiln keygen` writes (wasmsign2's raw format;
//!   PEM and DER read too) and the trusted-keys directory of `kiln serve`.
//! * [`seal`]: files encrypted at rest with XChaCha20-Poly1305 under a
//!   versioned header, decrypted in memory only.
//!
//! Signing protects integrity and origin; sealing protects confidentiality
//! on storage. Neither hides a model from whoever runs it (docs/security.md,
//! "The trust chain").

pub mod keys;
pub mod seal;
pub mod sign;

use std::path::PathBuf;

pub use keys::{SealKey, TrustedKeys};
pub use sign::{sign, signature_range, verify};

/// Why a key, a signature, a digest or a sealed file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("{0}: no public key (*.pub) in the trusted-keys directory")]
    NoTrustedKeys(PathBuf),
    #[error("not a valid WebAssembly module: {0}")]
    Wasm(#[from] wasmparser::BinaryReaderError),
    #[error(
        "unsigned: the module has no `signature` section first (sign it with `kiln sign` or `kiln build --sign`)"
    )]
    Unsigned,
    #[error("the `signature` section is malformed: {0}")]
    BadSignature(String),
    #[error(
        "tampered: the module's contents (sha256 {actual}) are not what was signed; it changed after signing"
    )]
    Tampered { actual: String },
    #[error("signed by no trusted key (the contents match the signature, the key does not)")]
    Untrusted,
    #[error("signing failed: {0}")]
    Sign(wasmsign2::WSError),
    #[error("sha256 {actual} matches no pinned digest ({pinned}; `sha256` in kiln.toml)")]
    DigestMismatch { pinned: String, actual: String },
    #[error("sealed with format version {0}; this kiln reads version {v}", v = seal::VERSION)]
    SealVersion(u8),
    #[error(
        "not a sealed file (no `{}` header)",
        String::from_utf8_lossy(seal::MAGIC)
    )]
    NotSealed,
    #[error("{0} bytes are too many to seal in one file")]
    SealTooLarge(usize),
    #[error("the sealed file is truncated ({0} bytes)")]
    SealTruncated(usize),
    #[error(
        "sealed, and the server has no key to unseal it (kiln serve --unseal-key-file, or unseal_key_file in kiln.toml)"
    )]
    SealedWithoutKey,
    #[error(
        "not sealed, but this server unseals (--unseal-key-file): every model file in the repository must be sealed (kiln seal)"
    )]
    MustBeSealed,
    #[error(
        "cannot unseal: wrong key, or the sealed file was changed (authentication failed; nothing was decrypted)"
    )]
    Unseal,
}

/// Checks `bytes` against pinned hex sha256 digests (`sha256 = "…"` in
/// kiln.toml): it must match one of them (case-insensitive).
pub fn check_pins(bytes: &[u8], pinned: &[String]) -> Result<(), TrustError> {
    let actual = crate::module::sha256_hex(bytes);
    if pinned.iter().any(|p| p.eq_ignore_ascii_case(&actual)) {
        Ok(())
    } else {
        Err(TrustError::DigestMismatch {
            pinned: pinned.join(", "),
            actual,
        })
    }
}
