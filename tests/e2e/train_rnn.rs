//! Recurrent models in `kiln train` (issue #19): the digits read as 8 steps
//! of 8 pixels, the builtin:sine regression against its linear baseline,
//! and the errors of the recurrent `--model` and `--shape` syntax.

use std::path::{Path, PathBuf};

use crate::common::*;

/// Runs `kiln train args… -o dir/name.safetensors`; returns the model path
/// and the summary line.
fn train(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, serde_json::Value) {
    let out = dir.join(format!("{name}.safetensors"));
    let mut all = vec!["train"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", s(&out)]);
    let stdout = kiln_ok(&all);
    let last = stdout.lines().last().expect("a summary line");
    (out, serde_json::from_str(last).expect("JSON summary"))
}

/// GRU and LSTM reach ≥ 96 % on the held-out digits read as sequences.
#[test]
fn gru_and_lstm_read_digits_as_sequences() {
    let dir = scratch();
    for model in ["gru:32", "lstm:32"] {
        let (_, v) = train(
            dir.path(),
            "digits",
            &[
                "--data",
                "builtin:digits",
                "--model",
                model,
                "--shape",
                "8x8",
                "--optimizer",
                "adam",
                "--clip",
                "5",
                "--epochs",
                "30",
                "--seed",
                "1",
            ],
        );
        let acc = v["test_accuracy"].as_f64().expect("test_accuracy");
        assert!(acc >= 0.96, "{model}: {v}");
    }
}

/// On builtin:sine the recurrent model's held-out R² beats least squares
/// on the same 16 lags and the same split.
#[test]
fn sine_recurrent_beats_the_linear_baseline() {
    let dir = scratch();
    let (_, v) = train(
        dir.path(),
        "sine",
        &[
            "--data",
            "builtin:sine",
            "--model",
            "gru:16",
            "--shape",
            "16x1",
            "--optimizer",
            "adam",
            "--epochs",
            "30",
            "--seed",
            "1",
        ],
    );
    let (r2, baseline) = (
        v["test_r2"].as_f64().expect("test_r2"),
        v["baseline_r2"].as_f64().expect("baseline_r2"),
    );
    assert!(r2 > baseline, "{v}");
}

#[test]
fn recurrent_errors_are_clear() {
    let dir = scratch();
    let out = dir.path().join("m.safetensors");
    let csv = dir.path().join("seq.csv");
    std::fs::write(&csv, "a0,a1,b0,b1,y\n1,2,3,4,0\n4,3,2,1,1\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--data", s(&csv), "--target", "y", "--model", "gru:4"],
            "a recurrent model needs --shape TxF",
        ),
        (
            vec!["--data", "builtin:digits", "--model", "gru:8,lstm:8"],
            "`gru:8` in `gru:8,lstm:8` is followed by another recurrent layer, so it needs `:seq`",
        ),
        (
            vec!["--data", "builtin:digits", "--model", "lstm:8:orig"],
            "`:orig` (the original GRU formulation) applies to gru only, not lstm",
        ),
        (
            vec!["--data", "builtin:digits", "--model", "gru:8:fast"],
            "unknown option `:fast`",
        ),
        (
            vec![
                "--data",
                "builtin:digits",
                "--model",
                "gru:8",
                "--shape",
                "1x8x8",
            ],
            "a recurrent model needs --shape TxF (time steps × features per step), got 3 sizes",
        ),
        (
            vec![
                "--data",
                "builtin:digits",
                "--model",
                "gru:8",
                "--shape",
                "8x4",
            ],
            "--shape [8, 4] holds 32 values, but there are 64 feature columns",
        ),
        (
            vec![
                "--data",
                "builtin:sine",
                "--model",
                "gru:8",
                "--shape",
                "8x2",
            ],
            "builtin:sine has one value per step: use --shape Tx1",
        ),
        (
            vec![
                "--data",
                "builtin:digits",
                "--model",
                "gru:8",
                "--clip",
                "0",
            ],
            "--clip must be a positive number, got 0",
        ),
        (
            vec![
                "--data",
                "builtin:digits",
                "--model",
                "softmax",
                "--task",
                "regression",
            ],
            "--model softmax is only for classification",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["train"];
        all.extend_from_slice(&args);
        all.extend_from_slice(&["--seed", "1", "--epochs", "1", "-o", s(&out)]);
        let err = kiln_err(&all);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} left an output file");
    }
}
