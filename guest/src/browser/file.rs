//! Turning the bytes given to `Model.load` into a validated [`Model`].
//!
//! Two inputs are accepted, told apart by their first four bytes:
//!
//! * a kiln **model file** (safetensors with the graph JSON under
//!   `__metadata__["kiln"]`, see `docs/model-format.md`), read with a small
//!   JSON reader ([`super::json`]) and converted exactly as the host's
//!   `ModelFile::to_kernel` does — same layers, same `1/std` rounding, same
//!   messages for every graph error (the host's tests check both agree);
//! * a compiled **model module** (`\0asm`): it is *read*, not instantiated —
//!   its `kiln.meta` section gives the metadata and its embedded model blob
//!   is decoded with [`blob::decode`], exactly what the module itself runs.
//!
//! Either way the result runs through this crate's kernels, so a page gets
//! the bits that `kiln predict` and `kiln serve` get. Everything here is
//! plain Rust (no JS types), so the host's tests check it natively against
//! the host's own reader.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::string::{String, ToString};
use std::vec::Vec;

use serde::Serialize;

use super::json::Json;
use super::wasm;
use crate::{
    Activation, ConvGeom, DecodeError, Layer, Model, ModelError, PoolGeom, PoolKind, blob,
};

/// The `__metadata__` key holding the graph JSON (the host's `METADATA_KEY`).
const METADATA_KEY: &str = "kiln";
/// The graph format version this reader understands (the host's).
const FORMAT_VERSION: u32 = 1;
/// Ops of the host's model format that the browser reads from compiled
/// modules only (whose blobs hold what the host derived from them).
const MODULE_ONLY: [&str; 9] = [
    "quantize",
    "quantize_dynamic",
    "dense_int8",
    "leaky_relu",
    "prelu",
    "group_softmax",
    "log_softmax",
    "scale_shift",
    "global_avg_pool",
];
/// The custom section of a module holding its metadata JSON.
const META_SECTION: &str = "kiln.meta";

/// A model ready to run, with what it says about itself.
#[derive(Debug)]
pub struct Loaded {
    pub model: Model<'static>,
    pub meta: Meta,
}

/// One tensor of the model's signature, in KServe v2 terms (one row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorMeta {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<usize>,
}

/// What `model.meta` shows: the fields of a module's `kiln.meta` section.
/// Fields only a compiled module carries are absent for a model file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meta {
    pub name: String,
    pub version: String,
    /// `"classification"` or `"regression"`.
    pub task: String,
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

