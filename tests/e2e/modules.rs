//! Modules and model files that must be refused, and sandbox limits.

use crate::common::*;

/// Writes `wat` as a module file in `dir` and returns its path.
fn module(dir: &tempfile::TempDir, name: &str, wat: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, wat::parse_str(wat).expect("valid wat")).unwrap();
    path
}

/// A hand-written ABI v1 module: one input value, one output, and a
/// `kiln_run` body given by the test.
fn abi_module(version: i32, run_body: &str, extra: &str) -> String {
    format!(
        r#"(module
          (memory (export "memory") 1)
          (func (export "kiln_abi_version") (result i32) i32.const {version})
          (func (export "kiln_input_len") (result i32) i32.const 1)
          (func (export "kiln_output_len") (result i32) i32.const 1)
          (func (export "kiln_input") (param i32) (result i32) i32.const 64)
          (func (export "kiln_output") (result i32) i32.const 64)
          (func (export "kiln_run") (param i32) (result i32) {run_body})
          {extra})"#
    )
}

fn predict_err(path: &std::path::Path, extra: &[&str]) -> String {
    let dir = scratch();
    let input = dir.path().join("in.json");
    std::fs::write(&input, "[[1.0]]").unwrap();
    let mut args = vec!["predict", s(path), "--input", s(&input)];
    args.extend_from_slice(extra);
    kiln_err(&args)
}

#[test]
fn hand_written_module_runs() {
    let dir = scratch();
    let path = module(&dir, "ok.wasm", &abi_module(1, "i32.const 0", ""));
    let input = dir.path().join("in.json");
    std::fs::write(&input, "[[1.5]]").unwrap();
    // No kiln.meta section: refused with a clear message, not a crash.
    let err = kiln_err(&["predict", s(&path), "--input", s(&input)]);
    assert!(err.contains("kiln.meta"), "{err}");
}

#[test]
fn other_abi_version_is_refused() {
    let dir = scratch();
    let path = module(&dir, "v2.wasm", &abi_module(2, "i32.const 0", ""));
    let err = predict_err(&path, &[]);
    assert!(err.contains("ABI version 2"), "{err}");
}

#[test]
fn missing_export_is_refused() {
    let dir = scratch();
    let wat = abi_module(1, "i32.const 0", "").replace("(export \"kiln_run\")", "");
    let path = module(&dir, "noexport.wasm", &wat);
    let err = predict_err(&path, &[]);
    assert!(err.contains("lacks the export `kiln_run`"), "{err}");
}

#[test]
fn wrongly_typed_export_is_refused() {
    let dir = scratch();
    let wat = abi_module(1, "i32.const 0", "").replace(
        "(func (export \"kiln_output\") (result i32) i32.const 64)",
        "(func (export \"kiln_output\") (param i32) (result i32) i32.const 64)",
    );
    let path = module(&dir, "badtype.wasm", &wat);
    let err = predict_err(&path, &[]);
    assert!(err.contains("`kiln_output` has the wrong type"), "{err}");
}

#[test]
fn any_import_is_refused() {
    let dir = scratch();
    let wat = abi_module(1, "call $f i32.const 0", "")
        .replace("(module", "(module (import \"env\" \"f\" (func $f))");
    let path = module(&dir, "imports.wasm", &wat);
    let err = predict_err(&path, &[]);
    assert!(err.contains("imports `env::f`"), "{err}");
}

