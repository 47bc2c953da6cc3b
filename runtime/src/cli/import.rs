//! `kiln import`: convert a model from another framework (ONNX, Keras) into a
//! kiln model file.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use kiln::import::{keras, lightgbm, onnx, xgboost};
use kiln::model::Task;

/// Import an ONNX, Keras, XGBoost or LightGBM model as a kiln model file
/// (.safetensors).
///
/// XGBoost (`booster.save_model("m.json")`) and LightGBM
/// (`booster.save_model("model.txt")`): gradient-boosted trees, read from
/// their own files and told apart by content — see docs/trees.md.
///
/// Keras (.h5 from Keras 2, tf.keras or Keras 3; .keras archives from
/// Keras 3): Sequential and single-chain functional models of Dense,
/// Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten,
/// Reshape, BatchNormalization, Rescaling, Normalization, Activation, ReLU,
/// LeakyReLU, Softmax and Dropout-like layers (dropped) — see docs/keras.md.
///
/// ONNX:
/// The result builds and predicts like a model trained by kiln. Supported:
/// Gemm, MatMul (+ Add as bias), Add/Sub/Mul/Div by constants, Relu,
/// LeakyRelu, PRelu, Sigmoid, Tanh, Softmax, LogSoftmax, Flatten, Reshape,
/// Transpose of weights, Conv, MaxPool, AveragePool, GlobalAveragePool,
/// BatchNormalization, Dropout, Identity, Cast, Constant, and
/// scikit-learn's LinearClassifier, Normalizer (after a softmax) and Scaler.
/// One input with a symbolic (or fixed) batch dimension and static other
/// dimensions; one output. Anything else is refused with an error naming
/// the node, op and attribute — see docs/onnx.md.
///
/// Only the nodes the chosen output depends on are imported, so a
/// scikit-learn classifier (exported with options={'zipmap': False}) gives
/// its probabilities, with its class labels.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln import mlp.onnx -o mlp.safetensors\n  \
    kiln import model.h5 -o model.safetensors\n  \
    kiln import clf.onnx --graph-output probabilities -o clf.safetensors\n  \
    kiln build mlp.safetensors -o mlp.wasm")]
pub(super) struct Args {
    /// The model: ONNX (.onnx), Keras (.h5, .keras), XGBoost JSON or
    /// LightGBM text; told apart by content.
    model: PathBuf,
    /// Output model file (.safetensors).
    #[arg(short, long)]
    output: PathBuf,
    /// The graph output to import (ONNX; default: the only float tensor output).
    #[arg(long = "graph-output", value_name = "NAME")]
    graph_output: Option<String>,
    /// Model name recorded in the file (default: the output file's stem).
    #[arg(long)]
    name: Option<String>,
    /// What the model predicts (default: classification when it ends in a
    /// softmax or is a classifier, regression otherwise).
    #[arg(long, value_enum)]
    task: Option<TaskArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TaskArg {
    Classification,
    Regression,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let name = a.name.clone().unwrap_or_else(|| {
        a.output
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned())
    });
    let task = a.task.map(|t| match t {
        TaskArg::Classification => Task::Classification,
        TaskArg::Regression => Task::Regression,
    });
    let context = || format!("importing {}", a.model.display());
    let trees = if xgboost::sniff(&bytes) {
        Some(("xgboost", xgboost::import(&bytes, &name)))
    } else if lightgbm::sniff(&bytes) {
        Some(("lightgbm", lightgbm::import(&bytes, &name)))
    } else {
        None
    };
    let (model, notes, source) = if let Some((format, imported)) = trees {
        if a.graph_output.is_some() || a.task.is_some() {
            anyhow::bail!("--graph-output and --task apply to ONNX and Keras models, not {format}");
        }
        let model = imported.with_context(context)?;
        (model, Vec::new(), serde_json::json!({ "format": format }))
    } else if keras::sniff(&bytes) {
        if a.graph_output.is_some() {
            anyhow::bail!("--graph-output applies to ONNX models; a Keras model has one output");
        }
        let imported =
            keras::import(&bytes, &keras::Options { name, task }).with_context(context)?;
        let source =
            serde_json::json!({ "format": imported.format, "keras_layers": imported.layers });
        (imported.model, imported.notes, source)
    } else {
        let options = onnx::Options {
            output: a.graph_output.clone(),
            name,
            task,
        };
        let imported = onnx::import(&bytes, &options).with_context(context)?;
        (
            imported.model,
            imported.notes,
            serde_json::json!({ "nodes": imported.nodes }),
        )
    };
    for note in &notes {
        eprintln!("note: {note}");
    }
    model
        .save(&a.output)
        .with_context(|| format!("writing {}", a.output.display()))?;
    let g = &model.graph;
    let mut summary = serde_json::json!({
        "model": a.output,
        "layers": g.layers.iter().map(|l| l.op()).collect::<Vec<_>>(),
        "input": g.input.shape,
        "task": g.task,
    });
    if let (Some(s), Some(extra)) = (summary.as_object_mut(), source.as_object()) {
        s.extend(extra.clone());
    }
    println!("{summary}");
    Ok(())
}
