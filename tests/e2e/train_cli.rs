//! What `kiln train` shows and refuses: `--log-json` lines, early stopping,
//! the loss-curve plots, `kiln eval`'s accuracy and confusion matrix, and
//! the errors for bad data and bad options.

use crate::common::*;

#[test]
fn log_json_early_stop_and_plots() {
    let dir = scratch();
    let png = dir.path().join("curve.png");
    let svg = dir.path().join("curve.svg");
    let out = kiln_ok(&[
        "train",
        "--data",
        "builtin:digits",
        "--optimizer",
        "adam",
        "--epochs",
        "200",
        "--early-stop",
        "3",
        "--seed",
        "4",
        "--log-json",
        "--plot",
        s(&png),
        "-o",
        s(&dir.path().join("m.safetensors")),
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (epochs, last) = lines.split_at(lines.len() - 1);
    let last = &last[0];
    assert!(epochs.len() < 200, "early stopping never stopped");
    assert_eq!(last["epochs_run"], epochs.len());
    for (i, e) in epochs.iter().enumerate() {
        assert_eq!(e["epoch"], i + 1);
        assert_eq!(e["metric"], "accuracy");
        for k in ["train_loss", "val_loss", "val_metric", "seconds"] {
            assert!(e[k].as_f64().is_some(), "{k} missing in {e}");
        }
    }
    // The kept weights are the best epoch's: patience ran out 3 epochs later.
    let best = last["best_epoch"].as_u64().unwrap() as usize;
    assert_eq!(best + 3, epochs.len());
    let best_loss = epochs[best - 1]["val_loss"].as_f64().unwrap();
    assert!(
        epochs
            .iter()
            .all(|e| e["val_loss"].as_f64().unwrap() >= best_loss)
    );
    assert!(last["test_accuracy"].as_f64().unwrap() > 0.9);

    let png_bytes = std::fs::read(&png).unwrap();
    assert!(png_bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png_bytes.len() > 10_000, "PNG of {} bytes", png_bytes.len());

    kiln_ok(&[
        "train",
        "--data",
        "builtin:digits",
        "--model",
        "softmax",
        "--epochs",
        "5",
        "--seed",
        "4",
        "--plot",
        s(&svg),
        "-o",
        s(&dir.path().join("s.safetensors")),
    ]);
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg_text.contains("<svg") && svg_text.contains("validation") && svg_text.contains("epoch")
    );
}

/// `kiln eval` agrees with the held-out accuracy `kiln train` reported, and
/// its confusion matrix accounts for every row.
#[test]
fn eval_reports_accuracy_and_confusion() {
    let d = digits();
    let eval: serde_json::Value = serde_json::from_str(&kiln_ok(&[
        "eval",
        s(&d.model),
        "--data",
        s(&d.test_csv),
        "--json",
    ]))
    .unwrap();
    assert_eq!(eval["task"], "classification");
    assert_eq!(eval["rows"], 359);
    let confusion: Vec<Vec<u64>> = serde_json::from_value(eval["confusion"].clone()).unwrap();
    assert_eq!(confusion.len(), 10);
    assert_eq!(confusion.iter().flatten().sum::<u64>(), 359);
    let diagonal: u64 = (0..10).map(|i| confusion[i][i]).sum();
    let acc = eval["accuracy"].as_f64().unwrap();
    assert!((acc - diagonal as f64 / 359.0).abs() < 1e-6);
    assert!(acc >= 0.97, "{eval}");

    let table = kiln_ok(&["eval", s(&d.model), "--data", s(&d.test_csv)]);
    let err = kiln_err(&["eval", s(&d.module), "--data", s(&d.test_csv)]);
    assert!(err.contains("is a module"), "{err}");
    assert!(
        table.contains("confusion matrix") && table.contains("accuracy: "),
        "{table}"
    );
}

#[test]
fn training_errors_are_clear() {
    let dir = scratch();
    let out = dir.path().join("m.safetensors");
    let o = s(&out);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--data", "builtin:digits", "--model", "logistic"],
            "logistic is binary, but the target `digit` has 10 classes",
        ),
        (
            vec!["--data", "builtin:digits", "--model", "cnn:c8k9p0"],
            "does not fit a 1×8×8 input",
        ),
        (
            vec!["--data", "builtin:digits", "--model", "cnn:c8k3,x2"],
            "`x2` in `cnn:c8k3,x2` is not a CNN layer",
        ),
        (
            vec![
                "--data",
                "builtin:digits",
                "--model",
                "cnn",
                "--shape",
                "2x8x8",
            ],
            "--shape [2, 8, 8] holds 128 values, but there are 64 feature columns",
        ),
        (
            vec!["--data", "builtin:digits", "--shape", "1x8x8"],
            "--shape applies to cnn and recurrent models only",
        ),
        (
            vec![
                "--data",
                "builtin:digits",
                "--early-stop",
                "2",
                "--val-split",
                "0",
            ],
            "--early-stop needs validation rows",
        ),
        (
            vec!["--data", "builtin:digits", "--plot", "curve.gif"],
            "must end in .png or .svg",
        ),
        (
            vec!["--data", "builtin:digits", "--lr", "1e30", "--epochs", "2"],
            "diverged",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["train"];
        all.extend_from_slice(&args);
        all.extend_from_slice(&["--seed", "1", "-o", o]);
        let err = kiln_err(&all);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} left an output file");
    }
    // Malformed CSV: each error names the file, the line and the column.
    let csv_cases = [
        (
            "ragged.csv",
            "a,b,y\n1,2,0\n3,1\n",
            "ragged.csv: line 3: 2 columns, but the header has 3",
        ),
        (
            "text.csv",
            "a,b,y\n1,2,0\n3,four,1\n",
            "text.csv: line 3, column `b`: `four` is not a number",
        ),
        (
            "nan.csv",
            "a,b,y\n1,2,0\n3,NaN,1\n",
            "nan.csv: line 3, column `b`: NaN is not a finite number",
        ),
        (
            "inf.csv",
            "a,b,y\n1,inf,0\n",
            "inf.csv: line 2, column `b`: inf is not a finite number",
        ),
        ("empty.csv", "", "empty.csv: the file is empty"),
        ("notarget.csv", "a,b\n1,2\n", "notarget.csv: no column `y`"),
        (
            "fraction.csv",
            "a,b,y\n1,2,0\n3,4,0.5\n",
            "column `y` has value 0.5 on line 3",
        ),
    ];
    for (name, body, expected) in csv_cases {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let err = kiln_err(&["train", "--data", s(&path), "--target", "y", "-o", o]);
        assert!(err.contains(expected), "{name}: {err}");
    }
    for (flag, value) in [("--epochs", "0"), ("--batch", "0")] {
        let err = kiln_err(&["train", "--data", "builtin:digits", flag, value, "-o", o]);
        assert!(err.contains(&format!("{flag} must be at least 1")), "{err}");
    }

    let csv = dir.path().join("img.csv");
    std::fs::write(&csv, "a,b,c,d,y\n1,2,3,4,0\n4,3,2,1,1\n").unwrap();
    let err = kiln_err(&[
        "train",
        "--data",
        s(&csv),
        "--target",
        "y",
        "--model",
        "cnn",
        "-o",
        o,
    ]);
    assert!(err.contains("a cnn needs --shape CxHxW"), "{err}");
    let err = kiln_err(&[
        "train",
        "--data",
        "builtin:digits",
        "-o",
        s(&dir.path().join("no/such/dir/m.safetensors")),
    ]);
    assert!(err.contains("does not exist"), "{err}");
}