#[test]
fn garbage_and_truncated_modules_are_refused() {
    let d = digits();
    let bytes = std::fs::read(&d.module).unwrap();
    let dir = scratch();
    for (name, body) in [
        ("truncated.wasm", bytes[..bytes.len() / 2].to_vec()),
        ("garbage.wasm", b"\0asm\x01\0\0\0garbage".to_vec()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let err = predict_err(&path, &[]);
        assert!(err.contains("error:"), "{err}");
        let err = predict_err(&path, &["--native"]);
        assert!(err.contains("error:"), "{err}");
    }
}

/// Infinite loops meet the deadline (epoch interruption).
#[test]
fn endless_loop_hits_the_deadline() {
    let dir = scratch();
    let meta = meta_section();
    let path = module(
        &dir,
        "loop.wasm",
        &abi_module(1, "(loop br 0) i32.const 0", &meta),
    );
    let start = std::time::Instant::now();
    let err = predict_err(&path, &["--timeout-ms", "200"]);
    assert!(err.contains("deadline"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

/// Unbounded memory growth meets the memory cap.
#[test]
fn memory_growth_hits_the_cap() {
    let dir = scratch();
    let meta = meta_section();
    // Grow one page at a time until memory.grow fails, then trap.
    let body = "(block (loop (br_if 1 (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (br 0))) unreachable";
    let path = module(&dir, "grow.wasm", &abi_module(1, body, &meta));
    let err = predict_err(&path, &["--memory-mib", "2"]);
    assert!(err.contains("trapped"), "{err}");
}

/// A minimal `kiln.meta` section so hand-written modules get past metadata.
fn meta_section() -> String {
    let meta = serde_json::json!({
        "abi_version": 1, "name": "t", "version": "1", "task": "regression",
        "input": {"name": "x", "datatype": "FP32", "shape": [1]},
        "output": {"name": "y", "datatype": "FP32", "shape": [1]},
        "model_sha256": "", "kiln_version": "test"
    })
    .to_string();
    format!("(@custom \"kiln.meta\" \"{}\")", meta.replace('"', "\\\""))
}

#[test]
fn broken_model_files_are_refused_with_names() {
    let d = digits();
    let bytes = std::fs::read(&d.model).unwrap();
    let dir = scratch();
    let out = dir.path().join("out.wasm");
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let err = kiln_err(&["build", s(&truncated), "-o", s(&out)]);
    assert!(err.contains("truncated.safetensors"), "{err}");
    assert!(!out.exists());

    // Rename a tensor in the header: the layer that needs it is named.
    let text = bytes.clone();
    let pos = find(&text, b"\"dense1.bias\":{").expect("tensor entry");
    let mut renamed = text.clone();
    renamed[pos + 1..pos + 12].copy_from_slice(b"dense1.bixx");
    let path = dir.path().join("renamed.safetensors");
    std::fs::write(&path, &renamed).unwrap();
    let err = kiln_err(&["build", s(&path), "-o", s(&out)]);
    assert!(err.contains("tensor `dense1.bias` is missing"), "{err}");

    let not_model = dir.path().join("plain.safetensors");
    std::fs::write(&not_model, b"hello").unwrap();
    let err = kiln_err(&["inspect", s(&not_model)]);
    assert!(err.contains("plain.safetensors"), "{err}");
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A module whose embedded model holds a NaN weight: the module's own decode
/// checks only the model's structure (docs/abi.md), so the hosts refuse it
/// when they load it, naming the layer and tensor — the sandbox before any
/// request, and `--native`.
#[test]
fn non_finite_weights_are_refused_at_load() {
    let d = digits();
    let mut bytes = std::fs::read(&d.module).unwrap();
    let blob = kiln::module::embedded_blob(&bytes).unwrap().unwrap();
    let at = blob.as_ptr() as usize - bytes.as_ptr() as usize;
    // The first layer record starts at byte 20 (op, param count, params);
    // its first tensor's offset is the first param of a standardize layer
    // (op 1) and the third of a dense layer (op 2: inputs, outputs, weight).
    let word = |i: usize| u32::from_le_bytes(blob[i..i + 4].try_into().unwrap()) as usize;
    let (layer0, tensor) = match word(20) {
        1 => (word(28), "mean"),
        2 => (word(36), "weight"),
        op => panic!("digits starts with op {op}"),
    };
    bytes[at + layer0..at + layer0 + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let dir = scratch();
    let path = dir.path().join("nan.wasm");
    std::fs::write(&path, &bytes).unwrap();
    let want = format!("layer 0: tensor `{tensor}` holds NaN or infinity");
    for extra in [&[][..], &["--native"]] {
        let err = predict_err(&path, extra);
        assert!(err.contains(&want), "{extra:?}: {err}");
    }
}
