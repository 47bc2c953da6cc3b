//! `kiln verify`: check a module's signature.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kiln::trust::{self, TrustedKeys};

/// Check that a model module was signed by a trusted key and has not
/// changed since.
///
/// Exits 0 and prints `{"module": …, "verified": true}` if one of the keys
/// signed exactly these bytes; otherwise prints why on one `error:` line
/// and exits 1: unsigned, changed after signing (tampered), or signed by
/// no key given. Signatures by wasmsign2 (`wasmsign2 sign`) verify too.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln verify digits.wasm --key signer.pub\n  \
    kiln verify digits.wasm --key trusted/      # any *.pub in the directory\n  \
    wasmsign2 sign -i m.wasm -o m.signed.wasm -k signer.key && kiln verify m.signed.wasm --key signer.pub")]
pub(super) struct Args {
    /// The module (.wasm) to check.
    module: PathBuf,
    /// A public key (NAME.pub from `kiln keygen`, or PEM/DER), or a
    /// directory of `*.pub` keys; repeat for several. Any of them may have
    /// signed the module.
    #[arg(long, value_name = "PUBLIC", required = true)]
    key: Vec<PathBuf>,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let keys = TrustedKeys::from_files(a.key)?;
    let wasm =
        std::fs::read(&a.module).with_context(|| format!("reading {}", a.module.display()))?;
    verified(&wasm, &keys, &a.module)?;
    println!(
        "{}",
        serde_json::json!({ "module": a.module, "verified": true })
    );
    Ok(())
}

/// Checks the signature of `wasm`, read from `path` (named in the error).
pub(super) fn verified(wasm: &[u8], keys: &TrustedKeys, path: &Path) -> anyhow::Result<()> {
    trust::verify(wasm, keys).with_context(|| format!("refusing {}", path.display()))
}
