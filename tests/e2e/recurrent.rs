//! Recurrent models (RNN, GRU both ways, LSTM; bidirectional; stacked
//! sequence layers) written from seeded tensors: the same bits natively,
//! in wasmtime and in V8, and the values of an independent f64 reference
//! of ONNX's equations.

use std::collections::BTreeMap;

use kiln::model::{Direction, Graph, InputSpec, LayerSpec, ModelFile, Task, Tensor};
use kiln_guest::Cell;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::*;

const STEPS: usize = 6;
const FEATURES: usize = 4;

/// A recurrent layer of a test model.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rec {
    /// `rnn`, `gru`, `gru-orig` (linear_before_reset false) or `lstm`.
    pub cell: &'static str,
    pub hidden: usize,
    pub bi: bool,
    pub seq: bool,
}

impl Rec {
    fn gates(&self) -> usize {
        match self.cell {
            "rnn" => 1,
            "lstm" => 4,
            _ => 3,
        }
    }

    fn dirs(&self) -> usize {
        1 + usize::from(self.bi)
    }
}

/// Builds a model of `layers` over `[STEPS, FEATURES]` rows, then
/// `flatten` when the last one outputs a sequence, and a dense head of 3.
pub(crate) fn model(name: &str, layers: &[Rec], seed: u64) -> ModelFile {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut uniform = |n: usize, scale: f32| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    };
    let mut tensors = BTreeMap::new();
    let mut specs = Vec::new();
    let mut features = FEATURES;
    let mut width = 0;
    for (i, l) in layers.iter().enumerate() {
        let (d, gh, h) = (l.dirs(), l.gates() * l.hidden, l.hidden);
        let names = [
            format!("rec{i}.w"),
            format!("rec{i}.r"),
            format!("rec{i}.b"),
        ];
        let shapes = [vec![d, gh, features], vec![d, gh, h], vec![d, 2 * gh]];
        for (name, shape) in names.iter().zip(shapes) {
            let n = shape.iter().product();
            tensors.insert(name.clone(), Tensor::new(shape, uniform(n, 0.6)));
        }
        let [w, r, b] = names;
        let direction = if l.bi {
            Direction::Bidirectional
        } else {
            Direction::Forward
        };
        let sequence = l.seq;
        let hidden = l.hidden;
        let cell = match l.cell {
            "rnn" => Cell::Rnn,
            "lstm" => Cell::Lstm,
            cell => Cell::Gru {
                linear_before_reset: cell == "gru",
            },
        };
        specs.push(LayerSpec::recurrent(
            cell,
            hidden,
            [w, r, b],
            direction,
            sequence,
        ));
        features = d * h;
        width = if l.seq { STEPS * features } else { features };
    }
    if layers.last().is_some_and(|l| l.seq) {
        specs.push(LayerSpec::Flatten);
    }
    tensors.insert(
        "head.weight".into(),
        Tensor::new(vec![3, width], uniform(3 * width, 0.5)),
    );
    tensors.insert("head.bias".into(), Tensor::new(vec![3], uniform(3, 0.5)));
    specs.push(LayerSpec::Dense {
        weight: "head.weight".into(),
        bias: "head.bias".into(),
    });
    let graph = Graph {
        format: kiln::model::FORMAT_VERSION,
        name: name.into(),
        version: "1".into(),
        task: Task::Regression,
        input: InputSpec {
            name: "x".into(),
            shape: vec![STEPS, FEATURES],
            features: vec![],
        },
        target: None,
        labels: vec![],
        layers: specs,
        wiring: vec![],
    };
    ModelFile { graph, tensors }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// ONNX's equations in f64: one recurrent layer over `x` (`T` steps of
