//! `kiln bench`: figures for every runner, the scores of the model it
//! measured, and clean errors.

use crate::common::{digits, kiln_err, kiln_ok, s, scores, scratch};

#[test]
fn bench_json_reports_every_runner_and_the_models_scores() {
    let d = digits();
    let out = kiln_ok(&[
        "bench",
        s(&d.module),
        "--iters",
        "20",
        "--warmup",
        "2",
        "--batch",
        "1,4",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    let figures = report["figures"].as_array().unwrap();
    assert_eq!(figures.len(), 6, "{report}");
    for runtime in [
        "kiln native",
        "kiln wasmtime (fresh instance per call)",
        "kiln wasmtime (warm instance)",
    ] {
        for batch in [1, 4] {
            let f = figures
                .iter()
                .find(|f| f["runtime"] == runtime && f["batch"] == batch)
                .unwrap_or_else(|| panic!("{runtime} at batch {batch} in {report}"));
            let (median, p99, per_s) = (
                f["median_us"].as_f64().unwrap(),
                f["p99_us"].as_f64().unwrap(),
                f["per_s"].as_f64().unwrap(),
            );
            assert!(median > 0.0 && p99 >= median, "{f}");
            assert!(
                (per_s - batch as f64 * 1e6 / median).abs() < 1e-6 * per_s,
                "{f}"
            );
        }
    }
    assert!(report["peak_rss_kib"].as_u64().unwrap() > 1000);
    assert_eq!(
        report["module_bytes"].as_u64().unwrap(),
        std::fs::metadata(&d.module).unwrap().len()
    );

    // The scores are the model's for the documented input row: what
    // `kiln predict` gives for ((i·37) mod 255) / 255, bit for bit.
    let row: Vec<f32> = (0..64).map(|i| ((i * 37) % 255) as f32 / 255.0).collect();
    let dir = scratch();
    let rows = dir.path().join("row.json");
    std::fs::write(&rows, serde_json::to_string(&[row]).unwrap()).unwrap();
    let want = scores(&kiln_ok(&["predict", s(&d.module), "--input", s(&rows)]));
    let got: Vec<f32> = report["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(
        got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        want[0].iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn bench_table_on_a_model_file_and_a_random_model() {
    let out = kiln_ok(&[
        "bench",
        s(&digits().model),
        "--iters",
        "10",
        "--warmup",
        "1",
        "--runner",
        "native,warm",
        "--batch",
        "2",
    ]);
    assert!(out.contains("kiln native") && out.contains("kiln wasmtime (warm instance)"));
    assert!(!out.contains("fresh"), "{out}");
    assert!(
        out.contains("vs native") && out.contains("peak resident memory"),
        "{out}"
    );
    let out = kiln_ok(&[
        "bench",
        "random:lenet",
        "--iters",
        "10",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(out.contains("\"module_bytes\""), "{out}");
}

#[test]
fn bench_errors_name_what_is_wrong() {
    let err = kiln_err(&["bench", "random:resnet"]);
    assert!(
        err.contains("random:mlp") && err.contains("random:lenet"),
        "{err}"
    );
    let err = kiln_err(&["bench", "/nonexistent/model.wasm"]);
    assert!(err.contains("/nonexistent/model.wasm"), "{err}");
    let err = kiln_err(&["bench", "random:mlp", "--iters", "0"]);
    assert!(err.contains("--iters must be at least 1"), "{err}");
    let err = kiln_err(&["bench", "random:mlp", "--batch", "1,0"]);
    assert!(err.contains("--batch must be at least 1"), "{err}");
    let dir = scratch();
    let bare = dir.path().join("bare.wasm");
    std::fs::write(&bare, b"\0asm\x01\0\0\0").unwrap();
    let err = kiln_err(&["bench", s(&bare)]);
    assert!(err.contains("embeds no model"), "{err}");
}
