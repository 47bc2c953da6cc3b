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

/// GRU and LSTM reach ≥ 96 % on the held-out digits read as sequences,
/// for seeds 1, 2 and 3 (30 epochs of adam, ~5 s each in a debug build).
#[test]
fn gru_and_lstm_read_digits_as_sequences() {
    let dir = scratch();
    for (model, seed) in ["gru:32", "lstm:32"]
        .into_iter()
        .flat_map(|m| ["1", "2", "3"].map(|s| (m, s)))
    {
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
                seed,
            ],
        );
        let acc = v["test_accuracy"].as_f64().expect("test_accuracy");
        assert!(acc >= 0.96, "{model} seed {seed}: {v}");
    }
}

/// On builtin:sine the recurrent model's held-out R² beats least squares
/// on the same 16 lags and the same split, for seeds 1, 2 and 3.
#[test]
fn sine_recurrent_beats_the_linear_baseline() {
    let dir = scratch();
    for seed in ["1", "2", "3"] {
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
                seed,
            ],
        );
        let (r2, baseline) = (
            v["test_r2"].as_f64().expect("test_r2"),
            v["baseline_r2"].as_f64().expect("baseline_r2"),
        );
        assert!(r2 > baseline + 0.05, "seed {seed}: {v}");
    }
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

/// `kiln train --model gru:16 --shape 8x8` → `kiln build` → `kiln predict`
/// gives the native kernel's bits, and `kiln eval` on the held-out rows
/// reports the accuracy training did; likewise for a stacked bidirectional
/// model and a sine regression model.
#[test]
fn recurrent_models_build_with_native_bits_and_eval_agrees() {
    let dir = scratch();
    let cases: [(&str, &[&str]); 3] = [
        (
            "gru",
            &[
                "--data",
                "builtin:digits",
                "--model",
                "gru:16",
                "--shape",
                "8x8",
            ],
        ),
        (
            "stacked",
            &[
                "--data",
                "builtin:digits",
                "--model",
                "lstm:8:seq:bi,gru:8:orig,d16",
            ],
        ),
        (
            "sine",
            &[
                "--data",
                "builtin:sine",
                "--model",
                "rnn:8",
                "--shape",
                "12x1",
            ],
        ),
    ];
    for (name, args) in cases {
        let test = dir.path().join(format!("{name}-test.csv"));
        let mut all = args.to_vec();
        all.extend_from_slice(&["--optimizer", "adam", "--epochs", "3", "--seed", "2"]);
        all.extend_from_slice(&["--test-out", s(&test)]);
        let (model, v) = train(dir.path(), name, &all);
        let module = model.with_extension("wasm");
        kiln_ok(&["build", s(&model), "-o", s(&module)]);
        let wasm = scores(&kiln_ok(&["predict", s(&module), "--input", s(&test)]));
        let native = scores(&kiln_ok(&[
            "predict",
            s(&module),
            "--native",
            "--input",
            s(&test),
        ]));
        assert_eq!(
            wasm.len(),
            v["held_out_rows"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(
            bits(&wasm),
            bits(&native),
            "{name}: wasm and native scores differ"
        );
        let eval: serde_json::Value =
            serde_json::from_str(&kiln_ok(&["eval", s(&model), "--data", s(&test), "--json"]))
                .unwrap();
        for key in ["accuracy", "mse", "r2"] {
            let summary_key = format!("test_{key}");
            assert_eq!(
                eval.get(key),
                v.get(&summary_key),
                "{name}: {key}: {eval} vs {v}"
            );
        }
        assert!(eval.get("accuracy").or(eval.get("r2")).is_some(), "{eval}");
    }
}

/// The README's recurrent example, run: `kiln train` prints the summary the
/// README shows (the held-out accuracy within a point: the matrix products'
/// summation order may differ on other CPUs), `kiln build` a module of the
/// size shown, and `kiln predict` the classes shown.
#[test]
fn readme_recurrent_example() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("A recurrent model reads each row as a sequence")
        .nth(1)
        .expect("the README's recurrent example");
    let block = section
        .split("```console\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a console block");
    let dir = scratch();
    let lines: Vec<&str> = block.lines().collect();
    let mut commands = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(cmd) = line.strip_prefix("$ ") else {
            continue;
        };
        commands += 1;
        let shown: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| !l.starts_with("$ "))
            .copied()
            .filter(|l| !l.is_empty())
            .collect();
        let (stdin, cmd) = match cmd.split_once(" | ") {
            Some((head, rest)) => {
                let [_, "-n", n, file] = head.split_whitespace().collect::<Vec<_>>()[..] else {
                    panic!("unexpected pipe in `{cmd}`");
                };
                let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
                let n: usize = n.parse().unwrap();
                (
                    Some(text.lines().take(n).collect::<Vec<_>>().join("\n") + "\n"),
                    rest,
                )
            }
            None => (None, cmd),
        };
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        let mut child = kiln(&args)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), shown.len(), "{cmd}");
        for (g, shown) in got.iter().zip(&shown) {
            // Shown scores are abbreviated with `…`; the rest is JSON.
            let w: serde_json::Value = match shown.split_once(",\"scores\"") {
                Some((head, _)) => serde_json::from_str(&format!("{head}}}")),
                None => serde_json::from_str(shown),
            }
            .unwrap_or_else(|e| panic!("README line {shown}: {e}"));
            let w = &w;
            match args[0] {
                "train" => {
                    let acc = |v: &serde_json::Value| v["test_accuracy"].as_f64().unwrap();
                    assert!((acc(g) - acc(w)).abs() <= 0.01, "{g} vs README {w}");
                    assert!(acc(g) >= 0.96, "{g}");
                    for key in ["held_out_rows", "epochs_run", "model", "seed"] {
                        assert_eq!(g[key], w[key], "{key}");
                    }
                }
                "build" => assert_eq!(g, w),
                "predict" => assert_eq!(g["class"], w["class"], "{g} vs README {w}"),
                other => panic!("unexpected command {other}"),
            }
        }
    }
    assert_eq!(commands, 3, "train, build, predict");
}

/// `--clip` reaches the optimizer: with sgd, a norm of 10⁻⁶ bounds every
/// step to 5·10⁻⁸ (lr 0.05), so the loss stays at its initial ~ln 10,
/// while the same run unclipped learns.
#[test]
fn clip_bounds_every_step() {
    let dir = scratch();
    let loss = |clip: Option<&str>| {
        let mut args = vec![
            "--data",
            "builtin:digits",
            "--model",
            "gru:8",
            "--epochs",
            "2",
        ];
        args.extend_from_slice(&["--optimizer", "sgd", "--seed", "4"]);
        if let Some(c) = clip {
            args.extend_from_slice(&["--clip", c]);
        }
        train(dir.path(), "clip", &args).1["train_loss"]
            .as_f64()
            .unwrap()
    };
    let (clipped, free) = (loss(Some("1e-6")), loss(None));
    assert!(
        clipped > 2.2 && clipped > free + 0.2,
        "clipped {clipped}, unclipped {free}"
    );
}