/// Why bytes could not be loaded. Messages follow the host's (`kiln predict`
/// on the same file prints the same text); `name` is the URL or file name.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadError {
    /// The safetensors container is broken (the host's `SafeTensors`).
    SafeTensors {
        name: String,
        message: String,
    },
    NoGraph {
        name: String,
    },
    GraphJson {
        name: String,
        message: String,
    },
    Format {
        name: String,
        found: u32,
    },
    Dtype {
        name: String,
        tensor: String,
        dtype: String,
    },
    MissingTensor {
        layer: usize,
        op: &'static str,
        tensor: String,
    },
    TensorShape {
        layer: usize,
        op: &'static str,
        tensor: String,
        found: Vec<usize>,
        expected: String,
    },
    NotImage {
        layer: usize,
        op: &'static str,
        found: Vec<usize>,
    },
    InputShape(Vec<usize>),
    Labels {
        labels: usize,
        outputs: usize,
    },
    Features {
        features: usize,
        inputs: usize,
    },
    Graph(ModelError),
    /// A layer the browser reads from compiled modules only: int8 layers
    /// (the host derives the kernel's integers) and the ops ONNX import
    /// adds (the host folds their parameters).
    ModuleOnly {
        name: String,
        layer: usize,
        op: String,
    },
    /// A `\0asm` file that is not a well-formed module.
    Wasm {
        name: String,
        message: String,
    },
    NoMeta {
        name: String,
    },
    MetaJson {
        name: String,
        message: String,
    },
    NoBlob {
        name: String,
    },
    Blob {
        name: String,
        source: DecodeError,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SafeTensors { name, message } => {
                write!(f, "{name}: not a valid safetensors file: {message}")
            }
            Self::NoGraph { name } => write!(
                f,
                "{name}: no kiln graph in the safetensors metadata (key `{METADATA_KEY}`); is this a kiln model?"
            ),
            Self::GraphJson { name, message } => {
                write!(f, "{name}: invalid kiln graph JSON: {message}")
            }
            Self::Format { name, found } => write!(
                f,
                "{name}: graph format {found} is not supported (this kiln reads {FORMAT_VERSION})"
            ),
            Self::Dtype {
                name,
                tensor,
                dtype,
            } => write!(
                f,
                "{name}: tensor `{tensor}` has dtype {dtype}, expected F32"
            ),
            Self::MissingTensor { layer, op, tensor } => {
                write!(f, "layer {layer} ({op}): tensor `{tensor}` is missing")
            }
            Self::TensorShape {
                layer,
                op,
                tensor,
                found,
                expected,
            } => write!(
                f,
                "layer {layer} ({op}): tensor `{tensor}` has shape {found:?}, expected {expected}"
            ),
            Self::NotImage { layer, op, found } => write!(
                f,
                "layer {layer} ({op}) needs a [channels, height, width] input, but receives shape {found:?}; give the model input a 3-D shape (e.g. `kiln train --shape 1x8x8`)"
            ),
            Self::InputShape(shape) => write!(f, "input shape {shape:?} is empty or overflows"),
            Self::Labels { labels, outputs } => write!(f, "{labels} labels for {outputs} outputs"),
            Self::Features { features, inputs } => {
                write!(f, "{features} feature names for {inputs} inputs")
            }
            Self::Graph(e) => write!(f, "invalid graph: {e}"),
            Self::ModuleOnly { name, layer, op } => write!(
                f,
                "{name}: layer {layer} ({op}) is read from compiled modules only in the browser; load the module instead: `kiln build {name} -o model.wasm`, then Model.load(\"model.wasm\")"
            ),
            Self::Wasm { name, message } => {
                write!(f, "{name}: not a valid WebAssembly module: {message}")
            }
            Self::NoMeta { name } => write!(
                f,
                "{name}: the module has no {META_SECTION} section; was it built by `kiln build`?"
            ),
            Self::MetaJson { name, message } => write!(
                f,
                "{name}: custom section `{META_SECTION}` is not valid metadata JSON: {message}"
            ),
            Self::NoBlob { name } => write!(f, "{name}: the module embeds no model"),
            Self::Blob { name, source } => {
                write!(f, "{name}: the embedded model is invalid: {source}")
            }
        }
    }
}

impl std::error::Error for LoadError {}

impl From<ModelError> for LoadError {
    fn from(e: ModelError) -> Self {
        Self::Graph(e)
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
    let meta = module_meta(meta_json).map_err(|message| LoadError::MetaJson {
        name: name.into(),
        message,
    })?;
    let blob = parts
        .data
        .ok_or_else(|| LoadError::NoBlob { name: name.into() })?;
    let model = blob::decode(blob)
        .map_err(|source| LoadError::Blob {
            name: name.into(),
            source,
        })?
        .into_owned();
    Ok(Loaded { model, meta })
}

/// Field access on a JSON object, with serde-like messages.
struct Fields<'j, 'a> {
    json: &'j Json<'a>,
}

impl<'j, 'a> Fields<'j, 'a> {
    /// `json` must be an object whose keys are all in `known`
    /// (the host's `deny_unknown_fields`); pass `&[]` to allow any.
    fn new(json: &'j Json<'a>, what: &str, known: &[&str]) -> Result<Self, String> {
        let Json::Obj(fields) = json else {
            return Err(format!("{what}: expected an object, found {}", json.kind()));
        };
        let unknown = fields
            .iter()
            .find(|(k, _)| !known.is_empty() && !known.contains(&k.as_str()));
        if let Some((k, _)) = unknown {
            return Err(format!(
                "{what}: unknown field `{k}`, expected one of {known:?}"
            ));
        }
        Ok(Fields { json })
    }

