//! Bringing models trained elsewhere into kiln.
//!
//! An importer turns a foreign model file into a kiln [`ModelFile`], which
//! is then built, quantized and served like a model kiln trained itself.
//! Importers are total and strict: anything they cannot represent exactly —
//! an op, an attribute value, a data type, a graph shape — is refused with
//! an error naming where it is, never approximated.
//!
//! * [`onnx`] — ONNX (`kiln import MODEL.onnx`), see `docs/onnx.md`.
//!
//! [`ModelFile`]: crate::model::ModelFile

pub mod onnx;
