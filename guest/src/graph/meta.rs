//! [`ModuleMeta`]: what a model module says about itself in its
//! [`META_SECTION`] custom section, as JSON — defined once, here. The host
//! writes it (`kiln build`) and reads it with serde (`kiln::module`); the
//! browser package reads it with its own small JSON reader into this same
//! struct.

use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::{Graph, Task};

/// Name of the custom section holding [`ModuleMeta`] JSON.
pub const META_SECTION: &str = "kiln.meta";

/// One tensor of the module's signature, in KServe v2 terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorMeta {
    pub name: String,
    pub datatype: String,
    /// Shape of one row (without the batch dimension).
    pub shape: Vec<usize>,
}

/// What a module says about itself in its `kiln.meta` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleMeta {
    pub abi_version: i32,
    pub name: String,
    pub version: String,
    pub task: Task,
    pub input: TensorMeta,
    pub output: TensorMeta,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The input features (indices into a row) where a NaN is a missing
    /// value the model routes by a learned direction (tree ensembles,
    /// [`crate::Model::missing_features`]); hosts refuse a NaN elsewhere,
    /// naming the feature.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<usize>,
    /// Hex sha256 of the model file the module was built from.
    pub model_sha256: String,
    pub kiln_version: String,
}

impl TensorMeta {
    /// The f32 input tensor a model file's graph declares.
    pub fn input(graph: &Graph) -> Self {
        TensorMeta {
            name: graph.input.name.clone(),
            datatype: "FP32".into(),
            shape: graph.input.shape.clone(),
        }
    }

    /// The f32 `scores` a model with `len` output values per row writes.
    pub fn scores(len: usize) -> Self {
        TensorMeta {
            name: "scores".into(),
            datatype: "FP32".into(),
            shape: std::vec![len],
        }
    }
}
