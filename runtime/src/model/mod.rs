//! The kiln model file: a safetensors file whose `__metadata__` holds the
//! [`Graph`] as JSON (see `docs/model-format.md`).
//!
//! [`ModelFile`] is the in-memory form. Loading is total — every way a file
//! can be wrong is a [`ModelFileError`] naming the file, layer and tensor —
//! and saving goes through a temporary file and a rename, so a failed save
//! never leaves half a model behind. The graph schema and its conversion into
//! the guest's [`kiln_guest::Model`] live in `kiln_guest::graph` (shared with
//! the browser package); [`ModelFile::to_kernel`] applies it to this file.

mod tensor;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{SafeTensors, tensor::TensorView};

pub use kiln_guest::graph::{
    BinaryScores, ConvertError, Direction, FORMAT_VERSION, GRAPH_FORMAT_VERSION, Graph, InputSpec,
    LayerSpec, METADATA_KEY, PostTransform, QuantParams, Task, Tensor, TensorData, TreeAggregate,
    Wires,
};

use crate::fsutil;

/// Why a model file could not be read, written or understood.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {source}")]
    SafeTensors {
        path: PathBuf,
        source: safetensors::SafeTensorError,
    },
    #[error(
        "{path}: no kiln graph in the safetensors metadata (key `{METADATA_KEY}`); is this a kiln model?"
    )]
    NoGraph { path: PathBuf },
    #[error("{path}: invalid kiln graph JSON: {source}")]
    GraphJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    // Worded as the browser package's (which reads format 1 only) words it.
    #[error(
        "{path}: graph format {found} is not supported (this kiln reads {FORMAT_VERSION}, chains of layers, and {GRAPH_FORMAT_VERSION}, graphs)"
    )]
    Format { path: PathBuf, found: u32 },
    #[error("{path}: tensor `{tensor}` has dtype {dtype}; kiln reads F32, I8 and I32 tensors")]
    Dtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error(
        "{path}: tensor `{tensor}` ({dtype}, shape {shape:?}) holds {found} bytes, but its shape needs {expected}"
    )]
    TensorBytes {
        path: PathBuf,
        tensor: String,
        dtype: String,
        shape: Vec<usize>,
        found: usize,
        expected: usize,
    },
    /// The graph does not fit its tensors or the kernel (names the layer).
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

/// A model: its graph and its tensors, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    pub graph: Graph,
    pub tensors: BTreeMap<String, Tensor>,
}

