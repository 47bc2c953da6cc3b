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
