//! Shrinking models: int8 quantization ([`quantize`]), pruning ([`prune`])
//! and comparing a shrunk model with its original ([`eval`]).
//!
//! Everything here works on [`ModelFile`]s and produces new ones; the guest
//! kernel runs the result (see `docs/quantization.md` for the int8
//! arithmetic). Calibration and evaluation run the models natively with the
//! very kernel that modules run, so the numbers reported are the numbers a
//! module produces.

mod calibrate;
pub mod eval;
pub mod prune;
pub mod quantize;

pub use calibrate::{CalibMethod, QuantRange};
pub use eval::{Comparison, LabelledData, Score, compare, labelled_data};
pub use prune::{FinetuneConfig, PruneMethod, PruneReport, finetune, prune};
pub use quantize::{QuantizeConfig, Scheme, quantize};

use crate::data::DataError;
use crate::model::ModelFileError;

/// Why a model could not be shrunk or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    #[error(transparent)]
    Model(#[from] ModelFileError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("the model is already quantized (layer {layer} is `{op}`); quantize the f32 model")]
    AlreadyQuantized { layer: usize, op: &'static str },
    #[error(
        "{0} needs a chain model; this one is a graph (format 2): quantize and fine-tune chains only"
    )]
    Graph(&'static str),
    /// What `to_kernel` checks before quantizing, should it ever let a
    /// tensor through that the quantizer cannot read.
    #[error("layer {layer}: tensor `{tensor}` {problem}")]
    Tensor {
        layer: usize,
        tensor: String,
        problem: &'static str,
    },
    #[error("the model has no dense layers to {0}")]
    NoDense(&'static str),
    #[error("calibration data has no rows")]
    NoCalibrationRows,
    #[error("running the model on the calibration data failed: {0}")]
    Run(#[from] kiln_guest::RunError),
    #[error("{0}")]
    Config(String),
    #[error(
        "fine-tuning needs the layout `kiln train` writes (standardize, dense, activation, …, dense, softmax); layer {layer} is `{op}`"
    )]
    Layout { layer: usize, op: &'static str },
    #[error(
        "{path}: target value {value} on row {row} is not one of the model's labels ({labels})"
    )]
    UnknownLabel {
        path: std::path::PathBuf,
        row: usize,
        value: f32,
        labels: String,
    },
    #[error("the model has no labels; evaluation needs a classifier")]
    NoLabels,
    #[error("fine-tuning diverged (loss is {0}); try a smaller --lr")]
    Diverged(f32),
}

/// The dense layers of `model`'s graph, as (layer index, weight name, bias name).
pub(crate) fn dense_layers(model: &crate::model::ModelFile) -> Vec<(usize, String, String)> {
    model
        .graph
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match l {
            crate::model::LayerSpec::Dense { weight, bias } => {
                Some((i, weight.clone(), bias.clone()))
            }
            _ => None,
        })
        .collect()
}
