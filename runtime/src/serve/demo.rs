//! The built-in demo model.
//!
//! `kiln serve` with no repository serves `digits`: the model file that
//! `kiln train --data builtin:digits --seed 1` writes (committed as
//! `runtime/data/digits.safetensors`; a test checks it still is exactly
//! that), compiled into its module at start-up like `kiln build` would.

use std::path::Path;

use crate::model::ModelFile;
use crate::module::{self, sha256_hex};
use crate::registry::BuiltinModel;

/// `kiln train --data builtin:digits --seed 1` output.
pub const DEMO_MODEL: &[u8] = include_bytes!("../../data/digits.safetensors");
/// The name the demo model is served under.
pub const DEMO_NAME: &str = "digits";

/// The demo model, built into its module.
pub fn builtin() -> Result<BuiltinModel, String> {
    let path = Path::new("built-in digits.safetensors");
    let model = ModelFile::from_bytes(DEMO_MODEL, path).map_err(|e| e.to_string())?;
    let wasm = module::build(&model, &sha256_hex(DEMO_MODEL)).map_err(|e| e.to_string())?;
    Ok(BuiltinModel {
        name: DEMO_NAME.into(),
        wasm: wasm.into(),
        safetensors: Some(DEMO_MODEL.into()),
    })
}
