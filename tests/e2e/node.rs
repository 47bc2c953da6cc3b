//! The same module in V8 (Node), driven through the raw ABI with no glue —
//! the client and example in docs/abi.md — gives the native kernel's bits.

use crate::common::*;

const EXAMPLE: &str = include_str!("../node/abi-example.mjs");
const CLIENT: &str = include_str!("../../web/abi/abi.js");

#[test]
fn node_runs_the_module_with_native_bits() {
    let d = digits();
    let dir = scratch();
    // The held-out rows as a JSON array (features only: drop the label).
    let rows_path = dir.path().join("rows.json");
    csv_rows_as_json(&d.test_csv, &rows_path);

    let v8 = run_in_node(&d.module, &rows_path);
    let native = scores(&kiln_ok(&[
        "predict",
        s(&d.module),
        "--native",
        "--input",
        s(&rows_path),
    ]));
    assert_eq!(v8.len(), 359, "held-out rows");
    assert_eq!(bits(&v8), bits(&native), "V8 and native scores differ");
}

/// A MobileNet-like module — depthwise, grouped, dilated and SAME-padded
/// convolutions, ReLU6, hard-swish, hard-sigmoid — gives the same bits in
/// V8, in wasmtime and natively.
#[test]
fn node_runs_depthwise_layers_with_native_bits() {
    let dir = scratch();
    let (model, module) = (dir.path().join("m.safetensors"), dir.path().join("m.wasm"));
    kiln::bench::models::mobilenet_blocks(3)
        .save(&model)
        .unwrap();
    kiln_ok(&["build", s(&model), "-o", s(&module)]);
    let x = kiln::bench::models::rows(5, 3 * 32 * 32, 9);
    let rows: Vec<&[f32]> = x.chunks(3 * 32 * 32).collect();
    let rows_path = dir.path().join("rows.json");
    std::fs::write(&rows_path, serde_json::to_string(&rows).unwrap()).unwrap();
    let v8 = run_in_node(&module, &rows_path);
    let predict = |extra: &[&str]| {
        let args = [&["predict", s(&module), "--input", s(&rows_path)], extra].concat();
        scores(&kiln_ok(&args))
    };
    let (wasmtime, native) = (predict(&[]), predict(&["--native"]));
    assert_eq!(v8.len(), 5);
    assert_eq!(bits(&v8), bits(&native), "V8 and native scores differ");
    assert_eq!(bits(&wasmtime), bits(&native), "wasmtime and native differ");
}

/// The ABI document shows the client and the example verbatim, so the docs
/// cannot drift from code that runs.
#[test]
fn abi_doc_shows_the_tested_example() {
    let doc = include_str!("../../docs/abi.md");
    assert!(
        doc.contains(EXAMPLE.trim()),
        "docs/abi.md must contain tests/node/abi-example.mjs verbatim"
    );
    assert!(
        doc.contains(CLIENT.trim()),
        "docs/abi.md must contain web/abi/abi.js verbatim"
    );
}
