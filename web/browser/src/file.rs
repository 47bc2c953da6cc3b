//! Turning the bytes given to `Model.load` into a validated [`Model`].
//!
//! Two inputs are accepted, told apart by their first four bytes:
//!
//! * a kiln **model file** (safetensors with the graph JSON under
//!   `__metadata__["kiln"]`, see `docs/model-format.md`): its container and
//!   graph are read with the package's small JSON reader ([`super::json`],
//!   [`super::graph_json`]) and converted by [`graph::to_kernel_float`] — the
//!   conversion the host runs too, so the page builds the same layers and
//!   refuses what the host refuses with the same message (int8 layers,
//!   the float-parameter activations and graph models, format 2, are read
//!   from compiled modules only, see `graph_json`);
//! * a compiled **model module** (`\0asm`): it is *read*, not instantiated —
//!   its `kiln.meta` section gives the metadata (the shared
//!   [`ModuleMeta`]) and its embedded model blob
//!   is decoded with [`blob::decode`], exactly the model the module runs,
//!   checked in full (weights scanned for NaN and infinity, which the
//!   module's own decode leaves to its hosts: `docs/abi.md`).
//!
//! Either way the result runs through this crate's kernels, so a page gets
//! the bits that `kiln predict` and `kiln serve` get. Everything here is
//! plain Rust (no JS types), so the host's tests check it natively against
//! the host's own reader.

use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use serde::Serialize;

use super::graph_json::{self, Fields, ReadError};
use super::json::Json;
use super::wasm;
use kiln_guest::graph::{
    self, ConvertError, FORMAT_VERSION, GRAPH_FORMAT_VERSION, META_SECTION, METADATA_KEY,
    ModuleMeta, Task, Tensor, TensorData, TensorMeta,
};
use kiln_guest::{DecodeError, Model, ModelError, blob};

/// A model ready to run, with what it says about itself.
#[derive(Debug)]
pub struct Loaded {
    pub model: Model<'static>,
    pub meta: Meta,
}

/// What `model.meta` shows (`ModelMeta` in kiln.d.ts): the fields of a
/// module's [`ModuleMeta`], in the order pages see them, and which input
/// gave them. A model file's graph gives all but the three only a compiled
/// module carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meta {
    pub name: String,
    pub version: String,
    pub task: Task,
    pub input: TensorMeta,
    pub output: TensorMeta,
    pub features: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abi_version: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kiln_version: Option<String>,
    /// `"model-file"` or `"module"`: what was loaded.
    pub source: String,
}

impl From<ModuleMeta> for Meta {
    fn from(m: ModuleMeta) -> Self {
        Meta {
            name: m.name,
            version: m.version,
            task: m.task,
            input: m.input,
            output: m.output,
            features: m.features,
            target: m.target,
            labels: m.labels,
            abi_version: Some(m.abi_version),
            model_sha256: Some(m.model_sha256),
            kiln_version: Some(m.kiln_version),
            source: "module".into(),
        }
    }
}

