//! What a load checks in a model's files before it compiles anything: a
//! sealed file is unsealed in memory (`--unseal-key-file`; then every file
//! must be sealed), the file is held to its digest pins (`sha256` in
//! `[models.NAME]`), and the module must carry a signature of a trusted key
//! over exactly its bytes (`--trusted-keys`). A file failing any check is
//! refused whole: nothing of it is compiled or served.

use crate::trust::{SealKey, TrustError, TrustedKeys, seal};

/// The keys a registry loads with; the default checks nothing.
#[derive(Debug, Clone, Default)]
pub struct LoadTrust {
    /// Modules must be signed by one of these.
    pub keys: Option<TrustedKeys>,
    /// Repository files are sealed under this key.
    pub unseal: Option<SealKey>,
}

impl LoadTrust {
    /// The plaintext of a repository file: unsealed with the unseal key,
    /// which a sealed file needs and a plain one is refused under.
    pub(super) fn open(&self, bytes: Vec<u8>) -> Result<Vec<u8>, TrustError> {
        match (&self.unseal, seal::is_sealed(&bytes)) {
            (Some(key), true) => seal::unseal(&bytes, key),
            (Some(_), false) => Err(TrustError::MustBeSealed),
            (None, true) => Err(TrustError::SealedWithoutKey),
            (None, false) => Ok(bytes),
        }
    }

    /// Checks the module's signature, if keys are configured.
    pub(super) fn verify(&self, wasm: &[u8]) -> Result<(), TrustError> {
        match &self.keys {
            Some(keys) => crate::trust::verify(wasm, keys),
            None => Ok(()),
        }
    }
}
