//! The model config Keras saves (JSON) → the chain of layers kiln imports,
//! and where each layer's weights are in the HDF5 file.
//!
//! Keras 2, tf.keras and Keras 3 spell the same things differently: the
//! input shape (`batch_input_shape`, `batch_shape`, `build_input_shape`,
//! `build_config`), a functional model's class (`Model`, `Functional`)
//! and its wiring (Keras 2's nested `inbound_nodes` lists, Keras 3's
//! `keras_history` inside `args`). Both reduce to one [`Chain`]: the input
//! shape and the layers from input to output, each reading the one
//! before. Branches, joins, shared layers and several inputs or outputs
//! are refused.

use std::collections::HashMap;

use ndarray::ArrayD;
use serde_json::Value;

use super::KerasError;
use super::hdf5::H5;

/// The most layers a model may have (a bound for hostile configs).
const MAX_LAYERS: usize = 10_000;

/// One layer of the chain, as the config describes it.
#[derive(Debug, Clone)]
pub(super) struct KLayer {
    pub(super) name: String,
    pub(super) class: String,
    pub(super) config: Value,
    /// Keras 3's `registered_name`/`module`: set for a custom class.
    pub(super) custom: Option<String>,
}

/// The layers from the input to the output.
#[derive(Debug, Clone)]
pub(super) struct Chain {
    /// The input's name and per-row shape (the batch dimension dropped).
    pub(super) input: (String, Vec<usize>),
    pub(super) layers: Vec<KLayer>,
}

/// Where the weights are.
enum Weights {
    /// `<root>/<layer>/<weight name>`, in the order of `weight_names`.
    Legacy { root: String },
    /// `layers/<path>/vars/<i>`, the path found by the `name` attribute
    /// of each `vars` group.
    Archive { paths: HashMap<String, String> },
}

/// A saved model: its chain, its weights and the Keras that wrote it.
pub(super) struct Saved {
    pub(super) keras_version: String,
    pub(super) chain: Chain,
    h5: H5,
    weights: Weights,
}

fn cfg_err(file: &str, problem: impl Into<String>) -> KerasError {
    KerasError::Config {
        file: file.into(),
        problem: problem.into(),
    }
}

impl Saved {
    /// A legacy `.h5`: `model_config` and `model_weights` in the root.
    pub(super) fn legacy(h5: H5) -> Result<Self, KerasError> {
        let file = "the .h5 file";
        let Some(json) = h5.string("", "model_config")? else {
            return Err(KerasError::NotKeras(
                "the HDF5 file has no `model_config` attribute (a weights-only file from \
                 save_weights? kiln needs the whole model: model.save(\"model.h5\"))"
                    .into(),
            ));
        };
        let config: Value = serde_json::from_str(&json)
            .map_err(|e| cfg_err(file, format!("`model_config` is not JSON ({e})")))?;
        let keras_version = h5
            .string("", "keras_version")?
            .unwrap_or_else(|| "unknown".into());
        let chain = chain(file, &config)?;
        let root = if h5.members("")?.iter().any(|m| m == "model_weights") {
            "model_weights".to_string()
        } else {
            String::new()
        };
        Ok(Saved {
            keras_version,
            chain,
            h5,
            weights: Weights::Legacy { root },
        })
    }

    /// A Keras 3 archive's `config.json` (and `metadata.json`) with its
    /// `model.weights.h5`.
    pub(super) fn archive(
        config: &[u8],
        metadata: Option<&[u8]>,
        h5: H5,
    ) -> Result<Self, KerasError> {
        let file = "config.json";
        let config: Value = serde_json::from_slice(config)
            .map_err(|e| cfg_err(file, format!("it is not JSON ({e})")))?;
        let keras_version = metadata
            .and_then(|m| serde_json::from_slice::<Value>(m).ok())
            .and_then(|m| m.get("keras_version")?.as_str().map(String::from))
            .unwrap_or_else(|| "3".into());
        let chain = chain(file, &config)?;
        let mut paths = HashMap::new();
        if h5.members("")?.iter().any(|m| m == "layers") {
            for member in h5.members("layers")? {
                let vars = format!("layers/{member}/vars");
                if let Ok(Some(name)) = h5.string(&vars, "name") {
                    paths.insert(name, vars);
                }
            }
        }
        Ok(Saved {
            keras_version,
            chain,
            h5,
            weights: Weights::Archive { paths },
        })
    }

