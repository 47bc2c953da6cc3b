//! `kiln build`: compile a model file into a self-contained model module,
//! or (`--target worker`) into a deployable edge worker around one.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kiln::module;

/// The worker source (`web/worker/worker.js`) and the raw ABI client it
/// imports (`web/abi/abi.js`), embedded so `kiln build --target worker` needs
/// nothing but the kiln binary.
const WORKER_JS: &str = include_str!("../../../web/worker/worker.js");
const ABI_JS: &str = include_str!("../../../web/abi/abi.js");
/// The line of `worker.js` that imports the client; [`worker_js`] puts the
/// client's source in its place.
const ABI_IMPORT: &str = "import { KilnError, KilnModule } from \"../abi/abi.js\";";
/// The signature check (`web/trust/verify.js`), the line importing it, and
/// the line `--public-key` replaces with the key and model.bin's bytes.
const VERIFY_JS: &str = include_str!("../../../web/trust/verify.js");
const VERIFY_IMPORT: &str = "import { verifyModule } from \"../trust/verify.js\";";
const TRUST_LINE: &str = "const TRUST = null;";

/// Compile a model file into ONE self-contained `.wasm` model module.
///
/// MODEL may also be a Keras (.h5, .keras) or ONNX (.onnx) model, imported
/// on the way as `kiln import` would with its defaults.
///
/// The module is kiln's prebuilt prediction kernel (embedded in this binary,
/// so no Rust toolchain is needed) with the model in a data segment and its
/// metadata in a `kiln.meta` custom section. It imports nothing and runs
/// unchanged in wasmtime (`kiln predict`, `kiln serve`), Node and browsers.
/// The ABI is documented in docs/abi.md.
///
/// With `--target worker`, OUTPUT is a directory that receives a module
/// worker for Cloudflare Workers / workerd: `worker.js` (the KServe v2 REST
/// subset of `kiln serve`), `model.wasm` (the module, imported by the
/// worker) and `wrangler.toml`; `cd OUTPUT && npx wrangler deploy` deploys
/// it (see web/worker/README.md).
///
/// With `--relaxed-simd`, the module is the int8 model's relaxed-SIMD twin
/// instead: an *extra* for a loader that feature-detects relaxed SIMD, never
/// a replacement for the portable module.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln build digits.safetensors -o digits.wasm\n  kiln build model.keras -o model.wasm\n  kiln build digits.safetensors --target worker -o digits-worker/\n  kiln build digits.int8.safetensors --relaxed-simd -o digits.relaxed.wasm\n  kiln build digits.safetensors --sign signer.key -o digits.wasm   # keys: kiln keygen\n  kiln build digits.safetensors --sign signer.key --target worker --public-key signer.pub -o digits-worker/"
)]
pub(super) struct Args {
    /// The model file (.safetensors) written by `kiln train` or `kiln import`,
    /// or a Keras (.h5, .keras) or ONNX (.onnx) model to import first.
    model: PathBuf,
    /// Output: the module (.wasm), or the worker's directory for `--target worker`.
    #[arg(short, long)]
    output: PathBuf,
    /// What to build.
    #[arg(long, value_enum, default_value_t = Target::Module)]
    target: Target,
    /// Write the module's relaxed-SIMD twin (int8 models only): the same model
    /// and metadata around the kernel built with relaxed SIMD, which computes
    /// the same bits with a faster int8 dot product. Engines without relaxed
    /// SIMD reject the whole module, so ship it next to the portable module
    /// and pick it only after probing the engine's result
    /// (tests/node/relaxed-probe.mjs; docs/abi.md, "Relaxed SIMD"). `kiln
    /// serve` and `kiln predict` need nothing: they derive the twin from the
    /// portable module.
    #[arg(long, conflicts_with = "target")]
    relaxed_simd: bool,
    /// Sign the module with this secret key (NAME.key from `kiln keygen`) as
    /// it is built, as `kiln sign` would: a `signature` section first, the
    /// rest unchanged (same bits). With `--target worker`, `model.wasm` is
    /// signed.
    #[arg(long, value_name = "SECRET")]
    sign: Option<PathBuf>,
    /// With `--target worker`: the worker verifies the module's signature
    /// with this public key (NAME.pub, or PEM/DER) at cold start and serves
    /// nothing if it fails. The bundle then also holds the module's bytes as
    /// `model.bin` (Workers never show a compiled module's bytes), doubling
    /// its size. The module must be signed by the key (`--sign`).
    #[arg(long, value_name = "PUBLIC")]
    public_key: Option<PathBuf>,
}

