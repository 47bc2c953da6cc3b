//! `kiln inspect`: show what a model file or a model module holds.

use std::path::PathBuf;

use anyhow::Context;
use kiln::model::ModelFile;
use kiln::module;

/// Print the metadata of a model file (.safetensors) or a model module (.wasm)
/// as JSON: name, task, input and output shapes, labels, and per layer its
/// parameters, bytes, weight dtype and sparsity.
/// A module is read without being run.
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
        let blob_bytes = module::embedded_blob(&bytes)?.map_or(0, <[u8]>::len);
        serde_json::json!({
            "kind": "module",
            "bytes": bytes.len(),
            "model_blob_bytes": blob_bytes,
            "meta": meta,
        })
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
                if let Some((_, w)) = tensors.iter().find(|(f, _)| f == "weight") {
                    v["dtype"] = w.data.dtype_name().into();
                    v["sparsity"] = (w.data.zeros() as f64 / w.data.len().max(1) as f64).into();
                }
                v
            })
            .collect();
        serde_json::json!({
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
        })
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