impl ModelFile {
    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<Self, ModelFileError> {
        let bytes = std::fs::read(path).map_err(|source| ModelFileError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses and validates a model file's bytes; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ModelFileError> {
        let st_err = |source| ModelFileError::SafeTensors {
            path: path.into(),
            source,
        };
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| tensor::explain_invalid(bytes, path).unwrap_or_else(|| st_err(e)))?;
        let json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or_else(|| ModelFileError::NoGraph { path: path.into() })?;
        let graph: Graph =
            serde_json::from_str(json).map_err(|source| ModelFileError::GraphJson {
                path: path.into(),
                source,
            })?;
        if graph.format != FORMAT_VERSION && graph.format != GRAPH_FORMAT_VERSION {
            return Err(ModelFileError::Format {
                path: path.into(),
                found: graph.format,
            });
        }
        let st = SafeTensors::deserialize(bytes).map_err(st_err)?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let Some(data) = tensor::from_le_bytes(view.dtype(), view.data()) else {
                return Err(ModelFileError::Dtype {
                    path: path.into(),
                    tensor: name,
                    dtype: format!("{:?}", view.dtype()),
                });
            };
            tensors.insert(
                name,
                Tensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        let model = ModelFile { graph, tensors };
        model.to_kernel()?;
        Ok(model)
    }

    /// The safetensors bytes of this model.
    pub fn to_bytes(&self) -> Result<Vec<u8>, safetensors::SafeTensorError> {
        let json = serde_json::to_string(&self.graph).expect("graph serialises");
        let metadata = HashMap::from([(METADATA_KEY.to_string(), json)]);
        let views = self
            .tensors
            .iter()
            .map(|(name, t)| {
                Ok((
                    name.as_str(),
                    tensor::dtype(&t.data),
                    t.shape.clone(),
                    t.data.to_le_bytes(),
                ))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
        let views = views
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                Ok((*name, TensorView::new(*dtype, shape.clone(), bytes)?))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
        safetensors::serialize(views, Some(metadata))
    }

    /// Validates and writes the model to `path` (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<(), ModelFileError> {
        self.to_kernel()?;
        let bytes = self
            .to_bytes()
            .map_err(|source| ModelFileError::SafeTensors {
                path: path.into(),
                source,
            })?;
        fsutil::write_atomic(path, &bytes).map_err(|source| ModelFileError::Io {
            path: path.into(),
            source,
        })
    }

    /// Values per input row.
    pub fn input_len(&self) -> Result<usize, ModelFileError> {
        Ok(self.graph.input_len()?)
    }

    /// Builds the graph the kernel runs (the guest's
    /// [`kiln_guest::graph::to_kernel`], which the browser package shares).
    pub fn to_kernel(&self) -> Result<kiln_guest::Model<'static>, ModelFileError> {
        Ok(kiln_guest::graph::to_kernel(&self.graph, &self.tensors)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn sample() -> ModelFile {
        let mut tensors = BTreeMap::new();
        tensors.insert("w".into(), Tensor::new(vec![3, 2], vec![0.5; 6]));
        tensors.insert("b".into(), Tensor::new(vec![3], vec![0.0; 3]));
        ModelFile {
            graph: Graph {
                format: FORMAT_VERSION,
                name: "t".into(),
                version: "1".into(),
                task: Task::Classification,
                input: InputSpec {
                    name: "x".into(),
                    shape: vec![2],
                    features: vec![],
                },
                target: None,
                labels: vec!["a".into(), "b".into(), "c".into()],
                layers: vec![
                    LayerSpec::Dense {
                        weight: "w".into(),
                        bias: "b".into(),
                    },
                    LayerSpec::Softmax,
                ],
                wiring: vec![],
            },
            tensors,
        }
    }

    /// Raw safetensors bytes with a hand-written header.
    fn raw(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
        let h = header.to_string().into_bytes();
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend(h);
        out.extend(data);
        out
    }

    fn err(bytes: &[u8]) -> String {
        ModelFile::from_bytes(bytes, Path::new("m.safetensors"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn round_trips() {
        let m = sample();
        let bytes = m.to_bytes().unwrap();
        assert_eq!(ModelFile::from_bytes(&bytes, Path::new("m")).unwrap(), m);
    }

    #[test]
    fn named_errors() {
        let graph = |layers: serde_json::Value| {
            serde_json::json!({"format": 1, "name": "t", "version": "1", "task": "regression",
                "input": {"name": "x", "shape": [2]}, "layers": layers})
            .to_string()
        };
        let w = |shape: serde_json::Value, end: usize| serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [0, end]});
        let dense = serde_json::json!([{"op": "dense", "weight": "w", "bias": "b"}]);

        // Unknown layer op.
        let h = serde_json::json!({"__metadata__": {"kiln": graph(serde_json::json!([{"op": "conv9"}]))}});
        assert!(
            err(&raw(&h, &[])).contains("unknown variant `conv9`"),
            "{}",
            err(&raw(&h, &[]))
        );

        // Shape × dtype ≠ byte length.
        let h = serde_json::json!({"__metadata__": {"kiln": graph(dense.clone())}, "w": w(serde_json::json!([1, 2]), 4)});
        assert!(
            err(&raw(&h, &[0; 4]))
                .contains("tensor `w` (F32, shape [1, 2]) holds 4 bytes, but its shape needs 8"),
            "{}",
            err(&raw(&h, &[0; 4]))
        );

        // Dimensions that overflow.
        let h = serde_json::json!({"__metadata__": {"kiln": graph(dense.clone())},
            "w": w(serde_json::json!([u64::MAX, 4]), 8)});
        assert!(err(&raw(&h, &[0; 8])).contains("not a valid safetensors file"));

        // Missing tensor, named with its layer.
        let h = serde_json::json!({"__metadata__": {"kiln": graph(dense.clone())}, "w": w(serde_json::json!([1, 2]), 8)});
        assert_eq!(
            err(&raw(&h, &[0; 8])),
            "layer 0 (dense): tensor `b` is missing"
        );

        // A weight that does not fit the layer's input width.
        let h = serde_json::json!({"__metadata__": {"kiln": graph(dense.clone())},
            "w": w(serde_json::json!([1, 3]), 12),
            "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}});
        assert_eq!(
            err(&raw(&h, &[0; 16])),
            "layer 0 (dense): tensor `w` has shape [1, 3], expected [1, 2]"
        );

        // A dtype kiln does not read.
        let h = serde_json::json!({"__metadata__": {"kiln": graph(dense.clone())},
            "w": {"dtype": "F64", "shape": [1, 2], "data_offsets": [0, 16]}});
        assert!(err(&raw(&h, &[0; 16])).contains("tensor `w` has dtype F64"));

        // A dtype kiln reads, in a layer that needs another.
        let h = serde_json::json!({"__metadata__": {"kiln": graph(dense)},
            "w": {"dtype": "I32", "shape": [1, 2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}});
        assert_eq!(
            err(&raw(&h, &[0; 12])),
            "layer 0 (dense): tensor `w` has dtype I32, expected F32"
        );

        // No kiln graph at all.
        let h = serde_json::json!({"w": w(serde_json::json!([1, 2]), 8)});
        assert!(err(&raw(&h, &[0; 8])).contains("no kiln graph"));
    }

    #[test]
    fn non_finite_weights_are_refused() {
        let mut m = sample();
        m.tensors.get_mut("w").unwrap().as_f32_mut().unwrap()[1] = f32::NAN;
        let bytes = m.to_bytes().unwrap();
        assert!(
            err(&bytes).contains("holds NaN or infinity"),
            "{}",
            err(&bytes)
        );
    }

    /// Random corruption of a valid file gives an error or a valid model,
    /// never a panic.
    #[test]
    fn corrupted_files_never_panic() {
        let bytes = sample().to_bytes().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..3000 {
            let mut b = bytes.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            let cut = rng.random_range(0..=b.len());
            let _ = ModelFile::from_bytes(&b[..cut], Path::new("fuzz"));
            let _ = ModelFile::from_bytes(&b, Path::new("fuzz"));
        }
    }

    /// The recurrent layers' JSON (docs/model-format.md, "Recurrent
    /// layers"): read, written back the same, with its defaults, and its
    /// typos refused.
    #[test]
    fn recurrent_layers_read_and_write_the_schema() {
        let lines = [
            r#"{"op":"rnn","hidden":8,"w":"rnn0.w","r":"rnn0.r","b":"rnn0.b","direction":"forward","sequence":false}"#,
            r#"{"op":"gru","hidden":8,"w":"gru0.w","r":"gru0.r","b":"gru0.b","direction":"forward","sequence":false,"linear_before_reset":true}"#,
            r#"{"op":"lstm","hidden":8,"w":"lstm0.w","r":"lstm0.r","b":"lstm0.b","direction":"bidirectional","sequence":true}"#,
            r#"{"op":"gru","hidden":8,"w":"gru0.w","r":"gru0.r","b":"gru0.b","direction":"forward","sequence":false,"linear_before_reset":false,"w_scale":"gru0.w.scale","r_scale":"gru0.r.scale"}"#,
        ];
        for line in lines {
            let spec: LayerSpec = serde_json::from_str(line).unwrap();
            let back: serde_json::Value = serde_json::to_value(&spec).unwrap();
            let want: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(back, want);
        }
        let short: LayerSpec =
            serde_json::from_str(r#"{"op":"lstm","hidden":4,"w":"w","r":"r","b":"b"}"#).unwrap();
        assert_eq!(
            short,
            LayerSpec::recurrent(
                kiln_guest::Cell::Lstm,
                4,
                ["w", "r", "b"].map(String::from),
                Direction::Forward,
                false
            )
        );
        for bad in [
            // A GRU must say which formulation it is.
            r#"{"op":"gru","hidden":4,"w":"w","r":"r","b":"b"}"#,
            r#"{"op":"rnn","hidden":4,"w":"w","r":"r","b":"b","direction":"backward"}"#,
            r#"{"op":"rnn","hidden":4,"w":"w","r":"r","b":"b","sequense":true}"#,
            r#"{"op":"lstm","hidden":4,"w":"w","r":"r","b":"b","linear_before_reset":true}"#,
        ] {
            assert!(serde_json::from_str::<LayerSpec>(bad).is_err(), "{bad}");
        }
    }
}
