//! `kiln inspect`: show what a model file or a model module holds.

use std::path::PathBuf;

use anyhow::Context;
use kiln::model::ModelFile;
use kiln::module;

/// Print the metadata of a model file (.safetensors) or a model module (.wasm)
/// as JSON: name, task, input and output shapes, labels, and per layer its
/// parameters, bytes, weight dtype and sparsity; and the activation memory
/// per input row: the arena the model runs in (a graph's liveness plan, a
/// chain's two buffers) beside the sum of all its tensors; and the kernel
/// (`mlp`, `trees`, `rnn`, `cnn`, `cnn-int8`, `graph`) a module carries, or
/// that `kiln build` embeds for a model file; and for a tree ensemble its
/// trees, nodes, leaves, depth and the features it tests. A module is read
/// without being run.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// A model file or model module.
    file: PathBuf,
}

pub(super) fn execute(a: Args) -> anyhow::Result<()> {
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let report = if bytes.starts_with(b"\0asm") {
        let meta = module::read_meta(&bytes)?
            .context("the module has no kiln.meta section; was it built by `kiln build`?")?;
        let blob = module::embedded_blob(&bytes)?;
        let blob_bytes = blob.map_or(0, <[u8]>::len);
        let mut v = serde_json::json!({
            "kind": "module",
            "bytes": bytes.len(),
            "model_blob_bytes": blob_bytes,
            "meta": meta,
        });
        if let Some(model) = blob.and_then(|b| kiln_guest::blob::decode_unscanned(b).ok()) {
            memory(&mut v, &model);
        }
        // Which of this kiln's kernels the module carries (null: another
        // kiln's, or a hand-made module).
        v["kernel"] = module::carried_kernel(&bytes)?.into();
        v
    } else {
        let model = ModelFile::from_bytes(&bytes, &a.file)?;
        let kernel = model.to_kernel()?;
        let layers: Vec<_> = model
            .graph
            .layers
            .iter()
            .map(|l| {
                let mut v = serde_json::to_value(l).expect("layer serialises");
                let tensors: Vec<(String, &kiln::model::Tensor)> = serde_json::to_value(l)
                    .ok()
                    .and_then(|j| j.as_object().cloned())
                    .into_iter()
                    .flatten()
                    .filter_map(|(field, name)| Some((field, model.tensors.get(name.as_str()?)?)))
                    .collect();
                let params: usize = tensors.iter().map(|(_, t)| t.data.len()).sum();
                v["params"] = params.into();
                // Per-layer size, weight dtype and sparsity (zeros among the
                // weights), for quantized and pruned models.
                v["bytes"] = tensors
                    .iter()
                    .map(|(_, t)| t.data.byte_len())
                    .sum::<usize>()
                    .into();
                // `w`: the input weights of a recurrent layer.
                if let Some((_, w)) = tensors.iter().find(|(f, _)| f == "weight" || f == "w") {
                    v["dtype"] = w.data.dtype_name().into();
                    v["sparsity"] = (w.data.zeros() as f64 / w.data.len().max(1) as f64).into();
                }
                v
            })
            .collect();
        let mut v = serde_json::json!({
            "kind": "model",
            "bytes": bytes.len(),
            "sha256": module::sha256_hex(&bytes),
            "name": model.graph.name,
            "version": model.graph.version,
            "task": model.graph.task,
            "input": model.graph.input,
            "outputs": kernel.output_len(),
            "target": model.graph.target,
            "labels": model.graph.labels,
            "layers": layers,
        });
        memory(&mut v, &kernel);
        // The kernel `kiln build` embeds for it.
        v["kernel"] = module::kernel_name(module::kernel_for(&kernel)).into();
        v
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// Adds the activation memory of `model`, in f32 values per input row:
/// `arena_values` (what it runs in) and `tensor_values` (every tensor it
/// computes, the input included), and whether it is a `graph`.
fn memory(report: &mut serde_json::Value, model: &kiln_guest::Model<'_>) {
    report["graph"] = model.inputs().is_some().into();
    report["arena_values"] = model.arena_len().into();
    report["tensor_values"] = model.tensors_len().into();
    let trees: Vec<_> = model
        .layers()
        .iter()
        .filter_map(|l| match l {
            kiln_guest::Layer::Trees(t, _) => Some(tree_summary(t)),
            _ => None,
        })
        .collect();
    if !trees.is_empty() {
        report["trees"] = trees.into();
    }
}

/// A tree ensemble's shape: trees, nodes, leaves, the deepest leaf's depth
/// (edges from its root), and the features its nodes test.
fn tree_summary(t: &kiln_guest::TreeLayer<'_>) -> serde_json::Value {
    use kiln_guest::trees::Mode;
    let n = t.node_count();
    // Children follow their parents, so one forward pass sets each depth.
    let mut depth: Vec<Option<usize>> = vec![None; n];
    for &r in t.roots.iter() {
        depth[r as usize] = Some(0);
    }
    let (mut leaves, mut deepest) = (0usize, 0usize);
    let mut used = std::collections::BTreeSet::new();
    for i in 0..n {
        let Some(d) = depth[i] else { continue };
        let [flags, feature, yes, no] = t.node(i);
        if Mode::of(flags) == Some(Mode::Leaf) {
            leaves += 1;
            deepest = deepest.max(d);
        } else {
            used.insert(feature);
            for c in [yes, no] {
                let c = &mut depth[c as usize];
                *c = Some(c.map_or(d + 1, |e| e.max(d + 1)));
            }
        }
    }
    serde_json::json!({
        "trees": t.roots.len(),
        "nodes": n,
        "leaves": leaves,
        "max_depth": deepest,
        "features_used": used.len(),
        "features": used,
    })
}