    /// The first `most` weights of `layer`, in Keras's order (trainable,
    /// then the rest: kernel, bias; gamma, beta, moving mean, moving
    /// variance; a normalization's mean and variance, then its integer count).
    pub(super) fn weights(
        &self,
        layer: &KLayer,
        most: usize,
    ) -> Result<Vec<ArrayD<f32>>, KerasError> {
        match &self.weights {
            Weights::Legacy { root } => {
                let group = if root.is_empty() {
                    layer.name.clone()
                } else {
                    format!("{root}/{}", layer.name)
                };
                let members = self.h5.members(root)?;
                if !members.contains(&layer.name) {
                    return Ok(Vec::new());
                }
                let names = self.h5.strings(&group, "weight_names")?.unwrap_or_default();
                names
                    .iter()
                    .take(most)
                    .map(|n| self.h5.f32s(&format!("{group}/{n}")))
                    .collect()
            }
            Weights::Archive { paths } => {
                let Some(vars) = paths.get(&layer.name) else {
                    return Ok(Vec::new());
                };
                let members = self.h5.members(vars)?;
                (0..members.len().min(most))
                    .map(|i| {
                        let name = i.to_string();
                        if !members.contains(&name) {
                            return Err(self.h5.err(vars, format!("variable `{i}` is missing")));
                        }
                        self.h5.f32s(&format!("{vars}/{i}"))
                    })
                    .collect()
            }
        }
    }
}

/// A per-row shape from a Keras shape with its batch dimension first.
fn row_shape(file: &str, what: &str, v: &Value) -> Result<Vec<usize>, KerasError> {
    let dims = v
        .as_array()
        .ok_or_else(|| cfg_err(file, format!("{what} is not a list")))?;
    dims.iter()
        .skip(1)
        .map(|d| {
            d.as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .filter(|&d| d > 0)
                .ok_or_else(|| {
                    cfg_err(
                        file,
                        format!("{what} {v}: only the batch dimension may be unknown"),
                    )
                })
        })
        .collect()
}

/// The batch shape a layer config declares, if any.
fn declared_shape(c: &Value) -> Option<&Value> {
    let cfg = c.get("config")?;
    cfg.get("batch_shape")
        .or_else(|| cfg.get("batch_input_shape"))
        .filter(|v| !v.is_null())
}

fn layer_of(file: &str, v: &Value) -> Result<KLayer, KerasError> {
    let class = v
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| cfg_err(file, "a layer has no `class_name`"))?
        .to_string();
    let config = v.get("config").cloned().unwrap_or(Value::Null);
    let name = v
        .get("name")
        .or_else(|| config.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // Keras 3 marks classes registered outside Keras (`registered_name`
    // "package>Class", or a module outside keras).
    let module = v.get("module").and_then(Value::as_str);
    let registered = v.get("registered_name").and_then(Value::as_str);
    let custom = match (module, registered) {
        (_, Some(r)) if r != class => Some(r.to_string()),
        (Some(m), _) if !m.starts_with("keras") => Some(m.to_string()),
        _ => None,
    };
    Ok(KLayer {
        name,
        class,
        config,
        custom,
    })
}

/// The chain a model config describes.
pub(super) fn chain(file: &str, model: &Value) -> Result<Chain, KerasError> {
    let class = model
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| cfg_err(file, "the model has no `class_name`"))?;
    let config = model.get("config").unwrap_or(&Value::Null);
    // Old Keras 2 Sequential configs are the bare list of layers.
    let layers = config
        .get("layers")
        .or(config.is_array().then_some(config))
        .and_then(Value::as_array)
        .ok_or_else(|| cfg_err(file, format!("the {class} model lists no `layers`")))?;
    if layers.len() > MAX_LAYERS {
        return Err(cfg_err(
            file,
            format!("{} layers is too many", layers.len()),
        ));
    }
    match class {
        "Sequential" => sequential(file, model, config, layers),
        "Functional" | "Model" => functional(file, config, layers),
        other => Err(cfg_err(
            file,
            format!(
                "the model's class is `{other}`; kiln imports Sequential and functional \
                 (keras.Model(inputs, outputs)) models, not subclassed ones"
            ),
        )),
    }
}

fn sequential(
    file: &str,
    model: &Value,
    config: &Value,
    layers: &[Value],
) -> Result<Chain, KerasError> {
    let mut input = None;
    let mut chain = Vec::new();
    for (i, v) in layers.iter().enumerate() {
        let layer = layer_of(file, v)?;
        if layer.class == "InputLayer" {
            if i != 0 {
                return Err(cfg_err(file, "an InputLayer after the first layer"));
            }
            let shape = declared_shape(v)
                .ok_or_else(|| cfg_err(file, "the InputLayer declares no shape"))?;
            input = Some((
                layer.name.clone(),
                row_shape(file, "the input shape", shape)?,
            ));
            continue;
        }
        if i == 0
            && let Some(shape) = declared_shape(v)
        {
            input = Some(("input".into(), row_shape(file, "the input shape", shape)?));
        }
        chain.push(layer);
    }
    if input.is_none() {
        let built = config
            .get("build_input_shape")
            .or_else(|| model.get("build_config")?.get("input_shape"))
            .or_else(|| layers.first()?.get("build_config")?.get("input_shape"))
            .filter(|v| !v.is_null());
        if let Some(shape) = built {
            input = Some(("input".into(), row_shape(file, "the input shape", shape)?));
        }
    }
    let input = input.ok_or_else(|| {
        cfg_err(
            file,
            "the Sequential model declares no input shape (add keras.Input(shape=...) \
             before its first layer)",
        )
    })?;
    Ok(Chain {
        input,
        layers: chain,
    })
}