/// Why bytes could not be loaded. Messages follow the host's (`kiln predict`
/// on the same file prints the same text); `name` is the URL or file name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The safetensors container is broken (the host's `SafeTensors`).
    #[error("{name}: not a valid safetensors file: {message}")]
    SafeTensors { name: String, message: String },
    #[error(
        "{name}: no kiln graph in the safetensors metadata (key `{METADATA_KEY}`); is this a kiln model?"
    )]
    NoGraph { name: String },
    #[error("{name}: invalid kiln graph JSON: {message}")]
    GraphJson { name: String, message: String },
    /// A layer the browser reads from compiled modules only.
    #[error(
        "{name}: layer {layer} ({op}) is read from compiled modules only in the browser; load the module instead: `kiln build {name} -o model.wasm`, then Model.load(\"model.wasm\")"
    )]
    ModuleOnly {
        name: String,
        layer: usize,
        op: String,
    },
    #[error(
        "{name}: graph format {found} is not supported by the browser package, which reads format {FORMAT_VERSION} (chains of layers)"
    )]
    Format { name: String, found: u32 },
    /// A graph model file (format 2): the page reads graphs from modules.
    #[error(
        "{name}: a graph model (format {GRAPH_FORMAT_VERSION}) is read from its compiled module in the browser: `kiln build {name} -o model.wasm`, then Model.load(\"model.wasm\") with the package's graph build, web/pkg-graph"
    )]
    GraphFile { name: String },
    #[error("{name}: tensor `{tensor}` has dtype {dtype}; kiln reads F32, I8 and I32 tensors")]
    Dtype {
        name: String,
        tensor: String,
        dtype: String,
    },
    /// The graph does not fit its tensors or the kernel (the shared
    /// conversion's error, naming the layer).
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// A `\0asm` file that is not a well-formed module.
    #[error("{name}: not a valid WebAssembly module: {message}")]
    Wasm { name: String, message: String },
    #[error("{name}: the module has no {META_SECTION} section; was it built by `kiln build`?")]
    NoMeta { name: String },
    #[error("{name}: custom section `{META_SECTION}` is not valid metadata JSON: {message}")]
    MetaJson { name: String, message: String },
    #[error("{name}: the module embeds no model")]
    NoBlob { name: String },
    #[error("{name}: the embedded model is invalid: {source}")]
    Blob { name: String, source: DecodeError },
    /// A graph model's module (blob version 5) in a build without graphs.
    #[error(
        "{name}: the module holds a graph model, which this build of the package ({BUILD}) leaves out; load it with its graph build, web/pkg-graph"
    )]
    GraphNotInPackage { name: String },
    /// A layer of a family this build of the package leaves out.
    #[error("{name}: layer {layer} ({op}) {}", package_hint(.feature))]
    NotInPackage {
        name: String,
        layer: usize,
        op: &'static str,
        feature: &'static str,
    },
}

/// This build of the package, as its refusals name it (scripts/web.sh
/// builds one per layer family).
const BUILD: &str = if cfg!(feature = "dag") {
    "web/pkg-graph, graph models and CNNs"
} else if cfg!(feature = "conv") {
    "web/pkg-cnn, CNNs"
} else if cfg!(feature = "rnn") {
    "web/pkg-rnn, recurrent models"
} else {
    "web/pkg, dense models"
};

/// Where a layer of the guest family `feature` runs instead.
fn package_hint(feature: &str) -> String {
    let (what, build) = match feature {
        "conv" => ("a convolution or pooling", "CNN build, web/pkg-cnn"),
        "rnn" => ("a recurrent", "recurrent build, web/pkg-rnn"),
        "int8-rnn" => {
            return "is a recurrent layer with int8 weights, which no build of the package holds (size); \
                    run the model module through its raw ABI (docs/abi.md), or load the f32 model with web/pkg-rnn"
                .into();
        }
        _ => {
            return format!(
                "needs the guest feature `{feature}`, which this build of the package leaves out"
            );
        }
    };
    format!(
        "is {what} layer, which this build of the package ({BUILD}) leaves out; load the model with its {build}"
    )
}

impl LoadError {
    /// `e` as [`LoadError::NotInPackage`] when it refuses a left-out family.
    fn not_in_package(name: &str, e: &ModelError) -> Option<Self> {
        let &ModelError::NotInKernel { layer, op, feature } = e else {
            return None;
        };
        Some(Self::NotInPackage {
            name: name.into(),
            layer,
            op,
            feature,
        })
    }
}

/// Loads a model file or a compiled module; `name` (a URL or file name)
/// prefixes error messages.
pub fn load(bytes: &[u8], name: &str) -> Result<Loaded, LoadError> {
    if bytes.starts_with(b"\0asm") {
        load_module(bytes, name)
    } else {
        load_model_file(bytes, name)
    }
}