    fn opt(&self, key: &str) -> Option<&'j Json<'a>> {
        self.json.get(key).filter(|v| **v != Json::Null)
    }

    fn req(&self, key: &str) -> Result<&'j Json<'a>, String> {
        self.opt(key)
            .ok_or_else(|| format!("missing field `{key}`"))
    }

    fn string(&self, key: &str) -> Result<String, String> {
        let v = self.req(key)?;
        v.as_str()
            .map(String::from)
            .ok_or_else(|| format!("`{key}`: expected a string, found {}", v.kind()))
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>, String> {
        self.opt(key).map(|_| self.string(key)).transpose()
    }

    fn usize(&self, key: &str) -> Result<usize, String> {
        let v = self.req(key)?;
        v.as_usize().ok_or_else(|| {
            format!(
                "`{key}`: expected a non-negative integer, found {}",
                v.kind()
            )
        })
    }

    fn list<T>(
        &self,
        key: &str,
        required: bool,
        item: impl Fn(&Json<'a>) -> Option<T>,
        expected: &str,
    ) -> Result<Vec<T>, String> {
        let Some(v) = self.opt(key) else {
            return if required {
                Err(format!("missing field `{key}`"))
            } else {
                Ok(Vec::new())
            };
        };
        let Json::Arr(items) = v else {
            return Err(format!("`{key}`: expected an array, found {}", v.kind()));
        };
        items
            .iter()
            .map(|j| {
                item(j).ok_or_else(|| format!("`{key}`: expected {expected}, found {}", j.kind()))
            })
            .collect()
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, String> {
        self.list(key, false, |j| j.as_str().map(String::from), "strings")
    }

    fn shape(&self, key: &str) -> Result<Vec<usize>, String> {
        self.list(key, true, Json::as_usize, "non-negative integers")
    }
}

fn tensor_meta(json: &Json<'_>, what: &str) -> Result<TensorMeta, String> {
    let f = Fields::new(json, what, &[])?;
    Ok(TensorMeta {
        name: f.string("name")?,
        datatype: f.string("datatype")?,
        shape: f.shape("shape")?,
    })
}

/// A module's `kiln.meta` JSON (the host's `ModuleMeta`; unknown fields are
/// allowed so newer modules still load).
fn module_meta(bytes: &[u8]) -> Result<Meta, String> {
    let text = core::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let json = Json::parse(text)?;
    let f = Fields::new(&json, "kiln.meta", &[])?;
    Ok(Meta {
        name: f.string("name")?,
        version: f.string("version")?,
        task: f.string("task")?,
        input: tensor_meta(f.req("input")?, "input")?,
        output: tensor_meta(f.req("output")?, "output")?,
        features: f.strings("features")?,
        target: f.opt_string("target")?,
        labels: f.strings("labels")?,
        abi_version: f
            .opt("abi_version")
            .and_then(Json::as_usize)
            .map(|v| v as i32),
        model_sha256: f.opt_string("model_sha256")?,
        kiln_version: f.opt_string("kiln_version")?,
        source: "module".into(),
    })
}

/// The graph of a model file: the host's `Graph` schema.
struct Graph {
    format: u32,
    name: String,
    version: String,
    task: String,
    input_name: String,
    input_shape: Vec<usize>,
    features: Vec<String>,
    target: Option<String>,
    labels: Vec<String>,
    layers: Vec<LayerSpec>,
}

/// One layer of the graph (the host's `LayerSpec`).
enum LayerSpec {
    Standardize {
        mean: String,
        std: String,
    },
    Dense {
        weight: String,
        bias: String,
    },
    Activation(&'static str, Activation),
    Flatten,
    Conv2d {
        weight: String,
        bias: String,
        stride: usize,
        padding: usize,
    },
    Pool {
        op: &'static str,
        kind: PoolKind,
        kernel: usize,
        stride: Option<usize>,
    },
    /// One of [`MODULE_ONLY`]: refused with a pointer to the module.
    ModuleOnly(String),
}

impl LayerSpec {
    fn op(&self) -> &'static str {
        match self {
            LayerSpec::Standardize { .. } => "standardize",
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Activation(op, _) => op,
            LayerSpec::Flatten => "flatten",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::Pool { op, .. } => op,
            LayerSpec::ModuleOnly(_) => "module-only",
        }
    }

    fn parse(json: &Json<'_>, index: usize) -> Result<Self, String> {
        let what = format!("layers[{index}]");
        let op = Fields::new(json, &what, &[])?.string("op")?;
        let known: &[&str] = match op.as_str() {
            "standardize" => &["op", "mean", "std"],
            "dense" => &["op", "weight", "bias"],
            "conv2d" => &["op", "weight", "bias", "stride", "padding"],
            "max_pool" | "avg_pool" => &["op", "kernel", "stride"],
            // Refused later with a pointer to the module; any fields.
            op if MODULE_ONLY.contains(&op) => &[],
            _ => &["op"],
        };
        let f = Fields::new(json, &what, known)?;
        Ok(match op.as_str() {
            "standardize" => LayerSpec::Standardize {
                mean: f.string("mean")?,
                std: f.string("std")?,
            },
            "dense" => LayerSpec::Dense {
                weight: f.string("weight")?,
                bias: f.string("bias")?,
            },
            "relu" => LayerSpec::Activation("relu", Activation::Relu),
            "sigmoid" => LayerSpec::Activation("sigmoid", Activation::Sigmoid),
            "tanh" => LayerSpec::Activation("tanh", Activation::Tanh),
            "softmax" => LayerSpec::Activation("softmax", Activation::Softmax),
            "flatten" => LayerSpec::Flatten,
            "conv2d" => LayerSpec::Conv2d {
                weight: f.string("weight")?,
                bias: f.string("bias")?,
                stride: f.opt("stride").map_or(Ok(1), |_| f.usize("stride"))?,
                padding: f.opt("padding").map_or(Ok(0), |_| f.usize("padding"))?,
            },
            "max_pool" | "avg_pool" => LayerSpec::Pool {
                op: if op == "max_pool" {
                    "max_pool"
                } else {
                    "avg_pool"
                },
                kind: if op == "max_pool" {
                    PoolKind::Max
                } else {
                    PoolKind::Avg
                },
                kernel: f.usize("kernel")?,
                stride: f.opt("stride").map(|_| f.usize("stride")).transpose()?,
            },
            op if MODULE_ONLY.contains(&op) => LayerSpec::ModuleOnly(op.into()),
            other => {
                return Err(format!(
                    "{what}: unknown variant `{other}`, expected one of `standardize`, `dense`, `relu`, `sigmoid`, `tanh`, `softmax`, `flatten`, `conv2d`, `max_pool`, `avg_pool`, or one of {MODULE_ONLY:?}"
                ));
            }
        })
    }
}

impl Graph {
    fn parse(text: &str) -> Result<Graph, String> {
        let json = Json::parse(text)?;
        let f = Fields::new(
            &json,
            "graph",
            &[
                "format", "name", "version", "task", "input", "target", "labels", "layers",
            ],
        )?;
        let format = f.usize("format")?;
        let task = f.string("task")?;
        if task != "classification" && task != "regression" {
            return Err(format!(
                "unknown variant `{task}`, expected `classification` or `regression`"
            ));
        }
        let input = Fields::new(f.req("input")?, "input", &["name", "shape", "features"])?;
        let Json::Arr(layers) = f.req("layers")? else {
            return Err("`layers`: expected an array".into());
        };
        Ok(Graph {
            format: u32::try_from(format).unwrap_or(u32::MAX),
            name: f.string("name")?,
            version: f.string("version")?,
            task,
            input_name: input.string("name")?,
            input_shape: input.shape("shape")?,
            features: input.strings("features")?,
            target: f.opt_string("target")?,
            labels: f.strings("labels")?,
            layers: layers
                .iter()
                .enumerate()
                .map(|(i, l)| LayerSpec::parse(l, i))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A tensor of the file: its shape and little-endian f32 data.
struct Tensor<'a> {
    shape: Vec<usize>,
    data: &'a [u8],
}

impl Tensor<'_> {
    fn floats(&self) -> Vec<f32> {
        self.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

/// The safetensors container: an 8-byte little-endian header length, a
/// JSON header (tensor name → dtype, shape, data offsets; `__metadata__` →
/// string map), then the tensor data.
struct Container<'a> {
    metadata: Vec<(String, String)>,
    tensors: Vec<(String, String, Vec<usize>, &'a [u8])>,
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
        // A non-F32 tensor is reported like the host does, after the
        // container is read; only F32 sizes are checked here.
        if dtype == "F32" {
            let elements = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if elements.and_then(|e| e.checked_mul(4)) != Some(slice.len()) {
                return Err(format!(
                    "tensor `{key}`: shape {shape:?} does not match its {} data bytes",
                    slice.len()
                ));
            }
        }
        out.tensors.push((key.clone(), dtype, shape, slice));
    }
    Ok(out)
}

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
    let graph = Graph::parse(json).map_err(|message| LoadError::GraphJson {
        name: name.into(),
        message,
    })?;
    if graph.format != FORMAT_VERSION {
        return Err(LoadError::Format {
            name: name.into(),
            found: graph.format,
        });
    }
    if let Some((layer, LayerSpec::ModuleOnly(op))) = graph
        .layers
        .iter()
        .enumerate()
        .find(|(_, l)| matches!(l, LayerSpec::ModuleOnly(_)))
    {
        return Err(LoadError::ModuleOnly {
            name: name.into(),
            layer,
            op: op.clone(),
        });
    }
    let mut tensors = BTreeMap::new();
    for (tensor, dtype, shape, data) in c.tensors {
        if dtype != "F32" {
            return Err(LoadError::Dtype {
                name: name.into(),
                tensor,
                dtype,
            });
        }
        tensors.insert(tensor, Tensor { shape, data });
    }
    let model = to_kernel(&graph, &tensors)?;
    let meta = Meta {
        output: TensorMeta {
            name: "scores".into(),
            datatype: "FP32".into(),
            shape: std::vec![model.output_len()],
        },
        name: graph.name,
        version: graph.version,
        task: graph.task,
        input: TensorMeta {
            name: graph.input_name,
            datatype: "FP32".into(),
            shape: graph.input_shape,
        },
        features: graph.features,
        target: graph.target,
        labels: graph.labels,
        abi_version: None,
        model_sha256: None,
        kiln_version: None,
        source: "model-file".into(),
    };
    Ok(Loaded { model, meta })
}

/// The host's `ModelFile::to_kernel`, step for step: the same checks in the
/// same order, so the same file fails with the same message.
fn to_kernel(
    graph: &Graph,
    tensors: &BTreeMap<String, Tensor<'_>>,
) -> Result<Model<'static>, LoadError> {
    let input_len = graph
        .input_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n > 0)
        .ok_or_else(|| LoadError::InputShape(graph.input_shape.clone()))?;
    if !graph.features.is_empty() && graph.features.len() != input_len {
        return Err(LoadError::Features {
            features: graph.features.len(),
            inputs: input_len,
        });
    }
    let mut width = input_len;
    // The logical shape of one row, for the layers that need an image.
    let mut shape = graph.input_shape.clone();
    let mut layers = Vec::new();
    for (index, spec) in graph.layers.iter().enumerate() {
        let op = spec.op();
        let tensor = |name: &str| {
            tensors.get(name).ok_or_else(|| LoadError::MissingTensor {
                layer: index,
                op,
                tensor: name.into(),
            })
        };
        let shape_err = |name: &str, t: &Tensor<'_>, expected: String| LoadError::TensorShape {
            layer: index,
            op,
            tensor: name.into(),
            found: t.shape.clone(),
            expected,
        };
        let activation = |kind| Layer::Activation { kind, len: width };
        let image = || match shape.as_slice() {
            &[c, h, w] => Ok((c, h, w)),
            _ => Err(LoadError::NotImage {
                layer: index,
                op,
                found: shape.clone(),
            }),
        };
        let layer = match spec {
            LayerSpec::Standardize { mean, std } => {
                let (m, s) = (tensor(mean)?, tensor(std)?);
                for (name, t) in [(mean, m), (std, s)] {
                    if t.shape != [width] {
                        return Err(shape_err(name, t, format!("[{width}]")));
                    }
                }
                Layer::Standardize {
                    mean: Cow::Owned(m.floats()),
                    inv_std: Cow::Owned(s.floats().iter().map(|&v| 1.0 / v).collect()),
                }
            }
            LayerSpec::Dense { weight, bias } => {
                let (w, b) = (tensor(weight)?, tensor(bias)?);
                let &[outputs, inputs] = w.shape.as_slice() else {
                    return Err(shape_err(weight, w, format!("[outputs, {width}]")));
                };
                if inputs != width {
                    return Err(shape_err(weight, w, format!("[{outputs}, {width}]")));
                }
                if b.shape != [outputs] {
                    return Err(shape_err(bias, b, format!("[{outputs}]")));
                }
                Layer::dense_from_rows(index, inputs, outputs, &w.floats(), b.floats().into())?
            }
            LayerSpec::Activation(_, kind) => activation(*kind),
            LayerSpec::Flatten => {
                shape = std::vec![width];
                continue;
            }
            LayerSpec::Conv2d {
                weight,
                bias,
                stride,
                padding,
            } => {
                let (in_c, in_h, in_w) = image()?;
                let (w, b) = (tensor(weight)?, tensor(bias)?);
                let &[out_c, wc, kh, kw] = w.shape.as_slice() else {
                    return Err(shape_err(weight, w, format!("[out_c, {in_c}, kh, kw]")));
                };
                if wc != in_c {
                    return Err(shape_err(
                        weight,
                        w,
                        format!("[{out_c}, {in_c}, {kh}, {kw}]"),
                    ));
                }
                if b.shape != [out_c] {
                    return Err(shape_err(bias, b, format!("[{out_c}]")));
                }
                let geom = ConvGeom {
                    in_c,
                    in_h,
                    in_w,
                    out_c,
                    kh,
                    kw,
                    stride: *stride,
                    pad: *padding,
                };
                let layer =
                    Layer::conv2d_from_filters(index, geom, &w.floats(), b.floats().into())?;
                shape = std::vec![out_c, geom.out_h(), geom.out_w()];
                layer
            }
            // Refused by `load_model_file` before this runs.
            LayerSpec::ModuleOnly(op) => {
                return Err(LoadError::ModuleOnly {
                    name: String::new(),
                    layer: index,
                    op: op.clone(),
                });
            }
            LayerSpec::Pool {
                kind,
                kernel,
                stride,
                ..
            } => {
                let (c, h, w) = image()?;
                let geom = PoolGeom {
                    c,
                    h,
                    w,
                    k: *kernel,
                    stride: stride.unwrap_or(*kernel),
                };
                geom.check().ok_or(ModelError::Geometry { layer: index })?;
                shape = std::vec![c, geom.out_h(), geom.out_w()];
                Layer::Pool { kind: *kind, geom }
            }
        };
        width = layer.output_len();
        if !matches!(
            layer,
            Layer::Conv2d { .. }
                | Layer::Pool { .. }
                | Layer::Activation { .. }
                | Layer::Standardize { .. }
        ) {
            shape = std::vec![width];
        }
        layers.push(layer);
    }
    let model = Model::new(input_len, layers)?;
    let labels = graph.labels.len();
    if labels != 0 && labels != model.output_len() {
        return Err(LoadError::Labels {
            labels,
            outputs: model.output_len(),
        });
    }
    Ok(model)
}
