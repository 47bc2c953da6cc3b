//! Compiled model modules: the `.wasm` files `kiln build` writes.
//!
//! A module is a prebuilt guest kernel (compiled by `build.rs`, one per
//! combination of the guest's layer families: the smallest that runs the
//! model, [`kernel_for`]) plus a data segment holding the model blob
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

/// The MLP kernel: a kernel module with no model (ABI v1 exports, SIMD128
/// kernels) holding dense and int8 dense layers and the activations of MLPs
/// — the guest with no layer family.
pub const KERNEL_MLP_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernel-mlp.wasm"));
/// [`KERNEL_MLP_WASM`] with the recurrent family (guest feature `rnn`):
/// RNN, GRU and LSTM layers.
pub const KERNEL_RNN_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernel-rnn.wasm"));
/// [`KERNEL_MLP_WASM`] with the tree family (guest feature `trees`): tree
/// ensembles.
pub const KERNEL_TREES_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernel-trees.wasm"));
/// [`KERNEL_MLP_WASM`] with the CNN family (guest feature `conv`): f32
/// convolution, pooling and the activations of CNNs.
pub const KERNEL_CNN_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernel-cnn.wasm"));
/// [`KERNEL_CNN_WASM`] with int8 convolution and pooling (guest feature
/// `int8-conv`): every layer a chain model can have.
pub const KERNEL_CNN_INT8_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kernel-cnn-int8.wasm"));
/// [`KERNEL_CNN_WASM`] with graph models (guest feature `dag`: blob version
/// 5, the arena plan); graphs are f32, so it needs no int8 convolution.
pub const KERNEL_GRAPH_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernel-graph.wasm"));
/// [`KERNEL_CNN_INT8_WASM`] built with `+simd128,+relaxed-simd`: the one
/// relaxed twin of every chain kernel (see [`relaxed_twin`]).
pub const KERNEL_RELAXED_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kernel-relaxed.wasm"));
/// [`KERNEL_RNN_WASM`] built with `+simd128,+relaxed-simd`: the relaxed
/// twin of recurrent models with int8 weights or int8 dense layers.
pub const KERNEL_RNN_RELAXED_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kernel-rnn-relaxed.wasm"));
/// Every kernel [`kernel_for`] chooses from, with the name `kiln inspect`
/// reports: smallest first.
pub const KERNELS: [(&str, &[u8]); 6] = [
    ("mlp", KERNEL_MLP_WASM),
    ("trees", KERNEL_TREES_WASM),
    ("rnn", KERNEL_RNN_WASM),
    ("cnn", KERNEL_CNN_WASM),
    ("cnn-int8", KERNEL_CNN_INT8_WASM),
    ("graph", KERNEL_GRAPH_WASM),
];
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
    #[error(
        "layer {layer} ({op}) is of the {family} family, which no kernel holds together with {with}"
    )]
    NoKernel {
        layer: usize,
        op: &'static str,
        family: &'static str,
        with: &'static str,
    },
}

/// Builds the module for `model`, whose file bytes hash to `model_sha256`.
pub fn build(model: &ModelFile, model_sha256: &str) -> Result<Vec<u8>, ModuleError> {
    let kernel = model.to_kernel()?;
    check_kernel(&kernel)?;
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
        missing: kernel.missing_features(),
        model_sha256: model_sha256.into(),
        kiln_version: env!("CARGO_PKG_VERSION").into(),
    };
    let meta_json = serde_json::to_vec(&meta).expect("metadata serialises");
    embed::embed(kernel_for(&kernel), &blob, &meta_json)
}