/// `F` values), its output per step (`[T][D·H]`) or final (`[1][D·H]`).
fn reference_layer(file: &ModelFile, i: usize, l: &Rec, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let t_n = x.len();
    let f = x[0].len();
    let (h_n, gh) = (l.hidden, l.gates() * l.hidden);
    let get = |s: &str| -> Vec<f64> {
        let t = &file.tensors[&format!("rec{i}.{s}")];
        t.as_f32().unwrap().iter().map(|&v| f64::from(v)).collect()
    };
    let (w, r, b) = (get("w"), get("r"), get("b"));
    let mut seq = vec![vec![0.0; l.dirs() * h_n]; t_n];
    let mut last = vec![0.0; l.dirs() * h_n];
    for d in 0..l.dirs() {
        let w = &w[d * gh * f..][..gh * f];
        let r = &r[d * gh * h_n..][..gh * h_n];
        let (wb, rb) = b[d * 2 * gh..][..2 * gh].split_at(gh);
        // Gate g's row j: W x + Wb and R v + Rb.
        let wx =
            |xt: &[f64], row: usize| (0..f).map(|k| w[row * f + k] * xt[k]).sum::<f64>() + wb[row];
        let rv = |v: &[f64], row: usize| {
            (0..h_n).map(|k| r[row * h_n + k] * v[k]).sum::<f64>() + rb[row]
        };
        let (mut h, mut c) = (vec![0.0; h_n], vec![0.0; h_n]);
        for k in 0..t_n {
            let t = if d == 0 { k } else { t_n - 1 - k };
            let xt = &x[t];
            let pre = |g: usize, j: usize| wx(xt, g * h_n + j) + rv(&h, g * h_n + j);
            let cand = |j: usize, v: &[f64]| wx(xt, 2 * h_n + j) + rv(v, 2 * h_n + j);
            let next: Vec<f64> = match l.cell {
                "rnn" => (0..h_n).map(|j| pre(0, j).tanh()).collect(),
                "lstm" => (0..h_n)
                    .map(|j| {
                        let (ig, og, fg) =
                            (sigmoid(pre(0, j)), sigmoid(pre(1, j)), sigmoid(pre(2, j)));
                        c[j] = fg * c[j] + ig * pre(3, j).tanh();
                        og * c[j].tanh()
                    })
                    .collect(),
                "gru" => (0..h_n)
                    .map(|j| {
                        let (z, rg) = (sigmoid(pre(0, j)), sigmoid(pre(1, j)));
                        let n = (wx(xt, 2 * h_n + j) + rg * rv(&h, 2 * h_n + j)).tanh();
                        (1.0 - z) * n + z * h[j]
                    })
                    .collect(),
                _ => {
                    let rh: Vec<f64> = (0..h_n).map(|m| sigmoid(pre(1, m)) * h[m]).collect();
                    (0..h_n)
                        .map(|j| {
                            let z = sigmoid(pre(0, j));
                            (1.0 - z) * cand(j, &rh).tanh() + z * h[j]
                        })
                        .collect()
                }
            };
            h = next;
            seq[t][d * h_n..][..h_n].copy_from_slice(&h);
        }
        last[d * h_n..][..h_n].copy_from_slice(&h);
    }
    if l.seq { seq } else { vec![last] }
}

/// The whole model in f64: the recurrent layers, then the dense head.
fn reference(file: &ModelFile, layers: &[Rec], row: &[f32]) -> Vec<f64> {
    let mut x: Vec<Vec<f64>> = row
        .chunks(FEATURES)
        .map(|s| s.iter().map(|&v| f64::from(v)).collect())
        .collect();
    for (i, l) in layers.iter().enumerate() {
        x = reference_layer(file, i, l, &x);
    }
    let flat: Vec<f64> = x.concat();
    let w = file.tensors["head.weight"].as_f32().unwrap();
    let b = file.tensors["head.bias"].as_f32().unwrap();
    (0..3)
        .map(|o| {
            let dot: f64 = flat
                .iter()
                .zip(&w[o * flat.len()..][..flat.len()])
                .map(|(&x, &w)| x * f64::from(w))
                .sum();
            dot + f64::from(b[o])
        })
        .collect()
}

