//! `Sandbox::load` on wasm-smith modules shaped like ABI v1 (the six
//! exports, no imports), then a prediction: each must be refused or run
//! within its limits (`kiln::fuzzing::sandbox`).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use wasm_smith::{Config, Module};

/// The exports a module must have, as wasm-smith's `exports` template.
fn abi_exports() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        wat::parse_str(
            r#"(module
              (memory (export "memory") 1)
              (func (export "kiln_abi_version") (result i32) unreachable)
              (func (export "kiln_input_len") (result i32) unreachable)
              (func (export "kiln_output_len") (result i32) unreachable)
              (func (export "kiln_input") (param i32) (result i32) unreachable)
              (func (export "kiln_output") (result i32) unreachable)
              (func (export "kiln_run") (param i32) (result i32) unreachable))"#,
        )
        .expect("template")
    })
}

fn module(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut config: Config = u.arbitrary()?;
    config.exports = Some(abi_exports().to_vec());
    config.max_imports = 0;
    config.memory64_enabled = false;
    config.threads_enabled = false;
    Ok(Module::new(config, u)?.to_bytes())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(wasm) = module(&mut u) {
        kiln::fuzzing::sandbox(&wasm);
    }
});