fn load_module(bytes: &[u8], name: &str) -> Result<Loaded, LoadError> {
    let parts =
        wasm::parts(bytes, META_SECTION, &blob::MAGIC).map_err(|message| LoadError::Wasm {
            name: name.into(),
            message,
        })?;
    let meta_json = parts
        .custom
        .ok_or_else(|| LoadError::NoMeta { name: name.into() })?;
    let meta = module_meta(meta_json)
        .map_err(|message| LoadError::MetaJson {
            name: name.into(),
            message,
        })?
        .into();
    let blob = parts
        .data
        .ok_or_else(|| LoadError::NoBlob { name: name.into() })?;
    let model = blob::decode(blob)
        .map_err(|source| {
            match &source {
                DecodeError::Model(e) => LoadError::not_in_package(name, e),
                // Only a build without `dag` refuses the graph version.
                DecodeError::UnsupportedVersion {
                    found: blob::GRAPH_VERSION,
                } => Some(LoadError::GraphNotInPackage { name: name.into() }),
                _ => None,
            }
            .unwrap_or(LoadError::Blob {
                name: name.into(),
                source,
            })
        })?
        .into_owned();
    Ok(Loaded { model, meta })
}

fn tensor_meta(json: &Json<'_>, what: &str) -> Result<TensorMeta, String> {
    let f = Fields::new(json, what, &[])?;
    Ok(TensorMeta {
        name: f.string("name")?,
        datatype: f.string("datatype")?,
        shape: f.shape("shape")?,
    })
}

/// A module's `kiln.meta` JSON, read as the host reads it (unknown fields
/// are allowed so newer modules still load).
fn module_meta(bytes: &[u8]) -> Result<ModuleMeta, String> {
    let text = core::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let json = Json::parse(text)?;
    let f = Fields::new(&json, "kiln.meta", &[])?;
    let abi_version = match f.req("abi_version")? {
        Json::Num(n) => n.parse().ok(),
        _ => None,
    };
    Ok(ModuleMeta {
        abi_version: abi_version.ok_or("`abi_version`: expected an i32")?,
        name: f.string("name")?,
        version: f.string("version")?,
        task: graph_json::task(&f)?,
        input: tensor_meta(f.req("input")?, "input")?,
        output: tensor_meta(f.req("output")?, "output")?,
        features: f.strings("features")?,
        target: f.opt_string("target")?,
        labels: f.strings("labels")?,
        missing: f.list("missing", false, Json::as_usize, "feature indices")?,
        model_sha256: f.string("model_sha256")?,
        kiln_version: f.string("kiln_version")?,
    })
}

/// One tensor entry of a safetensors header.
struct RawTensor<'a> {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    /// Where `data` starts in the data buffer.
    begin: usize,
    data: &'a [u8],
}

/// The safetensors container: an 8-byte little-endian header length, a
/// JSON header (tensor name → dtype, shape, data offsets; `__metadata__` →
/// string map), then the tensor data.
struct Container<'a> {
    metadata: Vec<(String, String)>,
    tensors: Vec<RawTensor<'a>>,
}

/// Bytes per element of the dtypes kiln reads (other dtypes are refused
/// by name after the container is read, as the host does).
fn dtype_size(dtype: &str) -> Option<usize> {
    match dtype {
        "F32" | "I32" => Some(4),
        "I8" => Some(1),
        _ => None,
    }
}

fn container(bytes: &[u8]) -> Result<Container<'_>, String> {
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("header too small")?;
    let n = u64::from_le_bytes(len_bytes);
    let header_end = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&e| e <= bytes.len())
        .ok_or("invalid header length")?;
    let text =
        core::str::from_utf8(&bytes[8..header_end]).map_err(|_| "invalid header: not UTF-8")?;
    let json = Json::parse(text).map_err(|e| format!("invalid JSON in header: {e}"))?;
    let Json::Obj(entries) = json else {
        return Err("invalid JSON in header: not an object".into());
    };
    let data = &bytes[header_end..];
    let mut out = Container {
        metadata: Vec::new(),
        tensors: Vec::new(),
    };
    for (key, value) in &entries {
        if key == "__metadata__" {
            let Json::Obj(m) = value else {
                return Err("invalid JSON in header: `__metadata__` is not an object".into());
            };
            for (k, v) in m {
                let v = v
                    .as_str()
                    .ok_or("invalid JSON in header: metadata values must be strings")?;
                out.metadata.push((k.clone(), v.into()));
            }
            continue;
        }
        let f = Fields::new(value, key, &["dtype", "shape", "data_offsets"])
            .map_err(|e| format!("invalid JSON in header: {e}"))?;
        let dtype = f
            .string("dtype")
            .map_err(|e| format!("tensor `{key}`: {e}"))?;
        let shape = f
            .shape("shape")
            .map_err(|e| format!("tensor `{key}`: {e}"))?;
        let offsets = f
            .list("data_offsets", true, Json::as_usize, "integers")
            .map_err(|e| format!("tensor `{key}`: {e}"))?;
        let &[begin, end] = offsets.as_slice() else {
            return Err(format!("tensor `{key}`: data_offsets must hold 2 integers"));
        };
        let slice = data
            .get(begin..end)
            .filter(|_| begin <= end)
            .ok_or_else(|| {
                format!(
                    "tensor `{key}`: data offsets [{begin}, {end}] lie outside the {} data bytes",
                    data.len()
                )
            })?;
        if let Some(size) = dtype_size(&dtype) {
            let elements = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if elements.and_then(|e| e.checked_mul(size)) != Some(slice.len()) {
                return Err(format!(
                    "tensor `{key}`: shape {shape:?} does not match its {} data bytes",
                    slice.len()
                ));
            }
        }
        out.tensors.push(RawTensor {
            name: key.clone(),
            dtype,
            shape,
            begin,
            data: slice,
        });
    }
    covers(&out.tensors, data)?;
    Ok(out)
}

