//! `kiln keygen`: make a signing key pair, or a sealing key.

use std::path::PathBuf;

use kiln::trust::{SealKey, keys};

/// Make an Ed25519 key pair for signing modules, or (`--seal`) a key for
/// sealing model files at rest.
///
/// A signing pair is two files: NAME.key, the secret key (mode 0600: keep it
/// on the machine that builds), and NAME.pub, the public key that hosts
/// trust (`kiln serve --trusted-keys DIR`, `kiln verify --key`, `kiln predict
/// --key`). Both are in wasmsign2's format, so `wasmsign2 sign -k NAME.key`
/// and `wasmsign2 verify -K NAME.pub` use them as they are.
///
/// With `--seal`, NAME itself receives 32 random bytes as 64 hex digits (mode
/// 0600), for `kiln seal`, `kiln unseal` and `kiln serve --unseal-key-file`.
/// Keep it out of the model repository.
///
/// An existing secret key is never overwritten without `--force`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln keygen -o signer              # signer.key (secret), signer.pub (public)\n  \
    kiln build digits.safetensors --sign signer.key -o digits.wasm\n  \
    kiln verify digits.wasm --key signer.pub\n  \
    kiln keygen --seal -o repo.sealkey # a sealing key, for kiln seal")]
pub(super) struct Args {
    /// NAME: the pair is written to NAME.key and NAME.pub (with `--seal`:
    /// the key is written to NAME).
    #[arg(short, long, value_name = "NAME")]
    output: PathBuf,
    /// Write a sealing key (XChaCha20-Poly1305, 256 bits) instead of a
    /// signing pair.
    #[arg(long)]
    seal: bool,
    /// Replace an existing secret key.
    #[arg(long)]
    force: bool,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    if a.seal {
        SealKey::generate(&a.output, a.force)?;
        println!("{}", serde_json::json!({ "seal_key": a.output }));
    } else {
        let (secret, public) = keys::generate(&a.output, a.force)?;
        println!(
            "{}",
            serde_json::json!({ "secret_key": secret, "public_key": public })
        );
    }
    Ok(())
}
