//! The kiln graph JSON of a model file → the shared [`Graph`] schema,
//! read with the package's small JSON reader ([`super::json`]) instead of
//! `serde_json`, whose derive code would double the package.
//!
//! Every op of [`LayerSpec`] is read with the same field names, defaults
//! and unknown-field refusals as the host's serde schema (the host's tests
//! in tests/e2e/browser.rs check both give the same graphs); the
//! conversion into a `Model` is then the shared
//! [`kiln_guest::graph::to_kernel_float`]. Recurrent ops are refused here,
//! by name, in a build without the recurrent family, and with int8 weights
//! (`w_scale`, `r_scale`) in every build (the package leaves them out), so
//! none of their reading is linked in. The ops in [`MODULE_ONLY`] — int8
//! layers, whose integers the host derives, `leaky_relu`, `clip`,
//! `hard_sigmoid` and `tree_ensemble` — are the ones with float
//! parameters: the page reads them from compiled modules,
//! so neither a float parser nor the int8 derivation is linked into the
//! package (~45 KB; docs/web.md).

use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use super::json::Json;
use kiln_guest::Cell;
use kiln_guest::graph::{Direction, GRAPH_FORMAT_VERSION, Graph, InputSpec, LayerSpec, Task};

/// `` `a`, `b`, `c` `` as serde lists expected names (no `Debug`
/// formatting, whose string escaping costs the package ~3 KB).
fn one_of<'n>(names: impl Iterator<Item = &'n str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Field access on a JSON object, with serde-like messages.
pub(super) struct Fields<'j, 'a> {
    json: &'j Json<'a>,
}

impl<'j, 'a> Fields<'j, 'a> {
    /// `json` must be an object whose keys are all in `known`
    /// (the host's `deny_unknown_fields`); pass `&[]` to allow any.
    pub(super) fn new(json: &'j Json<'a>, what: &str, known: &[&str]) -> Result<Self, String> {
        let Json::Obj(fields) = json else {
            return Err(format!("{what}: expected an object, found {}", json.kind()));
        };
        let unknown = fields
            .iter()
            .find(|(k, _)| !known.is_empty() && !known.contains(&k.as_str()));
        if let Some((k, _)) = unknown {
            return Err(format!(
                "{what}: unknown field `{k}`, expected one of {}",
                one_of(known.iter().copied())
            ));
        }
        Ok(Fields { json })
    }

    pub(super) fn opt(&self, key: &str) -> Option<&'j Json<'a>> {
        self.json.get(key).filter(|v| **v != Json::Null)
    }

    pub(super) fn req(&self, key: &str) -> Result<&'j Json<'a>, String> {
        self.opt(key)
            .ok_or_else(|| format!("missing field `{key}`"))
    }

    pub(super) fn string(&self, key: &str) -> Result<String, String> {
        let v = self.req(key)?;
        v.as_str()
            .map(String::from)
            .ok_or_else(|| format!("`{key}`: expected a string, found {}", v.kind()))
    }

    pub(super) fn opt_string(&self, key: &str) -> Result<Option<String>, String> {
        self.opt(key).map(|_| self.string(key)).transpose()
    }

