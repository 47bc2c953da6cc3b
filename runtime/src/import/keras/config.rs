//! The model config Keras saves (JSON) → the chain of layers kiln imports,
//! and where each layer's weights are in the HDF5 file.
//!
//! Keras 2, tf.keras and Keras 3 spell the same things differently: the
//! input shape (`batch_input_shape`, `batch_shape`, `build_input_shape`,
//! `build_config`), a functional model's class (`Model`, `Functional`)
//! and its wiring (Keras 2's nested `inbound_nodes` lists, Keras 3's
//! `keras_history` inside `args`). Both reduce to one [`Net`]: the input
//! shape and the layers in an order where each comes after the layers it
//! reads (a chain, or a graph with branches and joins), the output last.
//! Shared layers, layers off the path from input to output and several
//! inputs or outputs are refused.

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
    /// A Keras 3 operation on tensors (`x + 3.0` in a functional model:
    /// module `keras.src.ops.…`), not a layer.
    pub(super) op: bool,
    /// The layers (or the input) whose outputs it reads, in order.
    pub(super) reads: Vec<String>,
    /// The numbers among an operation's arguments and their positions
    /// (`(1, 3.0)` in `x + 3.0`).
    pub(super) scalars: Vec<(usize, f64)>,
}

/// The layers from the input to the output.
#[derive(Debug, Clone)]
pub(super) struct Net {
    /// The input's name and per-row shape (the batch dimension dropped).
    pub(super) input: (String, Vec<usize>),
    /// Each after every layer it reads; the model's output is the last's.
    pub(super) layers: Vec<KLayer>,
}

/// Where the weights are.
enum Weights {
    /// `<root>/<layer>/<weight name>`, in the order of `weight_names`.
    Legacy { root: String },
    /// `layers/<path>/vars/<i>` (and nested sub-layers' `vars`), the path
    /// found by the `name` attribute of each `vars` group.
    Archive { paths: HashMap<String, String> },
}

/// A saved model: its chain, its weights and the Keras that wrote it.
pub(super) struct Saved {
    pub(super) keras_version: String,
    pub(super) net: Net,
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
        let net = net(file, &config)?;
        let root = if h5.members("")?.iter().any(|m| m == "model_weights") {
            "model_weights".to_string()
        } else {
            String::new()
        };
        Ok(Saved {
            keras_version,
            net,
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
        let net = net(file, &config)?;
        let mut paths = HashMap::new();
        if h5.members("")?.iter().any(|m| m == "layers") {
            for member in h5.members("layers")? {
                let group = format!("layers/{member}");
                if let Ok(Some(name)) = h5.string(&format!("{group}/vars"), "name") {
                    paths.insert(name, group);
                }
            }
        }
        Ok(Saved {
            keras_version,
            net,
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
                let Some(group) = paths.get(&layer.name) else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                self.archive_vars(group, most, 0, &mut out)?;
                Ok(out)
            }
        }
    }
}

impl Saved {
    /// The variables under `group` (an archive's layer): its own
    /// `vars/<i>`, then those of the sub-layers Keras nests there (a
    /// recurrent layer's `cell`; a `Bidirectional`'s forward, then
    /// backward layer), at most `most`.
    fn archive_vars(
        &self,
        group: &str,
        most: usize,
        depth: usize,
        out: &mut Vec<ArrayD<f32>>,
    ) -> Result<(), KerasError> {
        let members = self.h5.members(group)?;
        if members.iter().any(|m| m == "vars") {
            let vars = format!("{group}/vars");
            let own = self.h5.members(&vars)?;
            for i in 0..own.len() {
                if out.len() >= most {
                    return Ok(());
                }
                if !own.contains(&i.to_string()) {
                    return Err(self.h5.err(&vars, format!("variable `{i}` is missing")));
                }
                out.push(self.h5.f32s(&format!("{vars}/{i}"))?);
            }
        }
        if depth < 2 {
            for sub in ["cell", "forward_layer", "backward_layer"] {
                if members.iter().any(|m| m == sub) {
                    self.archive_vars(&format!("{group}/{sub}"), most, depth + 1, out)?;
                }
            }
        }
        Ok(())
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
    // Keras 3 legacy `.h5` saves drop the module; an operation is then told
    // by its config, which holds none of the `trainable` and `dtype` every
    // layer's (but an InputLayer's) has.
    let op = match module {
        Some(m) => m.starts_with("keras.src.ops"),
        None => {
            class != "InputLayer"
                && config.get("trainable").is_none()
                && config.get("dtype").is_none()
        }
    };
    let (reads, _) = inbound(v);
    let scalars = v
        .get("inbound_nodes")
        .and_then(|n| n.get(0)?.get("args")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v.as_f64()?)))
        .collect();
    Ok(KLayer {
        name,
        class,
        config,
        custom,
        op,
        reads,
        scalars,
    })
}

