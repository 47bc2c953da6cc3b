//! `kiln quantize`, `kiln prune` and `kiln eval` as a user runs them: int8
//! accuracy and sizes, bit-exact int8 modules, pruning with fine-tuning, and
//! refused bad input.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln::model::{
    FORMAT_VERSION, Graph, InputSpec, LayerSpec, ModelFile, Task, Tensor, TensorData,
};
use rand::{Rng, SeedableRng};

use crate::common::*;

/// A digits `mlp:256,128` (≈ 50 k weights, seed 1), its held-out rows, the
/// training rows (the rest of the data set, for calibration and
/// fine-tuning), and its int8 version calibrated on the training rows.
pub(crate) struct Big {
    _dir: tempfile::TempDir,
    pub(crate) model: PathBuf,
    pub(crate) int8: PathBuf,
    pub(crate) test_csv: PathBuf,
    pub(crate) train_csv: PathBuf,
}

pub(crate) fn big() -> &'static Big {
    static BIG: OnceLock<Big> = OnceLock::new();
    BIG.get_or_init(|| {
        let dir = scratch();
        let p = |n: &str| dir.path().join(n);
        let (model, int8, test_csv, train_csv) = (
            p("big.safetensors"),
            p("big-int8.safetensors"),
            p("test.csv"),
            p("train.csv"),
        );
        kiln_ok(&[
            "train",
            "--data",
            "builtin:digits",
            "--model",
            "mlp:256,128",
            "--seed",
            "1",
            "-o",
            s(&model),
            "--test-out",
            s(&test_csv),
        ]);
        write_train_rows(&test_csv, &train_csv);
        kiln_ok(&[
            "quantize",
            s(&model),
            "--calibrate",
            s(&train_csv),
            "-o",
            s(&int8),
        ]);
        Big {
            _dir: dir,
            model,
            int8,
            test_csv,
            train_csv,
        }
    })
}

/// Writes the digits rows that are not in `test_csv` (as a multiset).
pub(crate) fn write_train_rows(test_csv: &Path, out: &Path) {
    let mut text = String::new();
    let gz = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz")).unwrap();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    let key = |line: &str| -> Vec<u32> {
        line.split(',')
            .map(|v| v.trim().parse::<f32>().unwrap().to_bits())
            .collect()
    };
    let mut held: BTreeMap<Vec<u32>, usize> = BTreeMap::new();
    for line in std::fs::read_to_string(test_csv).unwrap().lines().skip(1) {
        *held.entry(key(line)).or_default() += 1;
    }
    let mut lines = text.lines();
    let mut csv = format!("{}\n", lines.next().unwrap());
    let mut kept = 0;
    for line in lines {
        match held.get_mut(&key(line)) {
            Some(n) if *n > 0 => *n -= 1,
            _ => {
                csv += line;
                csv.push('\n');
                kept += 1;
            }
        }
    }
    assert_eq!(kept, 1797 - 359, "training rows");
    std::fs::write(out, csv).unwrap();
}

