//! `kiln build`: compile a model file into a self-contained model module.

use std::path::PathBuf;

use anyhow::Context;
use kiln::model::ModelFile;
use kiln::module;

/// Compile a model file into ONE self-contained `.wasm` model module.
///
/// The module is kiln's prebuilt prediction kernel (embedded in this binary,
/// so no Rust toolchain is needed) with the model in a data segment and its
/// metadata in a `kiln.meta` custom section. It imports nothing and runs
/// unchanged in wasmtime (`kiln predict`, `kiln serve`), Node and browsers.
/// The ABI is documented in docs/abi.md.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  kiln build digits.safetensors -o digits.wasm")]
pub(super) struct Args {
    /// The model file (.safetensors) written by `kiln train`.
    model: PathBuf,
    /// Output module (.wasm).
    #[arg(short, long)]
    output: PathBuf,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let model = ModelFile::from_bytes(&bytes, &a.model)?;
    let wasm = module::build(&model, &module::sha256_hex(&bytes))?;
    kiln::fsutil::write_atomic(&a.output, &wasm)
        .with_context(|| format!("writing {}", a.output.display()))?;
    println!(
        "{}",
        serde_json::json!({ "module": a.output, "bytes": wasm.len() })
    );
    Ok(())
}