/// Every cell and variant: wasmtime, V8 and native give the same bits,
/// within 1e-5 of the f64 reference; `kiln build` embeds the rnn kernel.
#[test]
fn recurrent_models_agree_everywhere_and_with_the_reference() {
    let rec = |cell, hidden, bi, seq| Rec {
        cell,
        hidden,
        bi,
        seq,
    };
    let models: [(&str, Vec<Rec>); 7] = [
        ("rnn", vec![rec("rnn", 5, false, false)]),
        ("gru", vec![rec("gru", 7, false, false)]),
        ("gru-orig", vec![rec("gru-orig", 6, false, false)]),
        ("lstm", vec![rec("lstm", 5, false, false)]),
        ("bi-gru-orig-seq", vec![rec("gru-orig", 4, true, true)]),
        (
            "stacked-lstm",
            vec![rec("lstm", 6, true, true), rec("lstm", 5, false, false)],
        ),
        (
            "stacked-mixed",
            vec![
                rec("rnn", 3, false, true),
                rec("gru", 4, true, true),
                rec("gru-orig", 5, true, false),
            ],
        ),
    ];
    let dir = scratch();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x: Vec<f32> = (0..5 * STEPS * FEATURES)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    let rows: Vec<&[f32]> = x.chunks(STEPS * FEATURES).collect();
    let rows_path = dir.path().join("rows.json");
    std::fs::write(&rows_path, serde_json::to_string(&rows).unwrap()).unwrap();
    for (seed, (name, layers)) in models.iter().enumerate() {
        let file = model(name, layers, seed as u64);
        let (path, module) = (
            dir.path().join(format!("{name}.safetensors")),
            dir.path().join(format!("{name}.wasm")),
        );
        file.save(&path).unwrap();
        kiln_ok(&["build", s(&path), "-o", s(&module)]);
        assert_eq!(kernel_of(&module), "rnn", "{name}");
        // `kiln inspect` shows the layers, their parameters and the kernel.
        let info: serde_json::Value =
            serde_json::from_str(&kiln_ok(&["inspect", s(&path)])).unwrap();
        assert_eq!(info["kernel"], "rnn", "{name}");
        let mut f = FEATURES;
        for (spec, l) in info["layers"].as_array().unwrap().iter().zip(layers) {
            assert_eq!(spec["op"], l.cell.trim_end_matches("-orig"), "{name}");
            let (d, gh, h) = (l.dirs(), l.gates() * l.hidden, l.hidden);
            assert_eq!(spec["params"], d * gh * (f + h + 2), "{name}: {spec}");
            assert_eq!(spec["dtype"], "F32");
            f = d * h;
        }
        let predict = |extra: &[&str]| {
            let args = [&["predict", s(&module), "--input", s(&rows_path)], extra].concat();
            scores(&kiln_ok(&args))
        };
        let (wasmtime, native) = (predict(&[]), predict(&["--native"]));
        let v8 = run_in_node(&module, &rows_path);
        assert_eq!(native.len(), rows.len(), "{name}");
        assert_eq!(
            bits(&wasmtime),
            bits(&native),
            "{name}: wasmtime and native differ"
        );
        assert_eq!(bits(&v8), bits(&native), "{name}: V8 and native differ");
        // One row per run, and the model file itself, natively.
        let single = predict(&["--batch", "1"]);
        assert_eq!(bits(&single), bits(&native), "{name}: batch of 1 differs");
        let file_scores = scores(&kiln_ok(&["predict", s(&path), "--input", s(&rows_path)]));
        assert_eq!(
            bits(&file_scores),
            bits(&native),
            "{name}: the model file differs"
        );
        for (row, got) in rows.iter().zip(&native) {
            let want = reference(&file, layers, row);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (f64::from(*g) - w).abs() <= 1e-5,
                    "{name}: {g} against the reference's {w}"
                );
            }
        }
    }
}

