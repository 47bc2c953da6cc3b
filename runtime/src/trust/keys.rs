//! Key files.
//!
//! Signing keys are Ed25519 pairs in wasmsign2's raw format, so its CLI
//! reads kiln's keys and kiln reads its keys: the secret key `NAME.key` is
//! `0x81` followed by the 64-byte Ed25519 secret key (seed and public key),
//! the public key `NAME.pub` is `0x01` followed by the 32-byte public key.
//! PEM and DER Ed25519 keys are read too. A trusted-keys directory holds
//! public keys as `*.pub` files; any of them may have signed a module.
//!
//! A sealing key is 32 random bytes, written as 64 hex digits; a file of
//! exactly 32 raw bytes is read too.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::TrustError;

/// The extension of a secret signing key, and of a public one.
pub const SECRET_EXT: &str = "key";
pub const PUBLIC_EXT: &str = "pub";
/// Largest key file read (a PEM key is a few hundred bytes).
const MAX_KEY_FILE: u64 = 16 << 10;

/// Reads a key file of at most [`MAX_KEY_FILE`] bytes.
fn read_key_file(path: &Path) -> Result<Vec<u8>, TrustError> {
    let io = |source| TrustError::Io {
        path: path.into(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(bad_key(
            path,
            format!("over {MAX_KEY_FILE} bytes: not a key"),
        ));
    }
    Ok(bytes)
}

fn bad_key(path: &Path, reason: impl Into<String>) -> TrustError {
    TrustError::Key {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Writes a new signing key pair: `stem.key` (secret, mode 0600) and
/// `stem.pub`. An existing secret key is kept unless `overwrite`.
pub fn generate(stem: &Path, overwrite: bool) -> Result<(PathBuf, PathBuf), TrustError> {
    // Appended, not replaced: `signer.v2` gives `signer.v2.key`.
    let with = |ext: &str| {
        let mut p = stem.as_os_str().to_owned();
        p.push(".");
        p.push(ext);
        PathBuf::from(p)
    };
    let (secret, public) = (with(SECRET_EXT), with(PUBLIC_EXT));
    refuse_overwrite(&secret, overwrite)?;
    let pair = wasmsign2::KeyPair::generate();
    let write = |path: &Path, bytes: &[u8], secret: bool| {
        let w = if secret {
            crate::fsutil::write_secret
        } else {
            crate::fsutil::write_atomic
        };
        w(path, bytes).map_err(|source| TrustError::Io {
            path: path.into(),
            source,
        })
    };
    write(&secret, &pair.sk.to_bytes(), true)?;
    write(&public, &pair.pk.to_bytes(), false)?;
    Ok((secret, public))
}

fn refuse_overwrite(path: &Path, overwrite: bool) -> Result<(), TrustError> {
    if !overwrite && path.exists() {
        return Err(bad_key(
            path,
            "exists; a secret key is not overwritten (pass --force to replace it)",
        ));
    }
    Ok(())
}

/// Reads a secret signing key (wasmsign2's raw format, PEM or DER).
pub fn read_secret(path: &Path) -> Result<wasmsign2::SecretKey, TrustError> {
    let bytes = read_key_file(path)?;
    wasmsign2::SecretKey::from_any(&bytes).map_err(|_| {
        bad_key(
            path,
            "not an Ed25519 secret key (kiln keygen's NAME.key, or PEM/DER); a public key (.pub) cannot sign",
        )
    })
}

/// Reads a public signing key (wasmsign2's raw format, PEM or DER).
pub fn read_public(path: &Path) -> Result<wasmsign2::PublicKey, TrustError> {
    let bytes = read_key_file(path)?;
    wasmsign2::PublicKey::from_any(&bytes).map_err(|_| {
        bad_key(
            path,
            "not an Ed25519 public key (kiln keygen's NAME.pub, or PEM/DER)",
        )
    })
}

/// The public keys a host accepts signatures of.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    set: wasmsign2::PublicKeySet,
    /// Where they came from, for the log.
    sources: Vec<PathBuf>,
}

impl TrustedKeys {
    /// Every `*.pub` file of `dir` (sorted by name; other entries ignored).
    pub fn from_dir(dir: &Path) -> Result<TrustedKeys, TrustError> {
        let io = |source| TrustError::Io {
            path: dir.into(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            // Files only: a directory named `*.pub` is not followed.
            if path.extension().is_some_and(|e| e == PUBLIC_EXT) && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        if paths.is_empty() {
            return Err(TrustError::NoTrustedKeys(dir.into()));
        }
        Self::from_files(paths)
    }

    /// The public key files `paths` (a file or a directory each: `kiln
    /// predict --key`).
    pub fn from_files(paths: Vec<PathBuf>) -> Result<TrustedKeys, TrustError> {
        let mut keys = TrustedKeys::from_keys(Vec::new());
        for path in paths {
            if path.is_dir() {
                let more = TrustedKeys::from_dir(&path)?;
                keys.set.pks.extend(more.set.pks);
                keys.sources.extend(more.sources);
                continue;
            }
            keys.set.pks.insert(read_public(&path)?);
            keys.sources.push(path);
        }
        Ok(keys)
    }

    /// Keys given in memory (tests, callers with their own storage).
    pub fn from_keys(keys: Vec<wasmsign2::PublicKey>) -> TrustedKeys {
        TrustedKeys {
            set: wasmsign2::PublicKeySet::new(keys.into_iter().collect()),
            sources: Vec::new(),
        }
    }

    pub(super) fn set(&self) -> &wasmsign2::PublicKeySet {
        &self.set
    }

    /// The files the keys were read from.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }
}

/// A 256-bit key that seals and unseals files ([`super::seal`]).
#[derive(Clone)]
pub struct SealKey(pub(super) [u8; 32]);

impl std::fmt::Debug for SealKey {
    // Keys are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    /// Reads a sealing key: 64 hex digits (surrounding white space
    /// ignored), or exactly 32 raw bytes.
    pub fn read(path: &Path) -> Result<SealKey, TrustError> {
        let bytes = read_key_file(path)?;
        if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(SealKey(raw));
        }
        let text = std::str::from_utf8(&bytes).unwrap_or("").trim();
        let digit = |c: u8| char::from(c).to_digit(16);
        let mut key = [0u8; 32];
        let ok = text.len() == 64
            && text.as_bytes().chunks(2).zip(&mut key).all(|(pair, out)| {
                match (digit(pair[0]), digit(pair[1])) {
                    (Some(h), Some(l)) => {
                        *out = (h * 16 + l) as u8;
                        true
                    }
                    _ => false,
                }
            });
        if !ok {
            return Err(bad_key(
                path,
                "not a sealing key: expected 64 hex digits (kiln keygen --seal) or 32 raw bytes",
            ));
        }
        Ok(SealKey(key))
    }

    /// Writes a new random sealing key to `path` (hex, mode 0600); an
    /// existing file is kept unless `overwrite`.
    pub fn generate(path: &Path, overwrite: bool) -> Result<(), TrustError> {
        refuse_overwrite(path, overwrite)?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| TrustError::Io {
            path: path.into(),
            source: std::io::Error::other(e),
        })?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        crate::fsutil::write_secret(path, format!("{hex}\n").as_bytes()).map_err(|source| {
            TrustError::Io {
                path: path.into(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_the_secret_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = generate(&dir.path().join("signer"), false).unwrap();
        read_secret(&secret).unwrap();
        read_public(&public).unwrap();
        assert!(read_secret(&public).is_err(), "a public key cannot sign");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let e = generate(&dir.path().join("signer"), false).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        let keys = TrustedKeys::from_dir(dir.path()).unwrap();
        assert_eq!(keys.sources(), [public]);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            TrustedKeys::from_dir(empty.path()),
            Err(TrustError::NoTrustedKeys(_))
        ));

        let k = dir.path().join("seal.key");
        SealKey::generate(&k, false).unwrap();
        let key = SealKey::read(&k).unwrap();
        assert_eq!(format!("{key:?}"), "SealKey(<redacted>)");
        std::fs::write(&k, "zz".repeat(32)).unwrap();
        assert!(SealKey::read(&k).is_err());
        std::fs::write(&k, [7u8; 32]).unwrap();
        assert_eq!(SealKey::read(&k).unwrap().0, [7u8; 32]);
    }
}
