//! The ABI v1 surface a module must have (`docs/abi.md`): no imports, a
//! memory, and six functions with their types.

use wasmtime::{Module, ValType};

use super::error::SandboxError;

const EXPORTS: [(&str, &[ValType]); 6] = [
    ("kiln_abi_version", &[]),
    ("kiln_input_len", &[]),
    ("kiln_output_len", &[]),
    ("kiln_input", &[ValType::I32]),
    ("kiln_run", &[ValType::I32]),
    ("kiln_output", &[]),
];

/// Checks `module`'s exports against ABI v1.
pub(super) fn check_exports(module: &Module) -> Result<(), SandboxError> {
    match module.get_export("memory") {
        Some(wasmtime::ExternType::Memory(_)) => {}
        Some(_) => {
            return Err(SandboxError::ExportType {
                name: "memory",
                expected: "a memory",
            });
        }
        None => return Err(SandboxError::MissingExport("memory")),
    }
    for (name, params) in EXPORTS {
        let Some(ext) = module.get_export(name) else {
            return Err(SandboxError::MissingExport(name));
        };
        let ok = ext.func().is_some_and(|f| {
            f.params()
                .map(|p| p.to_string())
                .eq(params.iter().map(|p| p.to_string()))
                && f.results().map(|r| r.to_string()).eq(["i32".to_string()])
        });
        if !ok {
            return Err(SandboxError::ExportType {
                name,
                expected: if params.is_empty() {
                    "func() -> i32"
                } else {
                    "func(i32) -> i32"
                },
            });
        }
    }
    Ok(())
}
