//! Keras import: a saved Keras model → a kiln [`ModelFile`].
//!
//! Three file kinds, told apart by their first bytes:
//!
//! * **legacy HDF5** (`model.save("m.h5")` in Keras 2, tf.keras and Keras
//!   3): the architecture is the JSON attribute `model_config` of the root
//!   group, the weights are `model_weights/<layer>/<weight name>`, listed
//!   in order by each layer group's `weight_names` attribute;
//! * **Keras 3 archives** (`.keras`): a zip ([`archive`]) of `config.json`
//!   and `model.weights.h5`, whose weights are `layers/<layer>/vars/<i>`.
//!
//! The steps, each total: read the container ([`hdf5`], [`archive`]), find
//! the layers the config describes ([`config`]: Sequential or functional,
//! a chain or a graph), and lower each layer with its weights into kiln
//! layers ([`lower`], [`image`], [`affine`], [`join`], [`recurrent`]), converting Keras's
//! channels-last layout in the weights so callers feed rows as they fed
//! Keras. Anything else is refused naming the layer, its class and the
//! nearest supported alternative ([`refuse`]). The supported set is
//! documented in `docs/keras.md`.

mod affine;
mod archive;
mod config;
mod hdf5;
mod image;
mod join;
mod lower;
mod recurrent;
mod refuse;
mod state;
#[cfg(test)]
mod tests;

use crate::model::{ModelFile, ModelFileError, Task};

/// The largest file the importer reads (and the largest member it inflates
/// from an archive): a bound on what a hostile file can make it allocate.
pub const MAX_FILE_BYTES: usize = 1 << 30;

/// Why a Keras model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum KerasError {
    #[error("not a Keras model: {0}")]
    NotKeras(String),
    #[error("{file}: {problem}")]
    Archive { file: String, problem: String },
    #[error("{file}: HDF5 `{path}`: {problem}")]
    Hdf5 {
        file: String,
        path: String,
        problem: String,
    },
    #[error("{file}: the model config: {problem}")]
    Config { file: String, problem: String },
    #[error("layer {layer:?} ({class}): {problem}")]
    Layer {
        layer: String,
        class: String,
        problem: String,
    },
    #[error("the imported graph is invalid: {0}")]
    Model(#[from] ModelFileError),
}

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The kiln model's name.
    pub name: String,
    /// `None`: classification when the model ends in a softmax, regression
    /// otherwise.
    pub task: Option<Task>,
}

/// An imported model and what the importer decided on the way.
#[derive(Debug, Clone)]
pub struct Imported {
    pub model: ModelFile,
    /// Human-readable notes (layers folded or dropped).
    pub notes: Vec<String>,
    /// Keras layers read (the input layer included).
    pub layers: usize,
    /// `"legacy h5"` or `"keras archive"`, and the Keras version that saved it.
    pub format: String,
}

/// The first bytes of an HDF5 file (at offset 0; a user block is refused).
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";
/// The first bytes of a zip archive's first local file header.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Whether `bytes` look like a file this importer reads (HDF5 or zip).
pub fn sniff(bytes: &[u8]) -> bool {
    bytes.starts_with(HDF5_MAGIC) || bytes.starts_with(ZIP_MAGIC)
}

/// Imports a Keras model from the bytes of a `.h5` or `.keras` file.
pub fn import(bytes: &[u8], options: &Options) -> Result<Imported, KerasError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(KerasError::NotKeras(format!(
            "the file has {} bytes; kiln reads Keras files up to {MAX_FILE_BYTES}",
            bytes.len()
        )));
    }
    let (saved, format) = if bytes.starts_with(HDF5_MAGIC) {
        let file = hdf5::H5::open(bytes.to_vec(), "the .h5 file")?;
        let saved = config::Saved::legacy(file)?;
        let version = saved.keras_version.clone();
        (saved, format!("legacy h5 (Keras {version})"))
    } else if bytes.starts_with(ZIP_MAGIC) {
        let zip = archive::Zip::new(bytes)?;
        let config = zip.member("config.json")?;
        let weights = zip.member("model.weights.h5")?;
        let metadata = zip.member("metadata.json").ok();
        let file = hdf5::H5::open(weights, "model.weights.h5")?;
        let saved = config::Saved::archive(&config, metadata.as_deref(), file)?;
        let version = saved.keras_version.clone();
        (saved, format!("keras archive (Keras {version})"))
    } else {
        return Err(KerasError::NotKeras(
            "it is neither an HDF5 file (.h5) nor a zip archive (.keras)".into(),
        ));
    };
    let mut notes = Vec::new();
    let layers = saved.net.layers.len();
    let model = lower::lower(&saved, options, &mut notes)?;
    Ok(Imported {
        model,
        notes,
        layers,
        format,
    })
}
