//! `kiln-browser`: kiln's browser package, a wasm-bindgen `Model` class over
//! the same kernels every model module runs (crate `kiln-guest`).
//!
//! `scripts/web.sh` compiles this crate for `wasm32-unknown-unknown` with
//! `+simd128` (like the module kernel) and packages it with the wasm-bindgen
//! CLI (`--target web`) into `web/pkg/kiln.js` + `kiln_bg.wasm` + `kiln.d.ts`:
//!
//! ```js
//! import init, { Model } from "./pkg/kiln.js";
//! await init();
//! const model = await Model.load("digits.wasm");      // or .safetensors, or bytes
//! const signed = await Model.load("digits.wasm", { publicKey: "01ab…" }); // verified first
//! const scores = model.predict(new Float32Array(64));  // Float32Array
//! const top3 = model.classify(pixels, 3);              // [{label, index, score}]
//! model.free();
//! ```
//!
//! Loading is [`load`] (plain Rust, tested natively against the host's
//! reader); this file is only the JS boundary. Errors become JS `Error`s with
//! the host's messages. Randomness (`randomIndex`, for the demo's "random
//! test digit") comes from `getrandom`'s `wasm_js` backend and is never used
//! in prediction.
//!
//! Why a crate of its own: the `web` profile (Cargo.toml) compiles this glue
//! and its dependencies for size (`opt-level = "z"`) and `kiln-guest` for
//! speed (opt-level 3). At "z" the kernels' fixed-size accumulator loops are
//! not unrolled, so their accumulators live in memory, which made the
//! package several times slower than the model module (docs/web.md).

#![forbid(unsafe_code)]

mod file;
mod graph_json;
mod json;
mod wasm;

pub use file::{LoadError, Loaded, Meta, load};

use std::string::{String, ToString};
use std::vec::Vec;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use kiln_guest::Scratch;

/// talc, not std's wasm allocator (dlmalloc), as in the model modules:
/// ~5 KB less wasm, which pays for `kiln-guest` at opt-level 3 in the `web`
/// profile (Cargo.toml).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// `Model.load` (web/browser/load.js, next to kiln.js): reads the bytes of
/// a URL or of an `ArrayBuffer`/view, with `{ publicKey }` checks the
/// module's signature first (web/trust/verify.js: WebCrypto's SHA-256 and
/// Ed25519, and where a browser lacks them ./ed25519.js, imported only
/// then), then calls [`Model::from_named_bytes`]. JavaScript, not Rust:
/// fetching and the signature rest on browser APIs, in wasm Ed25519 alone
/// would cost tens of KB, and an `async` Rust function links an executor
/// and its glue (~10 KB; docs/web.md, "Signed modules").
#[wasm_bindgen(raw_module = "./load.js")]
extern "C" {
    /// Resolves to the [`Model`]; rejects with an `Error` naming the URL
    /// and what failed.
    #[wasm_bindgen(js_name = modelLoad)]
    fn model_load(source: JsValue, options: JsValue) -> js_sys::Promise;
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** One tensor of a model's signature (one row; KServe v2 terms). */
export interface TensorMeta { name: string; datatype: string; shape: number[] }
/** What `model.meta` returns. */
export interface ModelMeta {
  name: string; version: string; task: "classification" | "regression";
  input: TensorMeta; output: TensorMeta; features: string[]; labels: string[];
  target?: string; source: "model-file" | "module";
  abi_version?: number; model_sha256?: string; kiln_version?: string;
}
/** The options of `Model.load`. */
export interface LoadOptions {
  /**
   * Verify the module's signature (`kiln build --sign`, `kiln sign`) with
   * this Ed25519 public key before reading anything else of it: the `.pub`
   * file of `kiln keygen` (bytes, or hex), the 32-byte key, or a PEM/DER
   * public key. A module that is unsigned, changed after signing, or signed
   * by another key is refused (the promise rejects), as is a model file.
   */
  publicKey?: string | ArrayBuffer | ArrayBufferView;
}
/** One entry of `model.classify(...)`. */
export interface Class { label: string; index: number; score: number }
"#;

/// A loaded model. Create one with `await Model.load(urlOrBytes)` or
/// `Model.fromBytes(bytes)`; release its memory with `free()`.
#[wasm_bindgen]
pub struct Model {
    model: kiln_guest::Model<'static>,
    meta: file::Meta,
    scratch: Scratch,
}

fn js_error(e: impl ToString) -> JsError {
    JsError::new(&e.to_string())
}

/// One entry of `classify`'s answer.
#[derive(Serialize)]
struct Class<'a> {
    label: &'a str,
    index: usize,
    score: f32,
}

/// `value` as a plain JS object (maps as objects, not `Map`s).
fn to_js(value: &impl Serialize) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(js_error)
}