pub(crate) fn eval(a: &Path, b: &Path, data: &Path) -> serde_json::Value {
    serde_json::from_str(&kiln_ok(&["eval", s(a), s(b), "--data", s(data)])).unwrap()
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// The int8 digits MLP stays within 0.5 points of f32 on held-out rows, and
/// its file is at most 30 % of the f32 file.
#[test]
fn int8_digits_mlp_is_accurate_and_small() {
    let b = big();
    let cmp = eval(&b.model, &b.int8, &b.test_csv);
    let (fa, qa) = (
        cmp["a"]["accuracy"].as_f64().unwrap(),
        cmp["b"]["accuracy"].as_f64().unwrap(),
    );
    eprintln!(
        "f32 {fa:.4}  int8 {qa:.4}  agreement {}  max |score diff| {}",
        cmp["agreement"], cmp["max_abs_score_diff"]
    );
    assert!(fa > 0.95, "f32 accuracy {fa}");
    assert!((qa - fa).abs() * 100.0 <= 0.5, "int8 {qa} vs f32 {fa}");
    let ratio = size(&b.int8) as f64 / size(&b.model) as f64;
    assert!(ratio <= 0.30, "int8 file is {ratio:.3} of the f32 file");

    let inspect: serde_json::Value =
        serde_json::from_str(&kiln_ok(&["inspect", s(&b.int8)])).unwrap();
    let dense: Vec<&serde_json::Value> = inspect["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["op"] == "dense_int8")
        .collect();
    assert_eq!(dense.len(), 3);
    assert!(dense.iter().all(|l| l["dtype"] == "I8"));
    assert_eq!(
        dense[0]["bytes"],
        256 * 64 + 256 * 4 + 256 * 4,
        "weights + scales + bias"
    );
}

/// Dynamic quantization and the design document's ⌊w·q⌋ scheme also run;
/// their accuracy is reported (the doc scheme may cost accuracy, which
/// docs/quantization.md records).
#[test]
fn dynamic_and_doc_schemes_run_and_report_accuracy() {
    let b = big();
    let dir = scratch();
    let dynamic = dir.path().join("dyn.safetensors");
    let doc = dir.path().join("doc.safetensors");
    let doc_pct = dir.path().join("doc-pct.safetensors");
    let pct = dir.path().join("pct.safetensors");
    kiln_ok(&["quantize", s(&b.model), "--dynamic", "-o", s(&dynamic)]);
    let q = |extra: &[&str], out: &Path| {
        let mut args = vec!["quantize", s(&b.model), "--calibrate", s(&b.train_csv)];
        args.extend(extra);
        args.extend(["-o", s(out)]);
        kiln_ok(&args);
    };
    q(&["--scheme", "doc"], &doc);
    q(
        &["--scheme", "doc", "--calib-method", "percentile"],
        &doc_pct,
    );
    q(&["--calib-method", "percentile"], &pct);
    for (name, m) in [
        ("dynamic", &dynamic),
        ("doc (minmax)", &doc),
        ("doc (percentile)", &doc_pct),
        ("per-channel (percentile)", &pct),
    ] {
        let cmp = eval(&b.model, m, &b.test_csv);
        let delta = cmp["accuracy_delta_points"].as_f64().unwrap();
        eprintln!(
            "{name}: {delta:+.2} points vs f32, agreement {}, max |score diff| {}",
            cmp["agreement"], cmp["max_abs_score_diff"]
        );
        assert!(delta > -5.0, "{name} lost {delta} points");
    }
    // Static quantization without calibration data says what to pass.
    let err = kiln_err(&["quantize", s(&b.model), "-o", s(&doc)]);
    assert!(
        err.contains("--calibrate DATA") && err.contains("--dynamic"),
        "{err}"
    );
    // Quantizing a quantized model is refused.
    let err = kiln_err(&["quantize", s(&dynamic), "--dynamic", "-o", s(&doc)]);
    assert!(err.contains("already quantized"), "{err}");
}

/// The int8 module gives the same bits in wasmtime as natively, batched or
/// row by row, for static and dynamic quantization.
#[test]
fn int8_module_is_bit_exact_wasm_vs_native() {
    let b = big();
    let dir = scratch();
    let dynamic = dir.path().join("dyn.safetensors");
    kiln_ok(&["quantize", s(&b.model), "--dynamic", "-o", s(&dynamic)]);
    for model in [&b.int8, &dynamic] {
        let module = dir.path().join("m.wasm");
        kiln_ok(&["build", s(model), "-o", s(&module)]);
        // A quantized MLP needs no convolution either.
        assert_eq!(kernel_of(&module), "mlp");
        let wasm = scores(&kiln_ok(&[
            "predict",
            s(&module),
            "--input",
            s(&b.test_csv),
        ]));
        let native = scores(&kiln_ok(&[
            "predict",
            s(&module),
            "--native",
            "--input",
            s(&b.test_csv),
        ]));
        let single = scores(&kiln_ok(&[
            "predict",
            s(&module),
            "--batch",
            "1",
            "--input",
            s(&b.test_csv),
        ]));
        assert_eq!(wasm.len(), 359);
        assert_eq!(bits(&wasm), bits(&native), "wasm vs native");
        assert_eq!(bits(&wasm), bits(&single), "batch vs single rows");
    }
}

/// A random MLP 784-256-128-10 in f32.
fn mlp784() -> ModelFile {
    let widths = [784, 256, 128, 10];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut tensors = BTreeMap::new();
    let mut layers = Vec::new();
    for (i, w) in widths.windows(2).enumerate() {
        let limit = (6.0 / w[0] as f32).sqrt();
        let weight = (0..w[0] * w[1])
            .map(|_| rng.random_range(-limit..limit))
            .collect();
        tensors.insert(format!("w{i}"), Tensor::new(vec![w[1], w[0]], weight));
        tensors.insert(format!("b{i}"), Tensor::new(vec![w[1]], vec![0.01; w[1]]));
        layers.push(LayerSpec::Dense {
            weight: format!("w{i}"),
            bias: format!("b{i}"),
        });
        layers.push(LayerSpec::Relu);
    }
    layers.pop();
    layers.push(LayerSpec::Softmax);
    ModelFile {
        graph: Graph {
            format: FORMAT_VERSION,
            name: "mlp784".into(),
            version: "1".into(),
            task: Task::Classification,
            input: InputSpec {
                name: "input".into(),
                shape: vec![784],
                features: vec![],
            },
            target: None,
            labels: vec![],
            layers,
            wiring: Vec::new(),
        },
        tensors,
    }
}

/// MLP 784-256-128-10: the int8 file is ≤ 30 % and the int8 module ≤ 35 %
/// of their f32 counterparts; calibration rows of the wrong width are
/// refused with the row and widths named.
#[test]
fn int8_mlp784_module_is_small() {
    let dir = scratch();
    let p = |n: &str| dir.path().join(n);
    mlp784().save(&p("f32.safetensors")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let rows: Vec<Vec<f32>> = (0..64)
        .map(|_| (0..784).map(|_| rng.random_range(0.0..1.0)).collect())
        .collect();
    std::fs::write(p("calib.json"), serde_json::to_string(&rows).unwrap()).unwrap();
    kiln_ok(&[
        "quantize",
        s(&p("f32.safetensors")),
        "--calibrate",
        s(&p("calib.json")),
        "-o",
        s(&p("int8.safetensors")),
    ]);
    kiln_ok(&["build", s(&p("f32.safetensors")), "-o", s(&p("f32.wasm"))]);
    kiln_ok(&["build", s(&p("int8.safetensors")), "-o", s(&p("int8.wasm"))]);
    let file = size(&p("int8.safetensors")) as f64 / size(&p("f32.safetensors")) as f64;
    let module = size(&p("int8.wasm")) as f64 / size(&p("f32.wasm")) as f64;
    eprintln!(
        "int8/f32: file {} / {} = {file:.3}, module {} / {} = {module:.3}",
        size(&p("int8.safetensors")),
        size(&p("f32.safetensors")),
        size(&p("int8.wasm")),
        size(&p("f32.wasm"))
    );
    assert!(file <= 0.30, "file ratio {file}");
    assert!(module <= 0.35, "module ratio {module}");
    // The int8 module runs and ranks like the f32 one on most rows.
    let f = scores(&kiln_ok(&[
        "predict",
        s(&p("f32.wasm")),
        "--input",
        s(&p("calib.json")),
    ]));
    let q = scores(&kiln_ok(&[
        "predict",
        s(&p("int8.wasm")),
        "--input",
        s(&p("calib.json")),
    ]));
    let argmax = |v: &Vec<f32>| kiln::train::argmax(v);
    let agree = f
        .iter()
        .zip(&q)
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    assert!(agree >= 58, "int8 agrees with f32 on {agree}/64 rows");

    let narrow: Vec<Vec<f32>> = vec![vec![0.5; 10]];
    std::fs::write(p("narrow.json"), serde_json::to_string(&narrow).unwrap()).unwrap();
    let err = kiln_err(&[
        "quantize",
        s(&p("f32.safetensors")),
        "--calibrate",
        s(&p("narrow.json")),
        "-o",
        s(&p("x.safetensors")),
    ]);
    assert!(
        err.contains("row 1 has 10 values, but the model takes 784"),
        "{err}"
    );
}

/// 50 % magnitude pruning, fine-tuned with the mask fixed, stays within one
/// point of the f32 model; the zeros survive fine-tuning.
#[test]
fn pruned_and_finetuned_mlp_stays_within_one_point() {
    let b = big();
    let dir = scratch();
    let pruned = dir.path().join("pruned.safetensors");
    let out: serde_json::Value = serde_json::from_str(&kiln_ok(&[
        "prune",
        s(&b.model),
        "--sparsity",
        "0.5",
        "--finetune",
        "5",
        "--data",
        s(&b.train_csv),
        "--target",
        "digit",
        "--seed",
        "1",
        "-o",
        s(&pruned),
    ]))
    .unwrap();
    let sparsity = out["sparsity"].as_f64().unwrap();
    assert!(
        (sparsity - 0.5).abs() < 1e-3,
        "sparsity {sparsity} after fine-tuning"
    );
    let cmp = eval(&b.model, &pruned, &b.test_csv);
    let delta = cmp["accuracy_delta_points"].as_f64().unwrap();
    eprintln!("pruned 50 % + fine-tuned: {delta:+.2} points");
    assert!(delta >= -1.0, "pruned model lost {delta} points");

    // Per-layer magnitude and the design document's random rule.
    let per_layer = dir.path().join("per-layer.safetensors");
    let out: serde_json::Value = serde_json::from_str(&kiln_ok(&[
        "prune",
        s(&b.model),
        "--sparsity",
        "0.3",
        "--per-layer",
        "-o",
        s(&per_layer),
    ]))
    .unwrap();
    for l in out["layers"].as_array().unwrap() {
        let (z, n) = (l["zeros"].as_f64().unwrap(), l["weights"].as_f64().unwrap());
        assert!((z / n - 0.3).abs() < 0.01, "{l}");
    }
    let random = dir.path().join("random.safetensors");
    let out: serde_json::Value = serde_json::from_str(&kiln_ok(&[
        "prune",
        s(&b.model),
        "--method",
        "random",
        "--tau",
        "0.2",
        "--seed",
        "3",
        "-o",
        s(&random),
    ]))
    .unwrap();
    let sparsity = out["sparsity"].as_f64().unwrap();
    assert!((sparsity - 0.2).abs() < 0.01, "random sparsity {sparsity}");
    let err = kiln_err(&["prune", s(&b.model), "--sparsity", "1.5", "-o", s(&random)]);
    assert!(err.contains("--sparsity must be in [0, 1]"), "{err}");
}

/// Writes `model`'s bytes without validating them (as a corrupted or
/// hand-made file would be).
pub(crate) fn write_raw(model: &ModelFile, path: &Path) {
    std::fs::write(path, model.to_bytes().unwrap()).unwrap();
}

/// Scales that are zero, negative or NaN, and int8 tensors whose length
/// does not match their shape, are refused with errors naming the layer and
/// tensor — by inspect, build and predict alike.
#[test]
fn bad_int8_models_are_refused_with_named_errors() {
    let b = big();
    let dir = scratch();
    let good = ModelFile::load(&b.int8).unwrap();
    let bad = dir.path().join("bad.safetensors");
    for value in [0.0, -0.5, f32::NAN] {
        let mut m = good.clone();
        let TensorData::F32(scales) = &mut m.tensors.get_mut("dense1.weight.scale").unwrap().data
        else {
            panic!("scales are f32");
        };
        scales[3] = value;
        write_raw(&m, &bad);
        for cmd in ["inspect", "build"] {
            let mut args = vec![cmd, s(&bad)];
            if cmd == "build" {
                args.extend(["-o", "/dev/null"]);
            }
            let err = kiln_err(&args);
            assert!(
                err.contains("dense1.weight.scale") && err.contains("positive, finite"),
                "{value}: {err}"
            );
        }
    }
    for scale in [0.0f32, -1.0] {
        let mut m = good.clone();
        let LayerSpec::Quantize { scale: s0, .. } = m
            .graph
            .layers
            .iter_mut()
            .find(|l| matches!(l, LayerSpec::Quantize { .. }))
            .unwrap()
        else {
            unreachable!()
        };
        *s0 = scale;
        write_raw(&m, &bad);
        let err = kiln_err(&["inspect", s(&bad)]);
        assert!(
            err.contains("(quantize): scale") && err.contains("positive, finite"),
            "{err}"
        );
    }
    // An I8 weight whose byte count disagrees with its shape: shrink the
    // declared shape in the header without moving any byte.
    let bytes = std::fs::read(&b.int8).unwrap();
    let text = String::from_utf8_lossy(&bytes[8..]).into_owned();
    let needle = "\"dense0.weight\":{\"dtype\":\"I8\",\"shape\":[256,64]";
    assert!(text.contains(needle), "header layout");
    let mut raw = bytes.clone();
    let at = raw
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap();
    let digit = at + needle.len() - 2;
    assert_eq!(raw[digit], b'4');
    raw[digit] = b'3';
    std::fs::write(&bad, &raw).unwrap();
    let err = kiln_err(&["inspect", s(&bad)]);
    assert!(
        err.contains("dense0.weight")
            && err.contains("holds 16384 bytes, but its shape needs 16128"),
        "{err}"
    );
    // An I8 weight of a consistent but wrong shape for its layer.
    let mut m = good.clone();
    let w = m.tensors.get_mut("dense0.weight").unwrap();
    w.shape = vec![128, 128];
    write_raw(&m, &bad);
    let err = kiln_err(&["build", s(&bad), "-o", "/dev/null"]);
    assert!(
        err.contains("dense0.weight") && err.contains("shape [128, 128]"),
        "{err}"
    );
    // A float weight where int8 is expected.
    let mut m = good.clone();
    m.tensors.insert(
        "dense0.weight".into(),
        Tensor::new(vec![256, 64], vec![0.0; 256 * 64]),
    );
    write_raw(&m, &bad);
    let err = kiln_err(&["inspect", s(&bad)]);
    assert!(
        err.contains("`dense0.weight` has dtype F32, expected I8"),
        "{err}"
    );
}

/// The int8 module in V8 (Node, raw ABI, no glue) gives the native kernel's
/// bits: integer kernels and the two float steps are the same everywhere.
#[test]
fn int8_module_in_node_matches_native_bits() {
    let b = big();
    let dir = scratch();
    let module = dir.path().join("int8.wasm");
    kiln_ok(&["build", s(&b.int8), "-o", s(&module)]);
    let rows_path = dir.path().join("rows.json");
    csv_rows_as_json(&b.test_csv, &rows_path);
    let v8 = run_in_node(&module, &rows_path);
    let native = scores(&kiln_ok(&[
        "predict",
        s(&module),
        "--native",
        "--input",
        s(&rows_path),
    ]));
    assert_eq!(v8.len(), 359);
    assert_eq!(bits(&v8), bits(&native), "V8 and native int8 scores differ");
}
