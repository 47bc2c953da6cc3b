//! The kiln model file: a safetensors file whose `__metadata__` holds the
//! [`Graph`] as JSON (see `docs/model-format.md`).
//!
//! [`ModelFile`] is the in-memory form. Loading is total — every way a file
//! can be wrong is a [`ModelFileError`] naming the file, layer and tensor —
//! and saving goes through a temporary file and a rename, so a failed save
//! never leaves half a model behind. [`ModelFile::to_kernel`] turns the file
//! into the guest's [`kiln_guest::Model`], the graph the kernel runs natively
//! and inside modules.

mod graph;
mod int8;
mod tensor;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kiln_guest::{Activation, ConvGeom, Layer, PoolGeom, PoolKind};
use safetensors::{SafeTensors, tensor::TensorView};

pub use graph::{FORMAT_VERSION, Graph, InputSpec, LayerSpec, METADATA_KEY, QuantParams, Task};
pub use tensor::{Tensor, TensorData};

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
    #[error("{path}: graph format {found} is not supported (this kiln reads {FORMAT_VERSION})")]
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
    #[error("layer {layer} ({op}): tensor `{tensor}` has dtype {found}, expected {expected}")]
    TensorDtype {
        layer: usize,
        op: &'static str,
        tensor: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("layer {layer} ({op}): {what}")]
    Quant {
        layer: usize,
        op: &'static str,
        what: String,
    },
    #[error("layer {layer} ({op}): tensor `{tensor}` is missing")]
    MissingTensor {
        layer: usize,
        op: &'static str,
        tensor: String,
    },
    #[error("layer {layer} ({op}): tensor `{tensor}` has shape {found:?}, expected {expected}")]
    TensorShape {
        layer: usize,
        op: &'static str,
        tensor: String,
        found: Vec<usize>,
        expected: String,
    },
    #[error(
        "layer {layer} ({op}) needs a [channels, height, width] input, but receives shape {found:?}; give the model input a 3-D shape (e.g. `kiln train --shape 1x8x8`)"
    )]
    NotImage {
        layer: usize,
        op: &'static str,
        found: Vec<usize>,
    },
    #[error("layer {layer} ({op}): {param} = {value} must divide the row of {width} values")]
    Divide {
        layer: usize,
        op: &'static str,
        param: &'static str,
        value: usize,
        width: usize,
    },
    #[error("input shape {0:?} is empty or overflows")]
    InputShape(Vec<usize>),
    #[error("{labels} labels for {outputs} outputs")]
    Labels { labels: usize, outputs: usize },
    #[error("{features} feature names for {inputs} inputs")]
    Features { features: usize, inputs: usize },
    #[error("invalid graph: {0}")]
    Graph(#[from] kiln_guest::ModelError),
}

