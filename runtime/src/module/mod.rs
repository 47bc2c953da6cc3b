//! Compiled model modules: the `.wasm` files `kiln build` writes.
//!
//! A module is a prebuilt guest kernel (compiled by `build.rs`: the smallest
//! that runs the model, [`kernel_for`] — [`KERNEL_CORE_WASM`], or
//! [`KERNEL_WASM`] for models with int8 convolutions) plus a data segment holding the model blob
//! ([`kiln_guest::blob`]) and a custom section [`META_SECTION`] holding
//! [`ModuleMeta`] as JSON. This module writes them ([`build`]) and reads
//! them back without instantiating ([`read_meta`], [`embedded_blob`]).
//! The contract is `docs/abi.md`.
//!
//! The same kernel source is also built with relaxed SIMD
//! ([`KERNEL_RELAXED_WASM`]). Modules always embed the plain SIMD128 kernel,
//! which every engine runs (V8 without flags, Safari, workerd); a host whose
//! engine has relaxed SIMD rebuilds a module it recognises as kiln's with
//! the relaxed kernel ([`relaxed_twin`]) — the same blob and metadata, the
//! same bits, a faster int8 dot product.

mod embed;

use sha2::{Digest, Sha256};
use wasmparser::{DataKind, Parser, Payload};

use crate::model::{ModelFile, ModelFileError};

/// The `kiln.meta` section and its JSON, shared with the browser package.
pub use kiln_guest::graph::{META_SECTION, ModuleMeta, TensorMeta};

/// The kernel module with no model: ABI v1 exports, SIMD128 kernels, every
/// layer kiln has.
pub const KERNEL_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernel.wasm"));
/// [`KERNEL_WASM`] without int8 convolution and pooling (the guest feature
/// `int8-conv`): ~12 KB smaller, embedded for every model that has neither
/// ([`kernel_for`]).
pub const KERNEL_CORE_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernel-core.wasm"));
/// The same kernel built with `+simd128,+relaxed-simd` (see [`relaxed_twin`]).
pub const KERNEL_RELAXED_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kernel-relaxed.wasm"));
/// [`KERNEL_TESTS_WASM`] built with relaxed SIMD (tests only).
#[doc(hidden)]
pub const KERNEL_TESTS_RELAXED_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kernel-tests-relaxed.wasm"));
/// The kernel with extra exports running single kernels (tests only).
#[doc(hidden)]
pub const KERNEL_TESTS_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernel-tests.wasm"));
/// Why a module could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error(transparent)]
    Model(#[from] ModelFileError),
    #[error("not a valid WebAssembly module: {0}")]
    Wasm(#[from] wasmparser::BinaryReaderError),
    #[error("the kernel has no exported `__heap_base` global")]
    NoHeapBase,
    #[error("the model needs {0} bytes of memory, more than a 32-bit module can address")]
    TooLarge(usize),
    #[error("re-encoding the kernel failed: {0}")]
    Reencode(String),
    #[error("custom section `{META_SECTION}` is not valid metadata JSON: {0}")]
    MetaJson(serde_json::Error),
}

/// Builds the module for `model`, whose file bytes hash to `model_sha256`.
pub fn build(model: &ModelFile, model_sha256: &str) -> Result<Vec<u8>, ModuleError> {
    let kernel = model.to_kernel()?;
    let blob = kiln_guest::blob::encode(&kernel);
    let g = &model.graph;
    let meta = ModuleMeta {
        abi_version: kiln_guest::ABI_VERSION,
        name: g.name.clone(),
        version: g.version.clone(),
        task: g.task,
        input: TensorMeta::input(g),
        output: TensorMeta::scores(kernel.output_len()),
        features: g.input.features.clone(),
        target: g.target.clone(),
        labels: g.labels.clone(),
        model_sha256: model_sha256.into(),
        kiln_version: env!("CARGO_PKG_VERSION").into(),
    };
    let meta_json = serde_json::to_vec(&meta).expect("metadata serialises");
    embed::embed(kernel_for(&kernel), &blob, &meta_json)
}

/// The smallest kernel that runs `model`: [`KERNEL_CORE_WASM`] unless the
/// model has int8 convolution or pooling layers, which only [`KERNEL_WASM`]
/// holds.
pub fn kernel_for(model: &kiln_guest::Model<'_>) -> &'static [u8] {
    use kiln_guest::Int8Layer;
    let int8_conv = model.layers().iter().any(|l| {
        matches!(
            l,
            kiln_guest::Layer::Int8(Int8Layer::Conv(_) | Int8Layer::Pool(_))
        )
    });
    if int8_conv {
        KERNEL_WASM
    } else {
        KERNEL_CORE_WASM
    }
}

/// The relaxed-SIMD twin of `wasm`: the same blob and metadata embedded in
/// [`KERNEL_RELAXED_WASM`] — if `wasm` is exactly what this kiln's `build`
/// makes of its blob and metadata (byte for byte) and its model has int8
/// dense layers (the only ones the relaxed kernel speeds up), and `None`
/// otherwise (an f32 model, another kiln version's kernel, a hand-made
/// module), which then runs as it is. The relaxed kernel computes the same
/// bits as the plain one (`guest/src/kernels/wasm/relaxed.rs`), so the twin
/// is a drop-in.
pub fn relaxed_twin(wasm: &[u8]) -> Result<Option<Vec<u8>>, ModuleError> {
    let (Some(blob), Some(meta)) = (embedded_blob(wasm)?, meta_bytes(wasm)?) else {
        return Ok(None);
    };
    let Ok(model) = kiln_guest::blob::decode(blob) else {
        return Ok(None);
    };
    let int8_dense = model
        .layers()
        .iter()
        .any(|l| matches!(l, kiln_guest::Layer::Int8(kiln_guest::Int8Layer::Dense(_))));
    if !int8_dense || embed::embed(kernel_for(&model), blob, meta)? != wasm {
        return Ok(None);
    }
    embed::embed(KERNEL_RELAXED_WASM, blob, meta).map(Some)
}

/// The raw bytes of the `kiln.meta` section, if the module has one.
fn meta_bytes(wasm: &[u8]) -> Result<Option<&[u8]>, ModuleError> {
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::CustomSection(c) = payload?
            && c.name() == META_SECTION
        {
            return Ok(Some(c.data()));
        }
    }
    Ok(None)
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the `kiln.meta` section, if the module has one.
pub fn read_meta(wasm: &[u8]) -> Result<Option<ModuleMeta>, ModuleError> {
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::CustomSection(c) = payload?
            && c.name() == META_SECTION
        {
            return serde_json::from_slice(c.data())
                .map(Some)
                .map_err(ModuleError::MetaJson);
        }
    }
    Ok(None)
}

/// The model blob embedded in a module: the active data segment that starts
/// with [`kiln_guest::blob::MAGIC`]. `--native` prediction decodes it, so it
/// runs exactly the bytes the module runs.
pub fn embedded_blob(wasm: &[u8]) -> Result<Option<&[u8]>, ModuleError> {
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::DataSection(reader) = payload? {
            for data in reader {
                let data = data?;
                if matches!(data.kind, DataKind::Active { .. })
                    && data.data.starts_with(&kiln_guest::blob::MAGIC)
                {
                    return Ok(Some(data.data));
                }
            }
        }
    }
    Ok(None)
}