/// The kinds of artifact `kiln build` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// One self-contained `.wasm` model module.
    Module,
    /// A directory with a Cloudflare-style module worker serving the model.
    Worker,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    // A bad key is refused before any work.
    let key = a
        .sign
        .as_deref()
        .map(kiln::trust::keys::read_secret)
        .transpose()?;
    let public = match (&a.public_key, a.target) {
        (Some(path), Target::Worker) => Some((kiln::trust::keys::read_public(path)?, path)),
        (Some(_), Target::Module) => {
            bail!(
                "--public-key is for --target worker (a module is verified by its host: kiln verify, kiln serve --trusted-keys, Model.load(url, {{ publicKey }}))"
            )
        }
        (None, _) => None,
    };
    let bytes =
        std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let model = kiln::import::model_file(&bytes, &a.model)?;
    let mut wasm = module::build(&model, &module::sha256_hex(&bytes))?;
    if a.relaxed_simd {
        wasm = module::relaxed_twin(&wasm)?.with_context(|| {
            format!(
                "{} has no int8 dense layer, so it has no relaxed-SIMD twin (relaxed SIMD only \
                 speeds up int8 dense layers); quantize it first (`kiln quantize`) or build \
                 without --relaxed-simd",
                a.model.display()
            )
        })?;
    }
    if let Some(key) = &key {
        wasm = super::sign::sign_module(&wasm, key, &a.output)?;
    }
    match a.target {
        Target::Module => {
            write(&a.output, wasm.as_slice())?;
            println!(
                "{}",
                serde_json::json!({ "module": a.output, "bytes": wasm.len(), "signed": key.is_some() })
            );
        }
        Target::Worker => {
            let key_hex = match &public {
                Some((key, path)) => {
                    // A worker that would refuse its own module is not written.
                    let trusted = kiln::trust::TrustedKeys::from_keys(vec![key.clone()]);
                    kiln::trust::verify(&wasm, &trusted).with_context(|| {
                        format!(
                            "the worker's module does not verify with {} (sign it with that key's secret: --sign)",
                            path.display()
                        )
                    })?;
                    Some(module::hex(&key.to_bytes()))
                }
                None => None,
            };
            let files = worker_files(&model.graph.name, wasm, key_hex.as_deref());
            if a.output.is_file() {
                bail!(
                    "{} is a file; --target worker writes a directory (worker.js, model.wasm, wrangler.toml)",
                    a.output.display()
                );
            }
            std::fs::create_dir_all(&a.output)
                .with_context(|| format!("creating {}", a.output.display()))?;
            let mut total = 0;
            for (name, contents) in &files {
                write(&a.output.join(name), contents)?;
                total += contents.len();
            }
            let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
            println!(
                "{}",
                serde_json::json!({ "worker": a.output, "files": names, "bytes": total })
            );
        }
    }
    Ok(())
}