/// `value` if it is positive and divides `width`.
fn divisor(
    layer: usize,
    op: &'static str,
    param: &'static str,
    value: usize,
    width: usize,
) -> Result<usize, ModelFileError> {
    if value == 0 || !width.is_multiple_of(value) {
        return Err(ModelFileError::Divide {
            layer,
            op,
            param,
            value,
            width,
        });
    }
    Ok(value)
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
        if graph.format != FORMAT_VERSION {
            return Err(ModelFileError::Format {
                path: path.into(),
                found: graph.format,
            });
        }
        let st = SafeTensors::deserialize(bytes).map_err(st_err)?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let Some(data) = TensorData::from_le_bytes(view.dtype(), view.data()) else {
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
                    t.data.dtype(),
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
        self.graph
            .input
            .values_per_row()
            .filter(|&n| n > 0)
            .ok_or_else(|| ModelFileError::InputShape(self.graph.input.shape.clone()))
    }

    /// Builds the graph the kernel runs, checking every tensor's shape
    /// against its layer and every layer's width against the one before.
    pub fn to_kernel(&self) -> Result<kiln_guest::Model<'static>, ModelFileError> {
        let input_len = self.input_len()?;
        if !self.graph.input.features.is_empty() && self.graph.input.features.len() != input_len {
            return Err(ModelFileError::Features {
                features: self.graph.input.features.len(),
                inputs: input_len,
            });
        }
        let mut width = input_len;
        // The logical shape of one row, for the layers that need an image.
        let mut shape = self.graph.input.shape.clone();
        let mut layers = Vec::new();
        let mut quant = int8::QuantState::F32;
        for (index, spec) in self.graph.layers.iter().enumerate() {
            let op = spec.op();
            let tensor = |name: &str| {
                self.tensors
                    .get(name)
                    .ok_or_else(|| ModelFileError::MissingTensor {
                        layer: index,
                        op,
                        tensor: name.into(),
                    })
            };
            let shape_err =
                |name: &str, t: &Tensor, expected: String| ModelFileError::TensorShape {
                    layer: index,
                    op,
                    tensor: name.into(),
                    found: t.shape.clone(),
                    expected,
                };
            let activation = |kind| Layer::Activation { kind, len: width };
            let image = || match shape.as_slice() {
                &[c, h, w] => Ok((c, h, w)),
                _ => Err(ModelFileError::NotImage {
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
                    let (m, s) = (m.f32_data(index, op, mean)?, s.f32_data(index, op, std)?);
                    Layer::Standardize {
                        mean: m.to_vec().into(),
                        inv_std: s.iter().map(|&v| 1.0 / v).collect::<Vec<_>>().into(),
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
                    let (w, b) = (w.f32_data(index, op, weight)?, b.f32_data(index, op, bias)?);
                    Layer::dense_from_rows(index, inputs, outputs, w, b.to_vec().into())?
                }
                LayerSpec::Quantize { .. }
                | LayerSpec::QuantizeDynamic
                | LayerSpec::DenseInt8 { .. } => int8::layer(self, index, spec, width, &mut quant)?,
                LayerSpec::Relu => activation(Activation::Relu),
                LayerSpec::Sigmoid => activation(Activation::Sigmoid),
                LayerSpec::Tanh => activation(Activation::Tanh),
                LayerSpec::Softmax => activation(Activation::Softmax),
                LayerSpec::Flatten => {
                    shape = vec![width];
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
                    let (w, b) = (w.f32_data(index, op, weight)?, b.f32_data(index, op, bias)?);
                    let layer = Layer::conv2d_from_filters(index, geom, w, b.to_vec().into())?;
                    shape = vec![out_c, geom.out_h(), geom.out_w()];
                    layer
                }
                LayerSpec::MaxPool { kernel, stride } | LayerSpec::AvgPool { kernel, stride } => {
                    let (c, h, w) = image()?;
                    let kind = match spec {
                        LayerSpec::MaxPool { .. } => PoolKind::Max,
                        _ => PoolKind::Avg,
                    };
                    let geom = PoolGeom {
                        c,
                        h,
                        w,
                        k: *kernel,
                        stride: stride.unwrap_or(*kernel),
                    };
                    geom.check()
                        .ok_or(kiln_guest::ModelError::Geometry { layer: index })?;
                    shape = vec![c, geom.out_h(), geom.out_w()];
                    Layer::Pool { kind, geom }
                }
                LayerSpec::LeakyRelu { alpha } => Layer::LeakyRelu {
                    alpha: *alpha,
                    len: width,
                },
                LayerSpec::GroupSoftmax { group } => Layer::GroupSoftmax {
                    width,
                    group: divisor(index, op, "group", *group, width)?,
                    log: false,
                },
                LayerSpec::LogSoftmax { group } => Layer::GroupSoftmax {
                    width,
                    group: divisor(index, op, "group", group.unwrap_or(width), width)?,
                    log: true,
                },
                LayerSpec::ScaleShift { scale, shift } => {
                    let (s, t) = (tensor(scale)?, tensor(shift)?);
                    let &[channels] = s.shape.as_slice() else {
                        return Err(shape_err(scale, s, "[channels]".into()));
                    };
                    divisor(index, op, "channels", channels, width)?;
                    if t.shape != [channels] {
                        return Err(shape_err(shift, t, format!("[{channels}]")));
                    }
                    Layer::ScaleShift {
                        inner: width / channels,
                        scale: s.f32_data(index, op, scale)?.to_vec().into(),
                        shift: t.f32_data(index, op, shift)?.to_vec().into(),
                    }
                }
                LayerSpec::PRelu { slope } => {
                    let s = tensor(slope)?;
                    let &[channels] = s.shape.as_slice() else {
                        return Err(shape_err(slope, s, "[channels]".into()));
                    };
                    divisor(index, op, "channels", channels, width)?;
                    Layer::PRelu {
                        inner: width / channels,
                        slope: s.f32_data(index, op, slope)?.to_vec().into(),
                    }
                }
                LayerSpec::GlobalAvgPool { channels } => Layer::GlobalAvgPool {
                    channels: *channels,
                    inner: width / divisor(index, op, "channels", *channels, width)?,
                },
            };
            if !matches!(layer, Layer::Int8(_)) {
                quant = int8::QuantState::F32;
            }
            width = layer.output_len();
            if !matches!(
                layer,
                Layer::Conv2d { .. }
                    | Layer::Pool { .. }
                    | Layer::Activation { .. }
                    | Layer::Standardize { .. }
                    | Layer::LeakyRelu { .. }
                    | Layer::PRelu { .. }
                    | Layer::GroupSoftmax { .. }
                    | Layer::ScaleShift { .. }
            ) {
                shape = vec![width];
            }
            layers.push(layer);
        }
        let model = kiln_guest::Model::new(input_len, layers)?;
        let labels = self.graph.labels.len();
        if labels != 0 && labels != model.output_len() {
            return Err(ModelFileError::Labels {
                labels,
                outputs: model.output_len(),
            });
        }
        Ok(model)
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
}
