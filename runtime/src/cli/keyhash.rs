//! `kiln keyhash`: the digest kiln.toml may hold instead of an API key.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Print the SHA-256 of an API key, for `key_sha256` in kiln.toml.
///
/// kiln.toml may then hold the digest instead of the key, so whoever reads
/// the file (a backup, a config repository, a ConfigMap) learns nothing a
/// caller could present. The server compares digests in constant time.
///
/// The key is read from FILE, or from stdin without FILE (never from the
/// command line, where it would land in the shell's history and the
/// process list). Whitespace around it (the newline of `echo`) is dropped,
/// as the server drops it from the key a request presents. Keys shorter
/// than 16 characters are refused, as in kiln.toml.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    head -c 32 /dev/urandom | base64 > client.apikey   # a new key\n  \
    kiln keyhash client.apikey\n  \
    kiln keyhash < client.apikey\n\n\
    Then in kiln.toml:\n  \
    [[keys]]\n  \
    key_sha256 = \"<the 64 hex digits printed>\"\n  \
    models = [\"digits\"]\n\n\
    The server reads kiln.toml again on SIGHUP (and when it changes), so \
    keys rotate without a restart.")]
pub(super) struct Args {
    /// File holding the key (default: stdin).
    file: Option<PathBuf>,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    // A key is short: anything past 64 KiB is not one.
    const MAX: u64 = 64 << 10;
    let mut raw = Vec::new();
    match &a.file {
        Some(p) => std::fs::File::open(p)
            .and_then(|f| f.take(MAX + 1).read_to_end(&mut raw))
            .with_context(|| format!("reading {}", p.display()))?,
        None => std::io::stdin()
            .take(MAX + 1)
            .read_to_end(&mut raw)
            .context("reading the key from stdin")?,
    };
    let from = a
        .file
        .as_ref()
        .map_or("stdin".to_string(), |p| p.display().to_string());
    anyhow::ensure!(
        raw.len() as u64 <= MAX,
        "{from}: over {MAX} bytes: not a key"
    );
    let text = std::str::from_utf8(&raw).with_context(|| format!("{from}: not UTF-8"))?;
    let key = text.trim();
    anyhow::ensure!(
        !key.contains(['\n', '\r']),
        "{from}: holds several lines; give one key"
    );
    anyhow::ensure!(
        key.len() >= 16,
        "{from}: API keys must be at least 16 characters (this one has {})",
        key.len()
    );
    let hex: String = Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("{hex}");
    Ok(())
}
