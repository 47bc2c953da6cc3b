//! Bringing models trained elsewhere into kiln.
//!
//! An importer turns a foreign model file into a kiln [`ModelFile`], which
//! is then built, quantized and served like a model kiln trained itself.
//! Importers are total and strict: anything they cannot represent exactly —
//! an op, an attribute value, a data type, a graph shape — is refused with
//! an error naming where it is, never approximated.
//!
//! * [`onnx`] — ONNX (`kiln import MODEL.onnx`), see `docs/onnx.md`.
//! * [`keras`] — Keras `.h5` and `.keras` (`kiln import MODEL.h5`), see
//!   `docs/keras.md`.
//! * [`xgboost`], [`lightgbm`] — their own tree-model files (`kiln import
//!   m.json`, `kiln import model.txt`, told by content), see
//!   `docs/trees.md`; the tree layout they share with ONNX-ML's tree ops is
//!   `trees`.
//!
//! [`ModelFile`]: crate::model::ModelFile

mod common;
pub mod keras;
pub mod lightgbm;
pub mod onnx;
mod trees;
pub mod xgboost;

pub use trees::{TreeError, TreeFileError};

use std::path::Path;

use crate::model::{ModelFile, ModelFileError};

/// Why [`model_file`] could not give a model.
#[derive(Debug, thiserror::Error)]
pub enum AnyModelError {
    #[error("importing {path}: {source}")]
    Keras {
        path: String,
        source: Box<keras::KerasError>,
    },
    #[error("importing {path}: {source}")]
    Onnx {
        path: String,
        source: Box<onnx::ImportError>,
    },
    #[error("importing {path}: {source}")]
    Trees {
        path: String,
        source: Box<TreeFileError>,
    },
    #[error(transparent)]
    File(#[from] ModelFileError),
    #[error("building the imported model: {0}")]
    Build(#[from] crate::module::ModuleError),
    #[error("writing the imported model file: {0}")]
    Save(String),
}

/// The kiln model in `bytes`: a kiln model file as it is, or a Keras
/// (`.h5`, `.keras`: told by content) or ONNX (`.onnx`: told by the
/// extension) model imported with the default options, named after the
/// file's stem — what `kiln build` accepts.
pub fn model_file(bytes: &[u8], path: &Path) -> Result<ModelFile, AnyModelError> {
    let name = path
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let shown = || path.display().to_string();
    if keras::sniff(bytes) {
        let options = keras::Options { name, task: None };
        return keras::import(bytes, &options)
            .map(|i| i.model)
            .map_err(|source| AnyModelError::Keras {
                path: shown(),
                source: Box::new(source),
            });
    }
    let trees = |source| AnyModelError::Trees {
        path: shown(),
        source: Box::new(source),
    };
    if xgboost::sniff(bytes) {
        return xgboost::import(bytes, &name).map_err(trees);
    }
    if lightgbm::sniff(bytes) {
        return lightgbm::import(bytes, &name).map_err(trees);
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        let options = onnx::Options {
            name,
            ..Default::default()
        };
        return onnx::import(bytes, &options)
            .map(|i| i.model)
            .map_err(|source| AnyModelError::Onnx {
                path: shown(),
                source: Box::new(source),
            });
    }
    Ok(ModelFile::from_bytes(bytes, path)?)
}