/// The files of a worker directory for the model `name`; with `key_hex` (a
/// public key), the worker verifies the module, whose bytes it also gets as
/// `model.bin`.
fn worker_files(name: &str, wasm: Vec<u8>, key_hex: Option<&str>) -> Vec<(&'static str, Vec<u8>)> {
    let wrangler = format!(
        "# Deploy with `npx wrangler deploy` from this directory (see kiln's web/worker/README.md).\n\
         # Wrangler's default rules import `*.wasm` as a compiled WebAssembly.Module\n\
         # (and `*.bin`, with --public-key the module's bytes, as an ArrayBuffer).\n\
         name = \"{}\"\n\
         main = \"worker.js\"\n\
         compatibility_date = \"2025-01-01\"\n",
        worker_name(name)
    );
    let mut files = vec![("worker.js", worker_js(key_hex).into_bytes())];
    if key_hex.is_some() {
        files.push(("model.bin", wasm.clone()));
    }
    files.push(("model.wasm", wasm));
    files.push(("wrangler.toml", wrangler.into_bytes()));
    files
}

/// `source` without `export ` before its declarations, to inline it.
fn unexported(source: &str) -> String {
    let inlined: String = source
        .lines()
        .flat_map(|line| [line.strip_prefix("export ").unwrap_or(line), "\n"])
        .collect();
    inlined.trim_end().to_string()
}

/// The `worker.js` written: the source with the ABI client inlined in place
/// of its import, `export` dropped from the client's declarations, so the
/// one file runs as it is in workerd (whose config names every module) as
/// in Wrangler. With `key_hex`, the signature check is inlined the same way
/// and the key and `model.bin` are put in TRUST; without, its import goes.
fn worker_js(key_hex: Option<&str>) -> String {
    let js = WORKER_JS.replacen(ABI_IMPORT, &unexported(ABI_JS), 1);
    match key_hex {
        Some(key) => js.replacen(VERIFY_IMPORT, &unexported(VERIFY_JS), 1).replacen(
            TRUST_LINE,
            &format!(
                "import modelBytes from \"./model.bin\";\nconst TRUST = {{ publicKey: \"{key}\", bytes: modelBytes }};"
            ),
            1,
        ),
        None => js.replacen(&format!("{VERIFY_IMPORT}\n"), "", 1),
    }
}

/// A Workers script name for model `name`: `kiln-` + lowercase letters,
/// digits and dashes (at most 63 characters, as Cloudflare requires).
fn worker_name(name: &str) -> String {
    let mut out = String::from("kiln");
    for c in name.chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if c == '-' && (out.len() == 4 || out.ends_with('-')) {
            continue;
        }
        if out.len() == 4 {
            out.push('-');
        }
        out.push(c);
    }
    out.truncate(63);
    out.trim_end_matches('-').to_string()
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    kiln::fsutil::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::{ABI_IMPORT, TRUST_LINE, VERIFY_IMPORT, WORKER_JS, worker_js, worker_name};

    #[test]
    fn the_written_worker_inlines_the_abi_client() {
        for line in [ABI_IMPORT, VERIFY_IMPORT, TRUST_LINE] {
            assert_eq!(
                WORKER_JS.matches(line).count(),
                1,
                "worker.js has {line} once"
            );
        }
        for key in [None, Some("01ab")] {
            let js = worker_js(key);
            assert!(!js.contains("abi.js\""), "no import of the client is left");
            assert!(
                !js.contains("verify.js\""),
                "no import of the check is left"
            );
            assert!(js.contains("\nclass KilnModule {"), "the client is inlined");
            assert_eq!(js.contains("\nasync function verifyModule("), key.is_some());
            assert_eq!(js.contains(TRUST_LINE), key.is_none());
            let exports: Vec<&str> = js.lines().filter(|l| l.starts_with("export ")).collect();
            assert_eq!(
                exports,
                ["export default {"],
                "only the worker's own export"
            );
        }
        assert!(worker_js(Some("01ab")).contains("publicKey: \"01ab\""));
    }

    #[test]
    fn worker_names_are_valid_script_names() {
        assert_eq!(worker_name("digits"), "kiln-digits");
        assert_eq!(worker_name("My Model_v2!"), "kiln-my-model-v2");
        assert_eq!(worker_name(""), "kiln");
        assert_eq!(worker_name("--a"), "kiln-a");
        assert!(worker_name(&"x".repeat(100)).len() <= 63);
    }
}
