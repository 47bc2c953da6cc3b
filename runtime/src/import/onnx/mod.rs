//! ONNX import: `ModelProto` bytes → a kiln [`ModelFile`].
//!
//! Three steps, each total:
//!
//! 1. **Decode** the protobuf ([`proto`], prost) and check the envelope: a
//!    graph, opsets kiln knows ([`MAX_OPSET`], [`MAX_ML_OPSET`]), one input.
//! 2. **Select** the output (by name, or the one float tensor output) and
//!    keep only the nodes it depends on — so a scikit-learn classifier's
//!    label branch (`ArgMax`, `ArrayFeatureExtractor`, `Cast`) is dropped.
//! 3. **Lower** the nodes in order into kiln layers (`lower.rs`): constants
//!    are folded, `MatMul`+`Add` and `Gemm` become dense layers, batch
//!    norms fold into the dense layer before them, elementwise constants
//!    become per-channel scale-and-shift layers. kiln graphs are a chain, so
//!    every computed value must flow from the single input through one path.
//!
//! The supported set is documented in `docs/onnx.md`.

mod lower;
pub mod proto;
mod tensor;

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use prost::Message;

use crate::model::{ModelFile, ModelFileError, Task};

/// The newest default-domain (`ai.onnx`) opset whose semantics kiln
/// implements for every op it imports. (Opsets 22–25 only added data types
/// to those ops.)
pub const MAX_OPSET: i64 = 25;
/// The newest `ai.onnx.ml` opset kiln accepts.
pub const MAX_ML_OPSET: i64 = 5;

/// Why a model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not an ONNX model: {0}")]
    NotOnnx(String),
    #[error(
        "the model uses opset {version} of the `{domain}` domain; kiln supports opsets up to {max} \
         (re-export with an older opset, e.g. torch.onnx.export(..., opset_version={max}))"
    )]
    Opset {
        domain: String,
        version: i64,
        max: i64,
    },
    #[error("tensor `{tensor}`: {problem}")]
    Tensor { tensor: String, problem: String },
    #[error("{node}: {problem}")]
    Node { node: String, problem: String },
    #[error("{0}")]
    Graph(String),
    #[error("the imported graph is invalid: {0}")]
    Model(#[from] ModelFileError),
}

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The graph output to import; `None` picks the only float tensor output.
    pub output: Option<String>,
    /// The kiln model's name.
    pub name: String,
    /// `None`: classification when the graph ends in a softmax or a
    /// classifier, regression otherwise.
    pub task: Option<Task>,
}

/// An imported model and what the importer decided on the way.
#[derive(Debug, Clone)]
pub struct Imported {
    pub model: ModelFile,
    /// Human-readable notes (the output chosen, nodes removed).
    pub notes: Vec<String>,
    /// ONNX nodes lowered (after pruning).
    pub nodes: usize,
}

/// A node, as errors name it: `node 3 "fc1" (Gemm)`.
#[derive(Debug, Clone)]
pub(crate) struct NodeRef {
    index: usize,
    name: String,
    op: String,
}

impl NodeRef {
    pub(crate) fn err(&self, problem: impl Into<String>) -> ImportError {
        ImportError::Node {
            node: self.to_string(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "node {} ({})", self.index, self.op)
        } else {
            write!(f, "node {} {:?} ({})", self.index, self.name, self.op)
        }
    }
}

/// Imports an ONNX model from its bytes.
pub fn import(bytes: &[u8], options: &Options) -> Result<Imported, ImportError> {
    let model = proto::ModelProto::decode(bytes)
        .map_err(|e| ImportError::NotOnnx(format!("the protobuf does not decode ({e})")))?;
    let Some(graph) = &model.graph else {
        return Err(ImportError::NotOnnx("it has no graph".into()));
    };
    if model.ir_version <= 0 {
        return Err(ImportError::NotOnnx(format!(
            "its IR version is {} (ONNX files declare 1 or more)",
            model.ir_version
        )));
    }
    let mut opset = None;
    let mut ml_opset = None;
    for o in &model.opset_import {
        match o.domain.as_str() {
            "" | "ai.onnx" => opset = Some(o.version),
            "ai.onnx.ml" => ml_opset = Some(o.version),
            _ => {}
        }
    }
    let opset = opset.ok_or_else(|| {
        ImportError::NotOnnx("it imports no opset of the default domain (ai.onnx)".into())
    })?;
    for (domain, version, max) in [
        ("ai.onnx", Some(opset), MAX_OPSET),
        ("ai.onnx.ml", ml_opset, MAX_ML_OPSET),
    ] {
        if let Some(v) = version
            && !(1..=max).contains(&v)
        {
            return Err(ImportError::Opset {
                domain: domain.into(),
                version: v,
                max,
            });
        }
    }
    if !graph.sparse_initializer.is_empty() {
        return Err(ImportError::Graph(
            "sparse initializers are not supported".into(),
        ));
    }

    let mut notes = Vec::new();
    let output = select_output(graph, options.output.as_deref(), &mut notes)?;
    let needed = needed_nodes(graph, &output);
    let pruned = graph.node.len() - needed.len();
    if pruned > 0 {
        notes.push(format!(
            "dropped {pruned} node(s) that output `{output}` does not depend on"
        ));
    }
    let lowered = lower::lower(graph, opset, &needed, &output, options, &mut notes)?;
    Ok(Imported {
        model: lowered,
        notes,
        nodes: needed.len(),
    })
}

/// The graph output to import.
fn select_output(
    graph: &proto::GraphProto,
    wanted: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<String, ImportError> {
    let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    if let Some(w) = wanted {
        if !names.contains(&w) {
            return Err(ImportError::Graph(format!(
                "the graph has no output `{w}`; its outputs are {names:?}"
            )));
        }
        return Ok(w.into());
    }
    // A ZipMap's list of maps is its input's float tensor to kiln.
    let zipmap = |name: &str| {
        graph
            .node
            .iter()
            .any(|n| n.op_type == "ZipMap" && n.output.first().is_some_and(|o| o == name))
    };
    let floats: Vec<&str> = graph
        .output
        .iter()
        .filter(|o| {
            zipmap(&o.name)
                || o.r#type
                    .as_ref()
                    .and_then(|t| t.tensor_type.as_ref())
                    .is_some_and(|t| t.elem_type == proto::data_type::FLOAT)
        })
        .map(|o| o.name.as_str())
        .collect();
    match floats.as_slice() {
        [one] => {
            if names.len() > 1 {
                notes.push(format!(
                    "imported output `{one}`, the only float tensor among {names:?}"
                ));
            }
            Ok((*one).into())
        }
        [] => Err(ImportError::Graph(format!(
            "no output is a float tensor or a ZipMap's (outputs: {names:?})"
        ))),
        many => Err(ImportError::Graph(format!(
            "the graph has several float outputs {many:?}; choose one with --output NAME"
        ))),
    }
}

/// Indices of the nodes `output` depends on, in graph order.
fn needed_nodes(graph: &proto::GraphProto, output: &str) -> BTreeSet<usize> {
    let mut wanted: HashSet<&str> = HashSet::from([output]);
    let mut needed = BTreeSet::new();
    for (i, node) in graph.node.iter().enumerate().rev() {
        if node.output.iter().any(|o| wanted.contains(o.as_str())) {
            needed.insert(i);
            wanted.extend(node.input.iter().map(String::as_str));
        }
    }
    needed
}