#[wasm_bindgen]
impl Model {
    /// Loads a model from a URL (string or `URL`) or from its bytes
    /// (`ArrayBuffer`, `Uint8Array` or any typed array). Accepts a kiln
    /// model file (`.safetensors`) or a module built by `kiln build`
    /// (`.wasm`); both predict the same bits. Rejects with an `Error`
    /// naming what is wrong with the file. With `{ publicKey }`, the module's
    /// signature is verified first, and the load rejects unless it is that
    /// key's over exactly the module's bytes.
    #[wasm_bindgen(unchecked_return_type = "Promise<Model>")]
    pub fn load(
        #[wasm_bindgen(unchecked_param_type = "string | URL | ArrayBuffer | ArrayBufferView")]
        source: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "LoadOptions")] options: Option<
            js_sys::Object,
        >,
    ) -> js_sys::Promise {
        model_load(source, options.map_or(JsValue::UNDEFINED, JsValue::from))
    }

    /// `Model.load`'s last step (load.js): the model in `bytes`, read from
    /// `name`, which prefixes error messages. Not part of the typed API.
    #[wasm_bindgen(js_name = fromNamedBytes, skip_typescript)]
    pub fn from_named_bytes(bytes: &[u8], name: &str) -> Result<Model, JsError> {
        Self::load_bytes(bytes, name)
    }

    /// Loads a model from bytes already in memory (synchronous, so it cannot
    /// verify a signature: with `{ publicKey }` it throws, pointing at
    /// `await Model.load(bytes, { publicKey })`).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(
        bytes: &[u8],
        #[wasm_bindgen(unchecked_optional_param_type = "LoadOptions")] options: Option<
            js_sys::Object,
        >,
    ) -> Result<Model, JsError> {
        if has_public_key(options.as_ref()) {
            return Err(JsError::new(
                "Model.fromBytes cannot verify a signature (verification is asynchronous): use await Model.load(bytes, { publicKey })",
            ));
        }
        Self::load_bytes(bytes, "model bytes")
    }

    fn load_bytes(bytes: &[u8], name: &str) -> Result<Model, JsError> {
        let loaded = file::load(bytes, name).map_err(js_error)?;
        Ok(Model {
            model: loaded.model,
            meta: loaded.meta,
            scratch: Scratch::new(),
        })
    }

    /// What the model says about itself, as a plain object: `name`,
    /// `version`, `task`, `input` / `output` (`{name, datatype, shape}`),
    /// `labels`, `features`, `source` (`"model-file"` or `"module"`), and for
    /// modules `model_sha256`, `kiln_version`, `abi_version`.
    #[wasm_bindgen(getter, unchecked_return_type = "ModelMeta")]
    pub fn meta(&self) -> Result<JsValue, JsError> {
        to_js(&self.meta)
    }

    /// Values per input row.
    #[wasm_bindgen(getter, js_name = inputLength)]
    pub fn input_length(&self) -> usize {
        self.model.input_len()
    }

    /// Values per output row.
    #[wasm_bindgen(getter, js_name = outputLength)]
    pub fn output_length(&self) -> usize {
        self.model.output_len()
    }

    /// Predicts `batch` rows (default: as many as `input` holds) given as one
    /// flat row-major `Float32Array`; returns the scores, flat, row-major.
    pub fn predict(&mut self, input: &[f32], batch: Option<usize>) -> Result<Vec<f32>, JsError> {
        let width = self.model.input_len();
        let batch = batch.unwrap_or(input.len() / width);
        if batch == 0 || batch.checked_mul(width) != Some(input.len()) {
            return Err(JsError::new(&format!(
                "input has {} values; expected {} (batch) × {width} (values per row)",
                input.len(),
                if batch == 0 { 1 } else { batch },
            )));
        }
        self.scratch
            .input(&self.model, batch)
            .map_err(js_error)?
            .copy_from_slice(input);
        let out = self.model.run(batch, &mut self.scratch).map_err(js_error)?;
        Ok(out.to_vec())
    }

    /// The `k` (default 3) highest-scoring classes of ONE row, best first:
    /// `[{label, index, score}]` (ties keep the lower index first).
    #[wasm_bindgen(unchecked_return_type = "Class[]")]
    pub fn classify(&mut self, input: &[f32], k: Option<usize>) -> Result<JsValue, JsError> {
        let scores = self.predict(input, Some(1))?;
        // Selection of the top k (k is tiny): no sort routine in the package.
        let mut order: Vec<usize> = Vec::new();
        let mut taken = std::vec![false; scores.len()];
        for _ in 0..k.unwrap_or(3).min(scores.len()) {
            let best = (0..scores.len()).filter(|&i| !taken[i]).reduce(|a, b| {
                if scores[b].total_cmp(&scores[a]).is_gt() {
                    b
                } else {
                    a
                }
            });
            if let Some(i) = best {
                taken[i] = true;
                order.push(i);
            }
        }
        let index_labels: Vec<String> = (0..scores.len()).map(|i| i.to_string()).collect();
        let labels = if self.meta.labels.len() == scores.len() {
            &self.meta.labels
        } else {
            &index_labels
        };
        let top: Vec<Class<'_>> = order
            .into_iter()
            .map(|index| Class {
                label: &labels[index],
                index,
                score: scores[index],
            })
            .collect();
        to_js(&top)
    }
}

/// A uniformly random integer in `0..n` from the platform's CSPRNG
/// (`crypto.getRandomValues`). For demos (a random test row); prediction
/// never uses randomness.
#[wasm_bindgen(js_name = randomIndex)]
pub fn random_index(n: u32) -> Result<u32, JsError> {
    if n == 0 {
        return Err(JsError::new("randomIndex needs n ≥ 1"));
    }
    let r = getrandom::u64().map_err(js_error)?;
    // Lemire's multiply-shift: unbiased enough for n ≪ 2^64.
    Ok(((u128::from(r) * u128::from(n)) >> 64) as u32)
}

/// Whether `options` gives a `publicKey` (not null or undefined).
fn has_public_key(options: Option<&js_sys::Object>) -> bool {
    options
        .and_then(|o| js_sys::Reflect::get(o, &"publicKey".into()).ok())
        .is_some_and(|k| !k.is_undefined() && !k.is_null())
}