/// `kiln predict --stream`: one time step per line (CSV or JSON array,
/// blank lines skipped), from file and standard input; each line from the
/// `STEPS`-th on answers the window of the last `STEPS` steps with the bits
/// of predicting that window as a row, in wasmtime, natively and from the
/// model file.
#[test]
fn predict_streams_the_steps_of_a_sequence() {
    let dir = scratch();
    let layers = [Rec {
        cell: "gru",
        hidden: 5,
        bi: true,
        seq: false,
    }];
    let (path, module) = (
        dir.path().join("gru.safetensors"),
        dir.path().join("gru.wasm"),
    );
    model("gru", &layers, 3).save(&path).unwrap();
    kiln_ok(&["build", s(&path), "-o", s(&module)]);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = STEPS + 4;
    let steps: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..FEATURES).map(|_| rng.random_range(-2.0..2.0)).collect())
        .collect();
    let mut text = String::new();
    for (i, step) in steps.iter().enumerate() {
        let values: Vec<String> = step.iter().map(f32::to_string).collect();
        text += &match i % 3 {
            0 => format!("[{}]\n", values.join(", ")),
            1 => format!("{}\n\n", values.join(",")),
            _ => format!("  {}\n", values.join(", ")),
        };
    }
    let stream_path = dir.path().join("steps.txt");
    std::fs::write(&stream_path, &text).unwrap();
    let windows: Vec<Vec<f32>> = (0..=n - STEPS)
        .map(|k| steps[k..k + STEPS].concat())
        .collect();
    let rows_path = dir.path().join("windows.json");
    std::fs::write(&rows_path, serde_json::to_string(&windows).unwrap()).unwrap();
    let want = scores(&kiln_ok(&["predict", s(&module), "--input", s(&rows_path)]));
    assert_eq!(want.len(), n - STEPS + 1);
    for (model_path, extra) in [(&module, None), (&module, Some("--native")), (&path, None)] {
        let mut args = vec![
            "predict",
            s(model_path),
            "--stream",
            "--input",
            s(&stream_path),
        ];
        args.extend(extra);
        let got = scores(&kiln_ok(&args));
        assert_eq!(bits(&got), bits(&want), "{args:?}");
    }
    // Standard input, answered as it arrives: the first answer comes
    // before the rest of the steps are written.
    let mut child = kiln(&["predict", s(&module), "--stream", "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout).lines() {
            tx.send(l.unwrap()).unwrap();
        }
    });
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    use std::io::Write;
    let first = std::time::Duration::from_secs(60);
    writeln!(stdin, "{}", lines[..STEPS].join("\n")).unwrap();
    stdin.flush().unwrap();
    let mut got = vec![rx.recv_timeout(first).expect("no answer after STEPS lines")];
    writeln!(stdin, "{}", lines[STEPS..].join("\n")).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    got.extend(rx.try_iter());
    assert_eq!(bits(&scores(&got.join("\n"))), bits(&want), "stdin");

    // A short step names its line; a model without [steps, features] input
    // and --batch are refused.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "1,2,3,4\n1,2,x,4\n").unwrap();
    let err = kiln_err(&["predict", s(&module), "--stream", "--input", s(&bad)]);
    assert!(
        err.contains("bad.txt: line 2") && err.contains("`x` is not a finite number"),
        "{err}"
    );
    std::fs::write(&bad, "1,2,3\n").unwrap();
    let err = kiln_err(&["predict", s(&module), "--stream", "--input", s(&bad)]);
    assert!(
        err.contains("line 1: a step of this model has 4 values, found 3"),
        "{err}"
    );
    let err = kiln_err(&[
        "predict",
        s(&digits().module),
        "--stream",
        "--input",
        s(&bad),
    ]);
    assert!(
        err.contains("input is [steps, features]; this model's input is [64]"),
        "{err}"
    );
    let err = kiln_err(&[
        "predict",
        s(&module),
        "--stream",
        "--batch",
        "1",
        "--input",
        s(&bad),
    ]);
    assert!(err.contains("cannot be used with"), "{err}");
}