    pub(super) fn usize(&self, key: &str) -> Result<usize, String> {
        let v = self.req(key)?;
        v.as_usize().ok_or_else(|| {
            format!(
                "`{key}`: expected a non-negative integer, found {}",
                v.kind()
            )
        })
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>, String> {
        self.opt(key).map(|_| self.usize(key)).transpose()
    }

    /// A boolean: when absent, `false` (serde's `#[serde(default)]`) or,
    /// if `required`, an error; `null` is refused either way, as by serde.
    fn bool(&self, key: &str, required: bool) -> Result<bool, String> {
        match self.json.get(key) {
            Some(Json::Bool(b)) => Ok(*b),
            None if !required => Ok(false),
            None => Err(format!("missing field `{key}`")),
            Some(v) => Err(format!("`{key}`: expected a boolean, found {}", v.kind())),
        }
    }

    pub(super) fn list<T>(
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
        // A loop, not `collect::<Result<_, _>>()`: smaller in the package.
        let mut out = Vec::with_capacity(items.len());
        for j in items {
            match item(j) {
                Some(v) => out.push(v),
                None => {
                    return Err(format!("`{key}`: expected {expected}, found {}", j.kind()));
                }
            }
        }
        Ok(out)
    }

    pub(super) fn strings(&self, key: &str) -> Result<Vec<String>, String> {
        self.list(key, false, |j| j.as_str().map(String::from), "strings")
    }

    pub(super) fn shape(&self, key: &str) -> Result<Vec<usize>, String> {
        self.list(key, true, Json::as_usize, "non-negative integers")
    }
}

/// Ops read from compiled modules only (see the module note).
pub(super) const MODULE_ONLY: [&str; 8] = [
    "quantize",
    "quantize_dynamic",
    "dense_int8",
    "conv2d_int8",
    "leaky_relu",
    "clip",
    "hard_sigmoid",
    "tree_ensemble",
];

/// Why a graph could not be read.
pub(super) enum ReadError {
    /// Not the graph schema (the host's serde error, in words).
    Json(String),
    /// A layer in [`MODULE_ONLY`].
    ModuleOnly { layer: usize, op: String },
    /// A graph-format model (format 2), read from its module only.
    GraphFile,
    /// A recurrent layer in a build without the guest family `feature`.
    NotInPackage {
        layer: usize,
        op: &'static str,
        feature: &'static str,
    },
}

impl From<String> for ReadError {
    fn from(e: String) -> Self {
        ReadError::Json(e)
    }
}

/// The ops of the format and the fields each may carry (besides `op`).
const OPS: [(&str, &[&str]); 27] = [
    ("standardize", &["mean", "std"]),
    ("dense", &["weight", "bias"]),
    ("relu", &[]),
    ("sigmoid", &[]),
    ("tanh", &[]),
    ("softmax", &[]),
    ("flatten", &[]),
    ("reshape", &["shape"]),
    (
        "conv2d",
        &[
            "weight", "bias", "stride", "padding", "pads", "dilation", "groups",
        ],
    ),
    ("max_pool", &["kernel", "stride"]),
    ("avg_pool", &["kernel", "stride"]),
    ("quantize", &["scale", "zero_point"]),
    ("quantize_dynamic", &[]),
    (
        "dense_int8",
        &["weight", "weight_scale", "bias", "output", "relu"],
    ),
    (
        "conv2d_int8",
        &[
            "weight",
            "weight_scale",
            "bias",
            "stride",
            "padding",
            "output",
            "relu",
        ],
    ),
    ("leaky_relu", &["alpha"]),
    ("clip", &["min", "max"]),
    ("hard_sigmoid", &["alpha", "beta"]),
    ("hard_swish", &[]),
    ("group_softmax", &["group"]),
    ("log_softmax", &["group"]),
    ("scale_shift", &["scale", "shift"]),
    ("prelu", &["slope"]),
    ("global_avg_pool", &["channels"]),
    ("rnn", RECURRENT),
    ("gru", GRU),
    ("lstm", RECURRENT),
];

/// The fields of `gru`, in the host schema's order.
const GRU: &[&str] = &[
    "hidden",
    "w",
    "r",
    "b",
    "direction",
    "sequence",
    "w_scale",
    "r_scale",
    "linear_before_reset",
];

/// The fields of `rnn` and `lstm`: `gru`'s but `linear_before_reset`.
const RECURRENT: &[&str] = match GRU.split_last() {
    Some((_, rest)) => rest,
    None => &[],
};

/// A recurrent layer's `direction`: `"forward"` when absent.
fn direction(f: &Fields<'_, '_>) -> Result<Direction, String> {
    match f.json.get("direction") {
        None => Ok(Direction::Forward),
        Some(Json::Str(s)) if s == "forward" => Ok(Direction::Forward),
        Some(Json::Str(s)) if s == "bidirectional" => Ok(Direction::Bidirectional),
        Some(Json::Str(s)) => Err(format!(
            "`direction`: unknown variant `{s}`, expected `forward` or `bidirectional`"
        )),
        Some(v) => Err(format!(
            "`direction`: expected a string, found {}",
            v.kind()
        )),
    }
}

fn layer(json: &Json<'_>, index: usize) -> Result<LayerSpec, ReadError> {
    let what = format!("layers[{index}]");
    let op = Fields::new(json, &what, &[])?.string("op")?;
    if MODULE_ONLY.contains(&op.as_str()) {
        return Err(ReadError::ModuleOnly { layer: index, op });
    }
    let Some((_, fields)) = OPS.iter().find(|(name, _)| *name == op) else {
        let names = one_of(OPS.iter().map(|(name, _)| *name));
        return Err(format!("{what}: unknown variant `{op}`, expected one of {names}").into());
    };
    let known: Vec<&str> = ["op"].into_iter().chain(fields.iter().copied()).collect();
    let f = Fields::new(json, &what, &known)?;
    Ok(match op.as_str() {
        "standardize" => LayerSpec::Standardize {
            mean: f.string("mean")?,
            std: f.string("std")?,
        },
        "dense" => LayerSpec::Dense {
            weight: f.string("weight")?,
            bias: f.string("bias")?,
        },
        "relu" => LayerSpec::Relu,
        "sigmoid" => LayerSpec::Sigmoid,
        "tanh" => LayerSpec::Tanh,
        "softmax" => LayerSpec::Softmax,
        "flatten" => LayerSpec::Flatten,
        "reshape" => LayerSpec::Reshape {
            shape: f.shape("shape")?,
        },
        "conv2d" => LayerSpec::Conv2d {
            weight: f.string("weight")?,
            bias: f.string("bias")?,
            stride: f.opt_usize("stride")?.unwrap_or(1),
            padding: f.opt_usize("padding")?.unwrap_or(0),
            pads: match f.list("pads", false, Json::as_usize, "non-negative integers")?[..] {
                [] if f.opt("pads").is_none() => None,
                [t, l, b, r] => Some([t, l, b, r]),
                _ => return Err("`pads`: expected an array of length 4".to_string().into()),
            },
            dilation: f.opt_usize("dilation")?.unwrap_or(1),
            groups: f.opt_usize("groups")?.unwrap_or(1),
        },
        "max_pool" => LayerSpec::MaxPool {
            kernel: f.usize("kernel")?,
            stride: f.opt_usize("stride")?,
        },
        "avg_pool" => LayerSpec::AvgPool {
            kernel: f.usize("kernel")?,
            stride: f.opt_usize("stride")?,
        },
        "group_softmax" => LayerSpec::GroupSoftmax {
            group: f.usize("group")?,
        },
        "log_softmax" => LayerSpec::LogSoftmax {
            group: f.opt_usize("group")?,
        },
        "scale_shift" => LayerSpec::ScaleShift {
            scale: f.string("scale")?,
            shift: f.string("shift")?,
        },
        "prelu" => LayerSpec::PRelu {
            slope: f.string("slope")?,
        },
        "hard_swish" => LayerSpec::HardSwish,
        "rnn" | "gru" | "lstm" if !cfg!(feature = "rnn") || f.opt("w_scale").is_some() => {
            let op = ["rnn", "gru", "lstm"].into_iter().find(|o| *o == op);
            return Err(ReadError::NotInPackage {
                layer: index,
                op: op.unwrap_or_default(),
                feature: if cfg!(feature = "rnn") {
                    "int8-rnn"
                } else {
                    "rnn"
                },
            });
        }
        "rnn" | "gru" | "lstm" => {
            let cell = match op.as_str() {
                "rnn" => Cell::Rnn,
                "gru" => Cell::Gru {
                    linear_before_reset: f.bool("linear_before_reset", true)?,
                },
                _ => Cell::Lstm,
            };
            let names = [f.string("w")?, f.string("r")?, f.string("b")?];
            let (direction, sequence) = (direction(&f)?, f.bool("sequence", false)?);
            if f.opt("r_scale").is_some() {
                return Err("`w_scale` and `r_scale` go together".to_string().into());
            }
            LayerSpec::recurrent(cell, f.usize("hidden")?, names, direction, sequence)
        }
        _ => LayerSpec::GlobalAvgPool {
            channels: f.usize("channels")?,
        },
    })
}

/// The `task` field of a graph or a module's `kiln.meta`.
pub(super) fn task(f: &Fields<'_, '_>) -> Result<Task, String> {
    match f.string("task")?.as_str() {
        "classification" => Ok(Task::Classification),
        "regression" => Ok(Task::Regression),
        other => Err(format!(
            "unknown variant `{other}`, expected `classification` or `regression`"
        )),
    }
}

/// Parses the graph JSON of a model file.
pub(super) fn graph(text: &str) -> Result<Graph, ReadError> {
    let json = Json::parse(text)?;
    // A graph-format model (its own fields and ops) is refused as a whole.
    if Fields::new(&json, "graph", &[])?.opt_usize("format")? == Some(GRAPH_FORMAT_VERSION as usize)
    {
        return Err(ReadError::GraphFile);
    }
    let f = Fields::new(
        &json,
        "graph",
        &[
            "format", "name", "version", "task", "input", "target", "labels", "layers",
        ],
    )?;
    let format = f.usize("format")?;
    let task = task(&f)?;
    let input = Fields::new(f.req("input")?, "input", &["name", "shape", "features"])?;
    let Json::Arr(layers) = f.req("layers")? else {
        return Err(ReadError::Json("`layers`: expected an array".to_string()));
    };
    Ok(Graph {
        format: u32::try_from(format).unwrap_or(u32::MAX),
        name: f.string("name")?,
        version: f.string("version")?,
        task,
        input: InputSpec {
            name: input.string("name")?,
            shape: input.shape("shape")?,
            features: input.strings("features")?,
        },
        target: f.opt_string("target")?,
        labels: f.strings("labels")?,
        // Graph-format models (format 2) are refused above.
        wiring: Vec::new(),
        layers: {
            let mut specs = Vec::with_capacity(layers.len());
            for (i, l) in layers.iter().enumerate() {
                specs.push(layer(l, i)?);
            }
            specs
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(layers: &str) -> Result<Graph, ReadError> {
        graph(&format!(
            r#"{{"format": 1, "name": "n", "version": "1", "task": "regression",
            "input": {{"name": "x", "shape": [1, 4, 4]}}, "layers": [{layers}]}}"#
        ))
    }

    fn message(layers: &str) -> String {
        match read(layers) {
            Err(ReadError::Json(m)) => m,
            Err(ReadError::ModuleOnly { op, .. }) => format!("module only: {op}"),
            Err(ReadError::GraphFile) => "graph file".into(),
            Err(ReadError::NotInPackage { op, feature, .. }) => format!("{op} needs {feature}"),
            Ok(_) => "accepted".into(),
        }
    }

    #[test]
    fn ops_read_with_their_fields_and_defaults() {
        let g = read(
            r#"{"op": "conv2d", "weight": "w", "bias": "b"},
            {"op": "max_pool", "kernel": 2}, {"op": "log_softmax"},
            {"op": "group_softmax", "group": 2}, {"op": "global_avg_pool", "channels": 1}"#,
        )
        .ok()
        .unwrap();
        assert_eq!(
            g.layers,
            [
                LayerSpec::Conv2d {
                    weight: "w".into(),
                    bias: "b".into(),
                    stride: 1,
                    padding: 0,
                    pads: None,
                    dilation: 1,
                    groups: 1,
                },
                LayerSpec::MaxPool {
                    kernel: 2,
                    stride: None
                },
                LayerSpec::LogSoftmax { group: None },
                LayerSpec::GroupSoftmax { group: 2 },
                LayerSpec::GlobalAvgPool { channels: 1 },
            ]
        );
    }

    #[test]
    #[cfg(not(feature = "rnn"))]
    fn recurrent_ops_are_refused_without_the_family() {
        for op in ["rnn", "gru", "lstm"] {
            let layer = format!(r#"{{"op": "{op}", "hidden": 3, "w": "w", "r": "r", "b": "b"}}"#);
            assert_eq!(message(&layer), format!("{op} needs rnn"));
        }
    }

    #[test]
    #[cfg(feature = "rnn")]
    fn recurrent_ops_read_with_their_defaults() {
        let g = read(
            r#"{"op": "gru", "hidden": 4, "w": "w", "r": "r", "b": "b", "linear_before_reset": false,
                "direction": "bidirectional", "sequence": true},
            {"op": "lstm", "hidden": 3, "w": "w2", "r": "r2", "b": "b2"},
            {"op": "rnn", "hidden": 2, "w": "w3", "r": "r3", "b": "b3", "sequence": false}"#,
        )
        .ok()
        .unwrap();
        let names = |n: &str| [format!("w{n}"), format!("r{n}"), format!("b{n}")];
        let gru = Cell::Gru {
            linear_before_reset: false,
        };
        let (fwd, bi) = (Direction::Forward, Direction::Bidirectional);
        assert_eq!(
            g.layers,
            [
                LayerSpec::recurrent(gru, 4, ["w", "r", "b"].map(String::from), bi, true),
                LayerSpec::recurrent(Cell::Lstm, 3, names("2"), fwd, false),
                LayerSpec::recurrent(Cell::Rnn, 2, names("3"), fwd, false),
            ]
        );
        // int8 weights: never in the package.
        let int8 = r#"{"op": "lstm", "hidden": 3, "w": "w", "r": "r", "b": "b", "w_scale": "ws", "r_scale": "rs"}"#;
        let Err(ReadError::NotInPackage { layer, op, feature }) = read(int8) else {
            panic!("int8 weights read");
        };
        assert_eq!((layer, op, feature), (0, "lstm", "int8-rnn"));
        let gru = r#""op": "gru", "hidden": 4, "w": "w", "r": "r", "b": "b""#;
        assert_eq!(
            message(&format!("{{{gru}}}")),
            "missing field `linear_before_reset`"
        );
        assert_eq!(
            message(&format!(
                r#"{{{gru}, "linear_before_reset": true, "direction": "backward"}}"#
            )),
            "`direction`: unknown variant `backward`, expected `forward` or `bidirectional`"
        );
        assert_eq!(
            message(&format!(r#"{{{gru}, "linear_before_reset": 1}}"#)),
            "`linear_before_reset`: expected a boolean, found a number"
        );
        assert!(
            message(
                r#"{"op": "lstm", "hidden": 3, "w": "w", "r": "r", "b": "b", "peepholes": "p"}"#
            )
            .contains("unknown field `peepholes`")
        );
    }

    #[test]
    fn graph_format_files_are_refused_whole() {
        let g = graph(r#"{"format": 2, "wiring": [], "layers": [{"op": "add"}]}"#);
        assert!(matches!(g, Err(ReadError::GraphFile)));
    }

    #[test]
    fn bad_layers_are_named() {
        assert!(message(r#"{"op": "conv9"}"#).contains("unknown variant `conv9`"));
        assert!(message(r#"{"op": "relu", "alpha": 1}"#).contains("unknown field `alpha`"));
        assert!(message(r#"{"op": "max_pool", "kernel": -1}"#).contains("`kernel`"));
        assert_eq!(
            message(r#"{"op": "relu"}, {"op": "dense_int8"}"#),
            "module only: dense_int8"
        );
    }
}
