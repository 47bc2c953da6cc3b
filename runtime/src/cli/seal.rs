//! `kiln seal` and `kiln unseal`: encrypt a model file or module at rest,
//! and decrypt it.

use std::path::PathBuf;

use anyhow::Context;
use kiln::trust::{SealKey, seal};

/// Seal a model module or model file: encrypt it with XChaCha20-Poly1305
/// under a key kept elsewhere.
///
/// The sealed file is a small header (`KILNSEAL`, a format version, a
/// random 24-byte nonce) and the authenticated ciphertext. Put sealed files
/// in the repository under their usual names (`NAME/1/model.wasm`) and run
/// `kiln serve REPO --unseal-key-file K`: the server decrypts them in
/// memory only. Sealing protects the files on storage (a bucket, a shared
/// volume); it does not hide a model from whoever runs it, and it is not a
/// signature (sign before sealing: `kiln build --sign`).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln keygen --seal -o repo.sealkey\n  \
    kiln seal digits.wasm --key-file repo.sealkey -o models/digits/1/model.wasm\n  \
    kiln serve models/ --unseal-key-file repo.sealkey\n  \
    kiln unseal models/digits/1/model.wasm --key-file repo.sealkey -o digits.wasm")]
pub(super) struct SealArgs {
    /// The file to seal (a module, a model file, any file).
    input: PathBuf,
    /// The sealing key (`kiln keygen --seal`: 64 hex digits; or 32 raw bytes).
    #[arg(long, value_name = "K")]
    key_file: PathBuf,
    /// The sealed file to write.
    #[arg(short, long)]
    output: PathBuf,
}

/// Unseal a file sealed by `kiln seal`: check it was not changed and that
/// the key is the one it was sealed with, then write the plaintext.
///
/// A wrong key or a changed byte is refused, and nothing is written.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    kiln unseal models/digits/1/model.wasm --key-file repo.sealkey -o digits.wasm")]
pub(super) struct UnsealArgs {
    /// The sealed file.
    input: PathBuf,
    /// The key it was sealed with.
    #[arg(long, value_name = "K")]
    key_file: PathBuf,
    /// Where to write the plaintext.
    #[arg(short, long)]
    output: PathBuf,
}

pub(super) fn execute_seal(a: SealArgs) -> anyhow::Result<()> {
    let key = SealKey::read(&a.key_file)?;
    let plain = read(&a.input)?;
    anyhow::ensure!(
        !seal::is_sealed(&plain),
        "{} is sealed already",
        a.input.display()
    );
    let sealed = seal::seal(&plain, &key)?;
    write(&a.output, &sealed)?;
    println!(
        "{}",
        serde_json::json!({ "sealed": a.output, "bytes": sealed.len() })
    );
    Ok(())
}

pub(super) fn execute_unseal(a: UnsealArgs) -> anyhow::Result<()> {
    let key = SealKey::read(&a.key_file)?;
    let sealed = read(&a.input)?;
    let plain =
        seal::unseal(&sealed, &key).with_context(|| format!("unsealing {}", a.input.display()))?;
    write(&a.output, &plain)?;
    println!(
        "{}",
        serde_json::json!({ "unsealed": a.output, "bytes": plain.len() })
    );
    Ok(())
}

fn read(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    kiln::fsutil::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}
