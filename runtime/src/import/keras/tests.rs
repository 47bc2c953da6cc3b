//! The importer against files real Keras saved (tests/data/keras, made by
//! its make.py): predictions within 1e-5 of Keras's, the refusals, and
//! truncated and corrupted files refused without a panic.

use std::path::PathBuf;

use serde_json::Value;

use super::{Options, import};

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/keras")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn options() -> Options {
    Options {
        name: "keras".into(),
        task: None,
    }
}

#[test]
fn predictions_match_keras() {
    let expected: Value = serde_json::from_slice(&data("expected.json")).unwrap();
    let mut checked = 0;
    for (model, e) in expected.as_object().unwrap() {
        let rows: Vec<Vec<f32>> = serde_json::from_value(e["rows"].clone()).unwrap();
        let want: Vec<Vec<f32>> = serde_json::from_value(e["scores"].clone()).unwrap();
        for file in e["files"].as_array().unwrap() {
            let file = file.as_str().unwrap();
            let imported = import(&data(file), &options())
                .unwrap_or_else(|err| panic!("{model} ({file}): {err}"));
            let kernel = imported.model.to_kernel().unwrap();
            for (row, want) in rows.iter().zip(&want) {
                let got = kernel.predict(row).unwrap();
                assert_eq!(got.len(), want.len(), "{file}");
                let diff = got
                    .iter()
                    .zip(want)
                    .map(|(g, w)| (g - w).abs())
                    .fold(0.0f32, f32::max);
                assert!(diff <= 1e-5, "{file}: |kiln − keras| = {diff}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
}

#[test]
fn the_keras2_layout_and_folds() {
    let m = import(&data("mlp_keras2.h5"), &options()).unwrap();
    assert!(m.format.starts_with("legacy h5 (Keras 2"), "{}", m.format);
    let ops: Vec<&str> = m.model.graph.layers.iter().map(|l| l.op()).collect();
    assert_eq!(
        ops,
        [
            "scale_shift",
            "dense",
            "relu",
            "dense",
            "leaky_relu",
            "dense",
            "softmax"
        ]
    );
    // The first batch norm folds into the conv before it; the second
    // follows a ReLU inside the conv layer, the third a dense layer.
    let bn = import(&data("bn_cnn.h5"), &options()).unwrap();
    let ops: Vec<&str> = bn.model.graph.layers.iter().map(|l| l.op()).collect();
    assert_eq!(
        ops,
        [
            "conv2d",
            "relu",
            "conv2d",
            "relu",
            "scale_shift",
            "avg_pool",
            "global_avg_pool",
            "dense",
            "sigmoid",
            "dense",
            "softmax"
        ]
    );
    assert_eq!(bn.model.graph.input.shape, [1, 8, 8]);
}

#[test]
fn graphs_and_recurrent_layers() {
    // Branches and joins make a graph model; the RGB input is transposed
    // to planes once (reshape, one-hot conv, reshape).
    let g = import(&data("graph.keras"), &options())
        .unwrap()
        .model
        .graph;
    assert_eq!(g.format, crate::model::GRAPH_FORMAT_VERSION);
    assert_eq!(g.input.shape, [8 * 8 * 3]);
    let ops: Vec<&str> = g.layers.iter().map(|l| l.op()).collect();
    assert_eq!(
        ops[..5],
        ["scale_shift", "reshape", "conv2d", "reshape", "conv2d"]
    );
    for op in [
        "add",
        "mul",
        "concat",
        "hard_swish",
        "hard_sigmoid",
        "clip",
        "dense",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    // Recurrent layers: a chain over a [steps, features] input.
    for (file, op) in [
        ("lstm.keras", "lstm"),
        ("lstm.h5", "lstm"),
        ("gru_keras2.h5", "gru"),
    ] {
        let g = import(&data(file), &options()).unwrap().model.graph;
        assert_eq!(g.input.shape, [8, 8], "{file}");
        let ops: Vec<&str> = g.layers.iter().map(|l| l.op()).collect();
        assert_eq!(ops, ["scale_shift", op, op, "dense", "softmax"], "{file}");
        if let crate::model::LayerSpec::Gru {
            linear_before_reset,
            ..
        } = &g.layers[1]
        {
            assert!(!linear_before_reset, "{file}: reset_after=False");
        }
    }
}

#[test]
fn refusals_name_the_layer() {
    let err = |f: &str| import(&data(f), &options()).unwrap_err().to_string();
    let e = err("lambda.keras");
    assert!(
        e.contains("(Lambda)") && e.contains("arbitrary Python"),
        "{e}"
    );
    let e = err("two_inputs.keras");
    assert!(e.contains("multi-input functional model"), "{e}");
    let e = err("custom.keras");
    assert!(
        e.contains("\"doubler\" (Doubler)") && e.contains("custom layer"),
        "{e}"
    );
}

/// A deterministic byte stream (xorshift) for the corruption tests.
fn noise(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

#[test]
fn truncated_and_corrupted_files_are_refused_without_panics() {
    for file in ["mlp.h5", "mlp.keras", "mlp_keras2.h5", "cnn.keras"] {
        let bytes = data(file);
        let whole = import(&bytes, &options())
            .unwrap()
            .model
            .to_bytes()
            .unwrap();
        let mut refused = 0;
        for cut in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
            // Refused, or — cut only in what the model does not need (an
            // .h5 ends with the optimizer's state) — the same model.
            match import(&bytes[..cut], &options()) {
                Err(_) => refused += 1,
                Ok(m) => assert_eq!(m.model.to_bytes().unwrap(), whole, "{file} cut at {cut}"),
            }
        }
        assert!(refused > 40, "{file}: only {refused} cuts refused");
        let mut next = noise(0x9e37_79b9_7f4a_7c15 ^ bytes.len() as u64);
        for _ in 0..300 {
            let mut bad = bytes.clone();
            for _ in 0..1 + next() % 8 {
                let at = (next() % bad.len() as u64) as usize;
                bad[at] = next() as u8;
            }
            // Either refused or imported into a valid model: never a panic.
            if let Ok(m) = import(&bad, &options()) {
                m.model.to_kernel().unwrap();
            }
        }
    }
}

#[test]
fn hostile_archives() {
    // Not a zip, an empty zip, a central directory pointing past the end.
    assert!(import(b"PK\x03\x04", &options()).is_err());
    let mut eocd = b"PK\x03\x04".to_vec();
    eocd.extend(b"PK\x05\x06\0\0\0\0\x01\0\x01\0\xff\xff\0\0\0\0\0\0\0\0");
    let e = import(&eocd, &options()).unwrap_err().to_string();
    assert!(e.contains("central directory"), "{e}");
}

#[test]
fn model_file_imports_keras_by_content() {
    use std::path::Path;
    let m = crate::import::model_file(&data("mlp.keras"), Path::new("x/mlp.keras")).unwrap();
    assert_eq!(m.graph.name, "mlp");
    // A model file passes through as it is.
    let bytes = m.to_bytes().unwrap();
    let again = crate::import::model_file(&bytes, Path::new("mlp.safetensors")).unwrap();
    assert_eq!(again, m);
    let e = crate::import::model_file(&data("lambda.keras"), Path::new("lambda.keras"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("importing lambda.keras: layer \"lambda\""),
        "{e}"
    );
}
