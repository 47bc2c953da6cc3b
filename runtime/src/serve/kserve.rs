//! KServe's container contract: the storage initializer copies the
//! InferenceService's `storageUri` into `/mnt/models`, and the runtime gets
//! `--model_name NAME --model_dir /mnt/models`. That directory holds one
//! model's files (`model.wasm`, `VERSION/model.wasm`, one `*.wasm`), an ONNX
//! model (`model.onnx` or one `*.onnx`, imported and built at start-up), or
//! a repository; [`source`] turns it into the registry's [`Source`], with the
//! model named NAME.

use std::path::Path;

use super::ServeError;
use crate::import::onnx;
use crate::module;
use crate::registry::{BuiltinModel, RegistryError, Source, repo};

/// The models of `dir` served under `--model_name name`: the one model
/// `dir` holds, named `name`, or else a repository that has a model `name`.
pub(crate) fn source(dir: &Path, name: &str) -> Result<Source, ServeError> {
    let fail = |reason: String| ServeError::ModelName {
        name: name.into(),
        reason,
    };
    if !repo::valid_name(name) {
        return Err(fail(
            "model names are [A-Za-z0-9_.-], not starting with `.`".into(),
        ));
    }
    let io = |source| RegistryError::Io {
        path: dir.into(),
        source,
    };
    if !repo::single(dir).map_err(io)?.is_empty() {
        return Ok(Source::Model {
            name: name.into(),
            dir: dir.into(),
        });
    }
    let names = repo::names(dir).map_err(io)?;
    if names.iter().any(|n| n == name) {
        return Ok(Source::Dir(dir.into()));
    }
    if !names.is_empty() {
        return Err(fail(format!(
            "{} is a repository of {} without it",
            dir.display(),
            names.join(", ")
        )));
    }
    match onnx_file(dir).map_err(io)? {
        Some(path) => from_onnx(&path, name).map_err(fail),
        None => Err(fail(format!(
            "{} holds no model (model.wasm, VERSION/model.wasm, one .wasm or .onnx file, \
             or a repository)",
            dir.display()
        ))),
    }
}

/// `dir/model.onnx`, else the only `*.onnx` file in `dir`.
fn onnx_file(dir: &Path) -> std::io::Result<Option<std::path::PathBuf>> {
    let model = dir.join("model.onnx");
    if model.is_file() {
        return Ok(Some(model));
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "onnx") {
            found.push(path);
        }
    }
    Ok(match found.len() {
        1 => found.pop(),
        _ => None,
    })
}

/// Imports the ONNX model at `path` and builds its module in memory (the
/// root filesystem may be read-only): version 1 of `name`.
fn from_onnx(path: &Path, name: &str) -> Result<Source, String> {
    let what = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let bytes = std::fs::read(path).map_err(|e| what(&e))?;
    let options = onnx::Options {
        output: None,
        name: name.into(),
        task: None,
    };
    let imported = onnx::import(&bytes, &options).map_err(|e| what(&e))?;
    let wasm = module::build(&imported.model, &module::sha256_hex(&bytes)).map_err(|e| what(&e))?;
    Ok(Source::Builtin(vec![BuiltinModel {
        name: name.into(),
        wasm: wasm.into(),
        safetensors: None,
    }]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &Source) -> String {
        match s {
            Source::Dir(_) => "repository".into(),
            Source::Model { name, .. } => format!("model {name}"),
            Source::Builtin(m) => format!("built {}", m[0].name),
        }
    }

    fn refused(r: Result<Source, ServeError>) -> String {
        match r {
            Ok(s) => panic!("expected an error, got {}", kind(&s)),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn layouts_and_names() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let err = refused(source(r, "m"));
        assert!(err.contains("holds no model"), "{err}");
        assert!(refused(source(r, "../x")).contains("[A-Za-z0-9_.-]"));
        std::fs::write(r.join("a.wasm"), b"a").unwrap();
        assert_eq!(kind(&source(r, "m").unwrap()), "model m");
        std::fs::write(r.join("b.wasm"), b"b").unwrap();
        assert_eq!(kind(&source(r, "b").unwrap()), "repository");
        let err = refused(source(r, "m"));
        assert!(err.contains("repository of a, b without it"), "{err}");
    }

    #[test]
    fn a_broken_onnx_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("clf.onnx"), b"not a protobuf").unwrap();
        let err = refused(source(d.path(), "m"));
        assert!(err.contains("clf.onnx"), "{err}");
    }
}