/// Refuses a model no kernel runs: layers of two of the CNN, recurrent and
/// tree families together (graphs refuse recurrent and tree layers
/// themselves).
fn check_kernel(model: &kiln_guest::Model<'_>) -> Result<(), ModuleError> {
    use kiln_guest::{Int8Layer, Layer};
    let family = |l: &Layer<'_>| -> Option<(&'static str, &'static str)> {
        Some(match l {
            Layer::Conv(c, _) => ("CNN", c.name()),
            Layer::Int8(Int8Layer::Conv(_)) => ("CNN", "conv2d_int8"),
            Layer::Int8(Int8Layer::Pool(_)) => ("CNN", "int8 pooling"),
            Layer::Recurrent(r, _) => ("recurrent", r.geom.cell.name()),
            Layer::Trees(..) => ("tree", "tree_ensemble"),
            _ => return None,
        })
    };
    let mut first = None;
    for (layer, l) in model.layers().iter().enumerate() {
        let Some((name, op)) = family(l) else {
            continue;
        };
        match first {
            None => first = Some(name),
            Some(with) if with != name => {
                let with = match with {
                    "CNN" => "layers of the CNN family",
                    "recurrent" => "recurrent layers",
                    _ => "tree ensembles",
                };
                return Err(ModuleError::NoKernel {
                    layer,
                    op,
                    family: name,
                    with,
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn is_recurrent(layer: &kiln_guest::Layer<'_>) -> bool {
    matches!(layer, kiln_guest::Layer::Recurrent(..))
}

fn is_trees(layer: &kiln_guest::Layer<'_>) -> bool {
    matches!(layer, kiln_guest::Layer::Trees(..))
}

/// The smallest kernel that runs `model`: [`KERNEL_GRAPH_WASM`] for a
/// graph; for a chain, [`KERNEL_TREES_WASM`] if it has a tree ensemble,
/// [`KERNEL_RNN_WASM`] if it has recurrent layers,
/// [`KERNEL_CNN_INT8_WASM`] if it has int8 convolution or pooling,
/// [`KERNEL_CNN_WASM`] if it has other layers of the CNN family
/// ([`kiln_guest::ConvLayer`]), and [`KERNEL_MLP_WASM`] otherwise.
pub fn kernel_for(model: &kiln_guest::Model<'_>) -> &'static [u8] {
    use kiln_guest::{Int8Layer, Layer};
    if model.inputs().is_some() {
        return KERNEL_GRAPH_WASM;
    }
    let has = |family: fn(&Layer<'_>) -> bool| model.layers().iter().any(family);
    if has(is_trees) {
        KERNEL_TREES_WASM
    } else if has(is_recurrent) {
        KERNEL_RNN_WASM
    } else if has(|l| matches!(l, Layer::Int8(Int8Layer::Conv(_) | Int8Layer::Pool(_)))) {
        KERNEL_CNN_INT8_WASM
    } else if has(|l| matches!(l, Layer::Conv(..))) {
        KERNEL_CNN_WASM
    } else {
        KERNEL_MLP_WASM
    }
}

/// The name ([`KERNELS`]) of `kernel`, one of this kiln's kernels.
pub fn kernel_name(kernel: &[u8]) -> Option<&'static str> {
    KERNELS
        .iter()
        .find(|(_, k)| std::ptr::eq(*k, kernel))
        .map(|(name, _)| *name)
}

/// The name of the kernel module `wasm` carries ([`KERNELS`]), if `wasm`
/// is exactly what this kiln's [`build`] makes of its blob and metadata.
pub fn carried_kernel(wasm: &[u8]) -> Result<Option<&'static str>, ModuleError> {
    let kernel = rebuilt(wasm, |_| true)?.map(|r| r.kernel);
    Ok(kernel.and_then(kernel_name))
}

/// The parts of a module this kiln built ([`rebuilt`]).
struct Rebuilt<'a> {
    kernel: &'static [u8],
    blob: &'a [u8],
    meta: &'a [u8],
}

/// The kernel, blob and metadata of `wasm`, if its model passes `wanted`
/// (asked first: it spares the rebuild) and `wasm` is byte for byte what
/// this kiln's [`build`] makes of its blob and metadata (a `signature`
/// section aside).
fn rebuilt(
    wasm: &[u8],
    wanted: impl Fn(&kiln_guest::Model<'_>) -> bool,
) -> Result<Option<Rebuilt<'_>>, ModuleError> {
    let (Some(blob), Some(meta)) = (embedded_blob(wasm)?, meta_bytes(wasm)?) else {
        return Ok(None);
    };
    let Ok(model) = kiln_guest::blob::decode(blob) else {
        return Ok(None);
    };
    let kernel = kernel_for(&model);
    if !wanted(&model) {
        return Ok(None);
    }
    // A signed module is compared without its signature (the one section
    // signing adds, `crate::trust::sign`); it was verified, or not asked
    // to be, by whoever loads it.
    let unsigned = crate::trust::sign::unsigned(wasm)?;
    if embed::embed(kernel, blob, meta)? != unsigned.as_deref().unwrap_or(wasm) {
        return Ok(None);
    }
    Ok(Some(Rebuilt { kernel, blob, meta }))
}

/// The relaxed-SIMD twin of `wasm`: the same blob and metadata embedded in
/// [`KERNEL_RELAXED_WASM`], or [`KERNEL_RNN_RELAXED_WASM`] for a model with
/// recurrent layers — if `wasm` is exactly what this kiln's `build` makes
/// of its blob and metadata (byte for byte) and its model has int8 dense
/// layers or recurrent layers with int8 weights (the only ones the relaxed
/// kernel speeds up), and `None` otherwise (an f32 model, a tree ensemble,
/// whose family no relaxed kernel holds, another kiln version's kernel, a
/// hand-made module), which then runs as it is. The
/// relaxed kernel computes the same bits as the plain one
/// (`guest/src/kernels/wasm/relaxed.rs`), so the twin is a drop-in.
pub fn relaxed_twin(wasm: &[u8]) -> Result<Option<Vec<u8>>, ModuleError> {
    use kiln_guest::{Int8Layer, Layer, RecurrentWeights};
    let int8 = |l: &Layer<'_>| match l {
        Layer::Int8(Int8Layer::Dense(_)) => true,
        Layer::Recurrent(r, _) => matches!(r.weights, RecurrentWeights::Int8(..)),
        _ => false,
    };
    let wanted = |model: &kiln_guest::Model<'_>| {
        let layers = model.layers();
        !layers.iter().any(is_trees) && layers.iter().any(int8)
    };
    match rebuilt(wasm, wanted)? {
        Some(r) => {
            let kernel = if std::ptr::eq(r.kernel, KERNEL_RNN_WASM) {
                KERNEL_RNN_RELAXED_WASM
            } else {
                KERNEL_RELAXED_WASM
            };
            embed::embed(kernel, r.blob, r.meta).map(Some)
        }
        None => Ok(None),
    }
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
    hex(&Sha256::digest(bytes))
}

/// `bytes` as lowercase hex digits.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_guest::{
        Activation, Cell, ConvGeom, ConvI8, ConvLayer, Int8Layer, Int8Output, Layer, Model, Node,
        PoolGeom, PoolKind, RecurrentGeom,
    };

    fn relu(len: usize) -> Layer<'static> {
        Layer::Activation {
            kind: Activation::Relu,
            len,
        }
    }

    fn dense(inputs: usize, outputs: usize) -> Layer<'static> {
        let rows = vec![0.5; inputs * outputs];
        Layer::dense_from_rows(0, inputs, outputs, &rows, vec![0.0; outputs].into()).unwrap()
    }

    /// A GRU of 2 over 3 steps of 2 features.
    fn gru() -> Layer<'static> {
        let geom = RecurrentGeom {
            cell: Cell::Gru {
                linear_before_reset: true,
            },
            steps: 3,
            features: 2,
            hidden: 2,
            bidirectional: false,
            sequence: false,
        };
        Layer::recurrent(0, geom, &[0.25; 12], &[0.5; 12], vec![0.0; 12].into()).unwrap()
    }

    /// A one-node tree over 2 features: a leaf adding 1.
    fn stump() -> Layer<'static> {
        use kiln_guest::trees::{Aggregate, Binary, Post};
        let layer = kiln_guest::TreeLayer {
            features: 2,
            targets: 1,
            aggregate: Aggregate::Sum,
            post: Post::None,
            binary: Binary::No,
            nodes: vec![0, 0, 0, 1].into(),
            thresholds: vec![0.0].into(),
            roots: vec![0].into(),
            leaf_targets: vec![0].into(),
            leaf_values: vec![1.0].into(),
            base: vec![0.0].into(),
        };
        Layer::trees(0, layer).unwrap()
    }

    /// 4×4 image → 2×2 max pool → dense 2.
    fn cnn() -> Model<'static> {
        let pool = ConvLayer::Pool {
            kind: PoolKind::Max,
            geom: PoolGeom::new([1, 4, 4, 2, 2]),
        };
        Model::new(16, vec![Layer::conv(0, pool).unwrap(), dense(4, 2)]).unwrap()
    }

    /// Each model gets the smallest kernel holding its layers.
    #[test]
    fn kernel_for_picks_the_smallest_kernel_that_runs_the_model() {
        let mlp = Model::new(4, vec![dense(4, 3), relu(3)]).unwrap();
        let cnn = cnn();
        let geom = ConvGeom::new([1, 4, 4, 1, 3, 3, 1, 1]);
        let output = Int8Output::Float {
            input_scale: Some(0.5),
            weight_scale: vec![0.25].into(),
            bias: vec![0.0].into(),
        };
        let conv = ConvI8::from_filters(1, geom, &[1; 9], vec![0].into(), 0, output).unwrap();
        let quantize = Int8Layer::Quantize {
            len: 16,
            scale: 0.5,
            zero_point: 0,
        };
        let layers = vec![Layer::Int8(quantize), Layer::Int8(Int8Layer::Conv(conv))];
        let int8_cnn = Model::new(16, layers).unwrap();
        let node = |layer, inputs: &[usize]| Node {
            layer,
            inputs: inputs.to_vec(),
        };
        let graph = Model::graph(
            4,
            vec![node(relu(4), &[0]), node(Layer::Add { len: 4 }, &[1, 0])],
        )
        .unwrap();
        let rnn = Model::new(6, vec![gru(), dense(2, 3)]).unwrap();
        let trees = Model::new(2, vec![stump()]).unwrap();
        for (model, name) in [
            (&mlp, "mlp"),
            (&trees, "trees"),
            (&rnn, "rnn"),
            (&cnn, "cnn"),
            (&int8_cnn, "cnn-int8"),
            (&graph, "graph"),
        ] {
            assert_eq!(kernel_name(kernel_for(model)), Some(name));
        }
        // No kernel holds recurrent and CNN layers together.
        let clip = ConvLayer::Clip {
            min: 0.0,
            max: 6.0,
            len: 2,
        };
        let both = Model::new(6, vec![gru(), Layer::conv(1, clip).unwrap()]).unwrap();
        assert!(matches!(
            check_kernel(&both),
            Err(ModuleError::NoKernel {
                layer: 1,
                op: "clip",
                ..
            })
        ));
        // Nor trees with either.
        let mixed = Model::new(
            2,
            vec![
                stump(),
                Layer::conv(
                    1,
                    ConvLayer::Clip {
                        min: 0.0,
                        max: 1.0,
                        len: 1,
                    },
                )
                .unwrap(),
            ],
        )
        .unwrap();
        let err = check_kernel(&mixed).unwrap_err().to_string();
        assert_eq!(
            err,
            "layer 1 (clip) is of the CNN family, which no kernel holds together with tree ensembles"
        );
        assert!(check_kernel(&rnn).is_ok() && check_kernel(&cnn).is_ok());
        let sizes = KERNELS.map(|(_, k)| k.len());
        assert!(sizes.is_sorted(), "kernels not smallest first: {sizes:?}");
    }

    /// A kernel without a family refuses a blob with its layers: the module
    /// then has no model (`kiln_input_len` ≤ 0, docs/abi.md), and nothing
    /// traps; the kernel with the family runs it.
    #[test]
    fn a_kernel_without_the_family_has_no_model() {
        let blob = kiln_guest::blob::encode(&cnn());
        let engine = wasmtime::Engine::default();
        let input_len = |kernel| {
            let wasm = embed::embed(kernel, &blob, b"{}").unwrap();
            let module = wasmtime::Module::new(&engine, &wasm).unwrap();
            let mut store = wasmtime::Store::new(&engine, ());
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
            let f = instance.get_typed_func::<(), i32>(&mut store, "kiln_input_len");
            f.unwrap().call(&mut store, ()).unwrap()
        };
        assert!(input_len(KERNEL_MLP_WASM) <= 0);
        assert_eq!(input_len(KERNEL_CNN_WASM), 16);
    }
}
