//! `kiln sign`: embed a signature in a model module.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kiln::trust::{self, keys};

/// Sign a model module: put a `signature` custom section first in it.
///
/// The format is the WebAssembly tool-conventions signature that wasmsign2
/// implements (Ed25519 over the SHA-256 of everything after the section),
/// so `wasmsign2 verify` checks kiln's signatures and `kiln verify` checks
/// wasmsign2's. Nothing else in the module changes: it predicts the same
/// bits. Signing again replaces the signature.
///
/// Hosts refuse a signed module whose bytes changed afterwards, or that no
/// key they trust signed: `kiln serve --trusted-keys DIR`, `kiln predict
/// --key`, `kiln verify --key`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln keygen -o signer\n  \
    kiln sign digits.wasm --key signer.key                      # in place\n  \
    kiln sign digits.wasm --key signer.key -o digits.signed.wasm\n  \
    kiln verify digits.signed.wasm --key signer.pub")]
pub(super) struct Args {
    /// The module (.wasm) to sign.
    module: PathBuf,
    /// The secret key (NAME.key from `kiln keygen`, or an Ed25519 key in
    /// PEM or DER).
    #[arg(long, value_name = "SECRET")]
    key: PathBuf,
    /// Where to write the signed module (default: replace MODULE).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let key = keys::read_secret(&a.key)?;
    let wasm =
        std::fs::read(&a.module).with_context(|| format!("reading {}", a.module.display()))?;
    let signed = sign_module(&wasm, &key, &a.module)?;
    let out = a.output.as_ref().unwrap_or(&a.module);
    kiln::fsutil::write_atomic(out, &signed)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}",
        serde_json::json!({ "module": out, "bytes": signed.len(), "signed": true })
    );
    Ok(())
}

/// `wasm` (read from `path`, named in errors) signed with `key`.
pub(super) fn sign_module(
    wasm: &[u8],
    key: &wasmsign2::SecretKey,
    path: &Path,
) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        wasm.starts_with(b"\0asm"),
        "{} is not a WebAssembly module; only modules carry signatures",
        path.display()
    );
    trust::sign(wasm, key).with_context(|| format!("signing {}", path.display()))
}
