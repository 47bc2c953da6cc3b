//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `kiln` binary cargo built for these tests, or `$KILN_E2E_BIN` (to run
/// the black-box tests against another build, e.g. an older commit's:
/// docs/security.md, "The hole tests before the fixes").
pub fn kiln_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("KILN_E2E_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_kiln").to_string())
    })
}

/// A `kiln` command with `args`.
pub fn kiln(args: &[&str]) -> Command {
    let mut c = Command::new(kiln_bin());
    c.args(args);
    c
}

/// Runs `kiln args…`, asserts success and returns stdout.
pub fn kiln_ok(args: &[&str]) -> String {
    let out = kiln(args).output().expect("running kiln");
    assert!(
        out.status.success(),
        "kiln {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `kiln args…`, asserts it fails cleanly (exit 1 or 2, an `error:`
/// line, no panic) and returns stderr.
pub fn kiln_err(args: &[&str]) -> String {
    check_clean_failure(kiln(args).output().expect("running kiln"), args)
}

/// Asserts `out` is a clean failure and returns its stderr.
pub fn check_clean_failure(out: Output, what: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "kiln {what:?} should have failed");
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "kiln {what:?} exited with {:?}: {stderr}",
        out.status
    );
    assert!(
        !stderr.contains("panicked"),
        "kiln {what:?} panicked: {stderr}"
    );
    stderr
}

/// A fresh scratch directory, removed when the value drops.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kiln-e2e-")
        .tempdir()
        .expect("temp dir")
}

/// Paths of a digits model trained once per test binary (seed 1), built into
/// a module, with its held-out rows.
pub struct Digits {
    pub model: PathBuf,
    pub module: PathBuf,
    pub test_csv: PathBuf,
}

pub fn digits() -> &'static Digits {
    static DIGITS: OnceLock<(tempfile::TempDir, Digits)> = OnceLock::new();
    let (_, d) = DIGITS.get_or_init(|| {
        let dir = scratch();
        let p = |n: &str| dir.path().join(n);
        let d = Digits {
            model: p("digits.safetensors"),
            module: p("digits.wasm"),
            test_csv: p("test.csv"),
        };
        kiln_ok(&[
            "train",
            "--data",
            "builtin:digits",
            "--seed",
            "1",
            "-o",
            s(&d.model),
            "--test-out",
            s(&d.test_csv),
        ]);
        kiln_ok(&["build", s(&d.model), "-o", s(&d.module)]);
        (dir, d)
    });
    d
}

/// A path as `&str` (test paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Parses `kiln predict` output into per-row score vectors.
pub fn scores(stdout: &str) -> Vec<Vec<f32>> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            v["scores"]
                .as_array()
                .expect("scores")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect()
        })
        .collect()
}

/// Bit patterns, for exact comparisons that also distinguish -0.0 and NaNs.
pub fn bits(rows: &[Vec<f32>]) -> Vec<Vec<u32>> {
    rows.iter()
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// Runs `module` on the JSON rows at `rows` in Node/V8 through the raw ABI
/// with no glue (`tests/node/abi-example.mjs`, the example in docs/abi.md)
/// and returns one score vector per row.
pub fn run_in_node(module: &Path, rows: &Path) -> Vec<Vec<f32>> {
    run_in_node_with(&[], module, rows)
}

/// The Node flags that give V8 relaxed SIMD: `--experimental-wasm-relaxed-simd`
/// where Node accepts it (Node 20; V8 ships the feature from Node 22), else none.
pub fn node_relaxed_simd_flags() -> Vec<&'static str> {
    let flag = "--experimental-wasm-relaxed-simd";
    let ok = Command::new("node")
        .args([flag, "-e", ""])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok { vec![flag] } else { vec![] }
}

/// What this Node's relaxed SIMD computes for `relaxed_dot(splat(-1),
/// splat(1), 0)` with `flags` (`tests/node/relaxed-probe.mjs`): the spec says
/// -4; Node 20's pre-release implementation gives -8.
pub fn node_relaxed_dot(flags: &[&str]) -> i32 {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/node/relaxed-probe.mjs"
    );
    let out = Command::new("node")
        .args(flags)
        .arg(script)
        .output()
        .expect("running node");
    assert!(
        out.status.success(),
        "this Node has no relaxed SIMD: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the probe prints one integer")
}

/// [`run_in_node`] with extra `node` flags (before the script).
pub fn run_in_node_with(flags: &[&str], module: &Path, rows: &Path) -> Vec<Vec<f32>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/node/abi-example.mjs");
    let out = Command::new("node")
        .args(flags)
        .args([script, s(module), s(rows)])
        .output()
        .expect("running node (Node.js 20 is part of kiln's test set-up)");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 stdout")
        .lines()
        .map(|l| {
            serde_json::from_str::<Vec<f64>>(l)
                .expect("a JSON array of scores")
                .into_iter()
                .map(|v| v as f32)
                .collect()
        })
        .collect()
}

/// Rows of a CSV with a header, without its last (target) column, as JSON.
pub fn csv_rows_as_json(csv: &Path, out: &Path) {
    let rows: Vec<Vec<f32>> = std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<f32> = l.split(',').map(|c| c.parse().unwrap()).collect();
            cells[..cells.len() - 1].to_vec()
        })
        .collect();
    std::fs::write(out, serde_json::to_string(&rows).unwrap()).unwrap();
}

/// The kernel (`mlp`, `cnn`, `cnn-int8`, `graph`) `kiln inspect` says a
/// module or model file carries, or gets from `kiln build`.
pub fn kernel_of(path: &Path) -> String {
    let info: serde_json::Value = serde_json::from_str(&kiln_ok(&["inspect", s(path)])).unwrap();
    info["kernel"].as_str().unwrap_or_default().to_string()
}