/// The tensors, in offset order, must tile the data buffer: no gap, no
/// overlap, no byte after the last (the host's `SafeTensors` check, with its
/// messages).
fn covers(tensors: &[RawTensor<'_>], data: &[u8]) -> Result<(), String> {
    let mut spans: Vec<_> = tensors.iter().collect();
    spans.sort_unstable_by_key(|t| (t.begin, t.data.len()));
    let mut end = 0;
    for t in spans {
        if t.begin != end {
            return Err(format!("invalid offset for tensor `{}`", t.name));
        }
        end = t.begin + t.data.len();
    }
    if end != data.len() {
        return Err("incomplete metadata, file not fully covered".into());
    }
    Ok(())
}

/// The host's `ModelFile::from_bytes` + `to_kernel`, step for step, so the
/// same file fails with the same message.
fn load_model_file(bytes: &[u8], name: &str) -> Result<Loaded, LoadError> {
    let c = container(bytes).map_err(|message| LoadError::SafeTensors {
        name: name.into(),
        message,
    })?;
    let json = c
        .metadata
        .iter()
        .find(|(k, _)| k == METADATA_KEY)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| LoadError::NoGraph { name: name.into() })?;
    let graph = graph_json::graph(json).map_err(|e| match e {
        ReadError::Json(message) => LoadError::GraphJson {
            name: name.into(),
            message,
        },
        ReadError::ModuleOnly { layer, op } => LoadError::ModuleOnly {
            name: name.into(),
            layer,
            op,
        },
        ReadError::GraphFile => LoadError::GraphFile { name: name.into() },
        ReadError::NotInPackage { layer, op, feature } => LoadError::NotInPackage {
            name: name.into(),
            layer,
            op,
            feature,
        },
    })?;
    if graph.format != FORMAT_VERSION {
        return Err(LoadError::Format {
            name: name.into(),
            found: graph.format,
        });
    }
    let mut tensors = BTreeMap::new();
    for t in c.tensors {
        let Some(data) = TensorData::from_le_bytes(&t.dtype, t.data) else {
            return Err(LoadError::Dtype {
                name: name.into(),
                tensor: t.name,
                dtype: t.dtype,
            });
        };
        tensors.insert(
            t.name,
            Tensor {
                shape: t.shape,
                data,
            },
        );
    }
    let model = graph::to_kernel_float(&graph, &tensors).map_err(|e| match &e {
        ConvertError::Graph(m) => LoadError::not_in_package(name, m).unwrap_or(e.into()),
        _ => e.into(),
    })?;
    let meta = Meta {
        output: TensorMeta::scores(model.output_len()),
        input: TensorMeta::input(&graph),
        name: graph.name,
        version: graph.version,
        task: graph.task,
        features: graph.input.features,
        target: graph.target,
        labels: graph.labels,
        abi_version: None,
        model_sha256: None,
        kiln_version: None,
        source: "model-file".into(),
    };
    Ok(Loaded { model, meta })
}