/// `[name, node, tensor]` triples: one, or a list of them.
fn endpoints(v: &Value) -> Vec<String> {
    match v.as_array() {
        Some(a) if a.first().is_some_and(Value::is_string) => a
            .first()
            .and_then(Value::as_str)
            .map(String::from)
            .into_iter()
            .collect(),
        Some(a) => a
            .iter()
            .filter_map(|t| t.get(0)?.as_str().map(String::from))
            .collect(),
        None => Vec::new(),
    }
}

/// The layers a layer's inbound nodes read, and how many nodes it has.
fn inbound(v: &Value) -> (Vec<String>, usize) {
    fn histories(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(h) = o.get("keras_history").and_then(Value::as_array) {
                    out.extend(h.first().and_then(Value::as_str).map(String::from));
                } else {
                    o.values().for_each(|x| histories(x, out));
                }
            }
            Value::Array(a) => {
                // Keras 2: `[name, node, tensor, kwargs]`.
                if let [Value::String(name), Value::Number(_), ..] = a.as_slice() {
                    out.push(name.clone());
                } else {
                    a.iter().for_each(|x| histories(x, out));
                }
            }
            _ => {}
        }
    }
    let nodes = v.get("inbound_nodes").and_then(Value::as_array);
    let mut out = Vec::new();
    for n in nodes.into_iter().flatten() {
        histories(n, &mut out);
    }
    (out, nodes.map_or(0, Vec::len))
}

fn functional(file: &str, config: &Value, layers: &[Value]) -> Result<Chain, KerasError> {
    let inputs = endpoints(config.get("input_layers").unwrap_or(&Value::Null));
    let outputs = endpoints(config.get("output_layers").unwrap_or(&Value::Null));
    let [input] = inputs.as_slice() else {
        return Err(cfg_err(
            file,
            format!(
                "a multi-input functional model (inputs {inputs:?}) is not supported: kiln \
                 models take one input (concatenate the features into one input instead)"
            ),
        ));
    };
    let [output] = outputs.as_slice() else {
        return Err(cfg_err(
            file,
            format!(
                "a functional model with {} outputs {outputs:?} is not supported: kiln \
                 models have one output",
                outputs.len()
            ),
        ));
    };
    let mut by_name: HashMap<String, (KLayer, Vec<String>, usize, &Value)> = HashMap::new();
    for v in layers {
        let layer = layer_of(file, v)?;
        let (reads, nodes) = inbound(v);
        by_name.insert(layer.name.clone(), (layer, reads, nodes, v));
    }
    let mut chain = Vec::new();
    let mut at = output.clone();
    while at != *input {
        let Some((layer, reads, nodes, _)) = by_name.get(&at) else {
            return Err(cfg_err(
                file,
                format!("layer `{at}` is read but not defined"),
            ));
        };
        if *nodes > 1 {
            return Err(KerasError::Layer {
                layer: layer.name.clone(),
                class: layer.class.clone(),
                problem: format!(
                    "it is called {nodes} times (a shared layer); kiln imports single-chain \
                     models, each layer used once"
                ),
            });
        }
        let [prev] = reads.as_slice() else {
            return Err(KerasError::Layer {
                layer: layer.name.clone(),
                class: layer.class.clone(),
                problem: format!(
                    "it reads {} tensors {reads:?}; kiln imports single-chain functional \
                     models (each layer reading the one before), like a Sequential model",
                    reads.len()
                ),
            });
        };
        chain.push(layer.clone());
        if chain.len() > layers.len() {
            return Err(cfg_err(file, "the layers form a cycle"));
        }
        at = prev.clone();
    }
    chain.reverse();
    let (input_layer, _, _, v) = by_name
        .get(input)
        .ok_or_else(|| cfg_err(file, format!("input layer `{input}` is not defined")))?;
    if input_layer.class != "InputLayer" {
        return Err(cfg_err(
            file,
            format!("input `{input}` is not an InputLayer"),
        ));
    }
    let shape =
        declared_shape(v).ok_or_else(|| cfg_err(file, "the InputLayer declares no shape"))?;
    let shape = row_shape(file, "the input shape", shape)?;
    if let Some(extra) = by_name
        .keys()
        .find(|n| *n != input && !chain.iter().any(|l| &l.name == *n))
    {
        return Err(cfg_err(
            file,
            format!(
                "layer `{extra}` is off the path from input to output; kiln imports \
                 single-chain models"
            ),
        ));
    }
    Ok(Chain {
        input: (input.clone(), shape),
        layers: chain,
    })
}