/// The layers a model config describes.
pub(super) fn net(file: &str, model: &Value) -> Result<Net, KerasError> {
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
) -> Result<Net, KerasError> {
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
    // Each layer reads the one before.
    let first = input
        .as_ref()
        .map_or("input", |(n, _)| n.as_str())
        .to_string();
    let mut prev = first;
    for layer in &mut chain {
        layer.reads = vec![std::mem::replace(&mut prev, layer.name.clone())];
        layer.scalars.clear();
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
    Ok(Net {
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

fn functional(file: &str, config: &Value, layers: &[Value]) -> Result<Net, KerasError> {
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
    let mut by_name: HashMap<String, (KLayer, &Value)> = HashMap::new();
    for v in layers {
        let layer = layer_of(file, v)?;
        let (_, nodes) = inbound(v);
        if nodes > 1 {
            return Err(KerasError::Layer {
                layer: layer.name.clone(),
                class: layer.class.clone(),
                problem: format!(
                    "it is called {nodes} times (a shared layer); kiln imports models that \
                     use each layer once"
                ),
            });
        }
        if by_name.contains_key(&layer.name) {
            return Err(cfg_err(
                file,
                format!("two layers are named `{}`", layer.name),
            ));
        }
        by_name.insert(layer.name.clone(), (layer, v));
    }
    let (input_layer, v) = by_name
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
    let order = topological(file, &by_name, input, output)?;
    if let Some(extra) = by_name.keys().find(|n| *n != input && !order.contains(n)) {
        return Err(cfg_err(
            file,
            format!(
                "layer `{extra}` is off the path from input to output; kiln imports models \
                 with one output and no unused layers"
            ),
        ));
    }
    let layers = order
        .iter()
        .map(|n| by_name[n].0.clone())
        .collect::<Vec<_>>();
    Ok(Net {
        input: (input.clone(), shape),
        layers,
    })
}

/// The layers `output` depends on, each after the layers it reads (a
/// depth-first walk without recursion, so a long chain cannot overflow
/// the stack), the input excluded.
fn topological(
    file: &str,
    by_name: &HashMap<String, (KLayer, &Value)>,
    input: &str,
    output: &str,
) -> Result<Vec<String>, KerasError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::new();
    let mut order = Vec::new();
    // (layer, index of the next read to visit)
    let mut stack: Vec<(&str, usize)> = vec![(output, 0)];
    marks.insert(output, Mark::Open);
    while let Some(top) = stack.last_mut() {
        let (name, next) = *top;
        top.1 += 1;
        if name == input {
            marks.insert(name, Mark::Done);
            stack.pop();
            continue;
        }
        let Some((layer, _)) = by_name.get(name) else {
            return Err(cfg_err(
                file,
                format!("layer `{name}` is read but not defined"),
            ));
        };
        if layer.class == "InputLayer" {
            return Err(cfg_err(
                file,
                format!(
                    "the model reads input `{name}` besides `{input}`: kiln models take one input"
                ),
            ));
        }
        if layer.reads.is_empty() {
            return Err(KerasError::Layer {
                layer: layer.name.clone(),
                class: layer.class.clone(),
                problem: "it reads no tensor".into(),
            });
        }
        match layer.reads.get(next) {
            Some(read) => match marks.get(read.as_str()) {
                Some(Mark::Done) => {}
                Some(Mark::Open) => {
                    return Err(cfg_err(
                        file,
                        format!("the layers form a cycle through `{read}`"),
                    ));
                }
                None => {
                    marks.insert(read, Mark::Open);
                    stack.push((read, 0));
                }
            },
            None => {
                marks.insert(name, Mark::Done);
                order.push(name.to_string());
                stack.pop();
            }
        }
    }
    Ok(order)
}
