//! The browser package's loader (`kiln_browser::load`, crate `web/browser/`)
//! against the host's readers, natively: the page must build the
//! very same graph as `kiln` from a model file or a module — same layers,
//! same bits — and refuse what the host refuses with the same message.
//! (The package itself is exercised in Chromium by tests/browser.)

use std::path::Path;

use kiln::model::{LayerSpec, ModelFile, TensorData};
use kiln::module;
use kiln_browser::LoadError;

use crate::common::*;

fn host_model(bytes: &[u8]) -> Result<kiln_guest::Model<'static>, String> {
    ModelFile::from_bytes(bytes, Path::new("m.safetensors"))
        .and_then(|m| m.to_kernel())
        .map_err(|e| e.to_string())
}

fn page_model(bytes: &[u8]) -> Result<kiln_guest::Model<'static>, LoadError> {
    kiln_browser::load(bytes, "m.safetensors").map(|l| l.model)
}

#[test]
fn model_file_and_module_load_as_the_host_reads_them() {
    let d = digits();
    let st = std::fs::read(&d.model).unwrap();
    let wasm = std::fs::read(&d.module).unwrap();

    let from_file = kiln_browser::load(&st, "digits.safetensors").unwrap();
    assert_eq!(from_file.model, host_model(&st).unwrap());
    assert_eq!(from_file.meta.source, "model-file");

    let from_module = kiln_browser::load(&wasm, "digits.wasm").unwrap();
    let blob = module::embedded_blob(&wasm).unwrap().unwrap();
    assert_eq!(
        from_module.model,
        kiln_guest::blob::decode(blob).unwrap().into_owned()
    );
    assert_eq!(from_module.meta.source, "module");
    let host_meta = module::read_meta(&wasm).unwrap().unwrap();
    assert_eq!(from_module.meta.model_sha256, Some(host_meta.model_sha256));
    assert_eq!(from_module.meta.labels, host_meta.labels);

    // The two inputs give the same graph, hence the same scores.
    assert_eq!(from_file.model, from_module.model);
    for key in ["name", "version", "task", "input", "output", "labels"] {
        let f = serde_json::to_value(&from_file.meta).unwrap()[key].clone();
        let m = serde_json::to_value(&from_module.meta).unwrap()[key].clone();
        assert_eq!(f, m, "meta.{key}");
    }
}

/// A small CNN (conv2d, relu, max_pool, dense) trained for one epoch.
fn cnn_model_file() -> Vec<u8> {
    let dir = scratch();
    let path = dir.path().join("cnn.safetensors");
    kiln_ok(&[
        "train",
        "--data",
        "builtin:digits",
        "--model",
        "cnn",
        "--epochs",
        "1",
        "--seed",
        "1",
        "-o",
        s(&path),
    ]);
    std::fs::read(&path).unwrap()
}

#[test]
fn cnn_loads_as_the_host_reads_it() {
    let st = cnn_model_file();
    let host = ModelFile::from_bytes(&st, Path::new("cnn.safetensors")).unwrap();
    assert!(
        host.graph
            .layers
            .iter()
            .any(|l| matches!(l, LayerSpec::Conv2d { .. }))
    );
    assert_eq!(page_model(&st).unwrap(), host.to_kernel().unwrap());
    let wasm = module::build(&host, "x").unwrap();
    assert_eq!(
        kiln_browser::load(&wasm, "cnn.wasm").unwrap().model,
        host.to_kernel().unwrap()
    );
    // A conv layer on a flat input: the host's message, word for word.
    let mut flat = host.clone();
    flat.graph.input.shape = vec![64];
    let bytes = flat.to_bytes().unwrap();
    assert_eq!(
        page_model(&bytes).unwrap_err().to_string(),
        host_model(&bytes).unwrap_err()
    );
}

#[test]
fn graph_errors_carry_the_hosts_messages() {
    let base = ModelFile::load(&digits().model).unwrap();
    type Change = Box<dyn Fn(&mut ModelFile)>;
    let variants: Vec<(&str, Change)> = vec![
        (
            "labels",
            Box::new(|m| m.graph.labels.pop().map(drop).unwrap_or(())),
        ),
        ("features", Box::new(|m| m.graph.input.features.truncate(3))),
        ("input shape", Box::new(|m| m.graph.input.shape = vec![0])),
        (
            "missing tensor",
            Box::new(|m| {
                let name = m.tensors.keys().next().unwrap().clone();
                m.tensors.remove(&name);
            }),
        ),
        (
            "tensor shape",
            Box::new(|m| {
                let t = m
                    .tensors
                    .values_mut()
                    .find(|t| t.shape.len() == 2 && t.shape[0] != t.shape[1])
                    .unwrap();
                t.shape.swap(0, 1);
            }),
        ),
        (
            "width chain",
            Box::new(|m| {
                m.graph.layers.insert(0, LayerSpec::Softmax);
                m.graph.input.shape = vec![63];
                m.graph.input.features.clear();
            }),
        ),
        (
            "not finite",
            Box::new(|m| {
                let t = m.tensors.values_mut().next().unwrap();
                if let TensorData::F32(d) = &mut t.data {
                    d[0] = f32::NAN;
                }
            }),
        ),
    ];
    for (what, change) in variants {
        let mut m = base.clone();
        change(&mut m);
        let bytes = m.to_bytes().unwrap();
        let host = host_model(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{what}: the host accepted it"));
        let page = page_model(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{what}: the page accepted it"))
            .to_string();
        assert_eq!(page, host, "{what}");
    }
}

#[test]
fn unknown_graph_formats_are_refused_by_both_naming_the_formats_read() {
    let mut m = ModelFile::load(&digits().model).unwrap();
    m.graph.format = 7;
    let bytes = m.to_bytes().unwrap();
    let host = host_model(&bytes).unwrap_err();
    let page = page_model(&bytes).unwrap_err().to_string();
    assert!(
        host.contains(
            "graph format 7 is not supported (this kiln reads 1, chains of layers, and 2, graphs)"
        ),
        "{host}"
    );
    assert!(
        page.contains(
            "graph format 7 is not supported by the browser package, which reads format 1"
        ),
        "{page}"
    );
}

/// A safetensors header that repeats a key: `serde_json` keeps the last
/// value, so the page, whose reader would see the first, refuses it rather
/// than read a different model than the host (a fuzz finding).
#[test]
fn headers_with_a_repeated_key_are_refused_by_the_page() {
    let st = std::fs::read(&digits().model).unwrap();
    let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&st[8..8 + n]).unwrap();
    // `{A, B, ...}` -> `{A, A, B, ...}`: the first entry written twice.
    let entry = |(k, v): (&String, &serde_json::Value)| {
        format!("{}:{v}", serde_json::Value::from(k.as_str()))
    };
    let entries: Vec<String> = header.iter().map(entry).collect();
    let repeated = format!("{{{},{}}}", entries[0], entries.join(","));
    let mut bytes = (repeated.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(repeated.as_bytes());
    bytes.extend_from_slice(&st[8 + n..]);
    let err = page_model(&bytes).unwrap_err().to_string();
    assert!(err.contains("duplicate key"), "{err}");
}

#[test]
fn broken_files_are_refused_without_panics() {
    let st = std::fs::read(&digits().model).unwrap();
    let wasm = std::fs::read(&digits().module).unwrap();
    // Every prefix: refused by both readers (a prefix is never a whole file).
    for n in (0..st.len()).step_by(7) {
        assert!(host_model(&st[..n]).is_err());
        assert!(page_model(&st[..n]).is_err(), "prefix {n}");
    }
    for n in (0..wasm.len()).step_by(5) {
        assert!(
            kiln_browser::load(&wasm[..n], "m.wasm").is_err(),
            "module prefix {n}"
        );
    }
    // Byte flips in the safetensors header (lengths, JSON, graph): never a
    // panic, and whenever both accept the result the graphs agree.
    let header_end = 8 + u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    for i in (0..header_end).step_by(3) {
        for flip in [0x01u8, 0x20, 0x80] {
            let mut b = st.clone();
            b[i] ^= flip;
            if let (Ok(h), Ok(p)) = (host_model(&b), page_model(&b)) {
                assert_eq!(h, p, "flip {flip:#x} at {i}");
            }
        }
    }
    // Bytes no tensor covers: both refuse, with the same message.
    let mut longer = st.clone();
    longer.extend_from_slice(&[0; 4]);
    let host = host_model(&longer).unwrap_err();
    assert!(host.contains("not fully covered"), "{host}");
    assert_eq!(page_model(&longer).unwrap_err().to_string(), host);
    let message = page_model(b"not a model").unwrap_err().to_string();
    assert!(
        message.starts_with("m.safetensors: not a valid safetensors file"),
        "{message}"
    );
}

/// Quantized models: the module loads (its blob holds the kernel's
/// integers, derived once by the host); the model file is refused with a
/// pointer to the module.
#[test]
fn int8_loads_from_its_module() {
    let dir = scratch();
    let q = dir.path().join("q.safetensors");
    let wasm = dir.path().join("q.wasm");
    kiln_ok(&["quantize", s(&digits().model), "--dynamic", "-o", s(&q)]);
    kiln_ok(&["build", s(&q), "-o", s(&wasm)]);
    let wasm = std::fs::read(&wasm).unwrap();
    let blob = module::embedded_blob(&wasm).unwrap().unwrap();
    assert_eq!(
        kiln_browser::load(&wasm, "q.wasm").unwrap().model,
        kiln_guest::blob::decode(blob).unwrap().into_owned()
    );
    let err = page_model(&std::fs::read(&q).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("(quantize"), "{err}");
    assert!(err.contains("load the module instead"), "{err}");
}

/// The ops ONNX import adds (float parameters aside) load from model files
/// through the shared conversion, as the host reads them.
#[test]
fn onnx_ops_load_from_model_files() {
    let mut m = ModelFile::load(&digits().model).unwrap();
    let ramp = |k: f32| kiln::model::Tensor::new(vec![10], (0..10).map(|i| k * i as f32).collect());
    m.tensors.insert("ss.scale".into(), ramp(0.5));
    m.tensors.insert("ss.shift".into(), ramp(-0.25));
    m.tensors.insert("pr.slope".into(), ramp(0.1));
    m.graph.layers.extend([
        LayerSpec::ScaleShift {
            scale: "ss.scale".into(),
            shift: "ss.shift".into(),
        },
        LayerSpec::PRelu {
            slope: "pr.slope".into(),
        },
        LayerSpec::GroupSoftmax { group: 5 },
        LayerSpec::LogSoftmax { group: None },
    ]);
    let bytes = m.to_bytes().unwrap();
    let page = page_model(&bytes).unwrap();
    assert_eq!(page, host_model(&bytes).unwrap());
    assert!(page.layers().iter().any(|l| matches!(
        l,
        kiln_guest::Layer::Conv(kiln_guest::ConvLayer::PRelu { .. }, _)
    )));
}

/// Recurrent models (every cell, both GRU formulations, bidirectional,
/// stacked sequence layers): the page reads the model file and the module
/// as the host does, and refuses what the host refuses with its message.
#[test]
fn recurrent_models_load_as_the_host_reads_them() {
    use crate::recurrent::{Rec, model};
    let rec = |cell, hidden, bi, seq| Rec {
        cell,
        hidden,
        bi,
        seq,
    };
    let stacks = [
        vec![rec("gru", 5, false, false)],
        vec![rec("gru-orig", 4, true, true)],
        vec![rec("rnn", 3, false, true), rec("lstm", 4, true, false)],
    ];
    for (seed, layers) in stacks.iter().enumerate() {
        let file = model("rec", layers, seed as u64);
        let bytes = file.to_bytes().unwrap();
        let page = page_model(&bytes).unwrap();
        assert_eq!(page, host_model(&bytes).unwrap(), "{layers:?}");
        let wasm = module::build(&file, "x").unwrap();
        assert_eq!(
            kiln_browser::load(&wasm, "rec.wasm").unwrap().model,
            page,
            "{layers:?}: module"
        );
    }

    // Conversion errors: the host's messages, word for word.
    let base = model(
        "rec",
        &[rec("lstm", 4, true, true), rec("gru", 3, false, false)],
        9,
    );
    type Change = Box<dyn Fn(&mut ModelFile)>;
    let variants: Vec<(&str, Change)> = vec![
        ("flat input", Box::new(|m| m.graph.input.shape = vec![24])),
        (
            "hidden",
            Box::new(|m| {
                if let LayerSpec::Gru { hidden, .. } = &mut m.graph.layers[1] {
                    *hidden = 4;
                }
            }),
        ),
        (
            "not a sequence",
            Box::new(|m| {
                if let LayerSpec::Lstm { sequence, .. } = &mut m.graph.layers[0] {
                    *sequence = false;
                }
            }),
        ),
        (
            "w shape",
            Box::new(|m| m.tensors.get_mut("rec0.w").unwrap().shape.swap(1, 2)),
        ),
        ("missing b", Box::new(|m| drop(m.tensors.remove("rec1.b")))),
    ];
    for (what, change) in variants {
        let mut m = base.clone();
        change(&mut m);
        let bytes = m.to_bytes().unwrap();
        let host = host_model(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{what}: the host accepted it"));
        let page = page_model(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{what}: the page accepted it"))
            .to_string();
        assert_eq!(page, host, "{what}");
    }

    // Schema errors (the JSON readers differ in their positions, and serde
    // does not name the field of a type error): both refuse, saying `what`.
    let json = base.to_bytes().unwrap();
    for (from, to, what) in [
        (
            r#""linear_before_reset":true"#,
            r#""linear_before_reset":1"#,
            "expected a boolean",
        ),
        (
            r#","linear_before_reset":true"#,
            "",
            "missing field `linear_before_reset`",
        ),
        (
            r#""direction":"bidirectional""#,
            r#""direction":"backward""#,
            "unknown variant `backward`, expected `forward` or `bidirectional`",
        ),
        (
            r#""sequence":true"#,
            r#""sequence":true,"peepholes":1"#,
            "unknown field `peepholes`",
        ),
    ] {
        let bytes = edit_graph(&json, from, to);
        let host = host_model(&bytes).unwrap_err();
        let page = page_model(&bytes).unwrap_err().to_string();
        assert!(host.contains(what), "{from} → {to}: host: {host}");
        assert!(page.contains(what), "{from} → {to}: page: {page}");
        assert!(page.contains("invalid kiln graph JSON"), "{page}");
    }
}

/// A model file with `from` replaced by `to` in its graph JSON (once).
fn edit_graph(st: &[u8], from: &str, to: &str) -> Vec<u8> {
    let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&st[8..8 + n]).unwrap();
    let meta = header["__metadata__"].as_object_mut().unwrap();
    let graph = meta["kiln"].as_str().unwrap().to_string();
    assert!(graph.contains(from), "{from} not in {graph}");
    meta["kiln"] = graph.replacen(from, to, 1).into();
    let text = serde_json::to_string(&header).unwrap();
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(&st[8 + n..]);
    bytes
}

/// A graph model (a residual add, a squeeze-and-excitation gate and a
/// channel concat, imported from ONNX): the package's graph build reads
/// its module as the host does; its model file (format 2) is refused
/// naming the module route and web/pkg-graph.
#[test]
fn graph_modules_load_as_the_host_reads_them() {
    use prost::Message;
    let dir = scratch();
    let (onnx, st) = (dir.path().join("g.onnx"), dir.path().join("g.safetensors"));
    std::fs::write(&onnx, crate::onnx::joins().encode_to_vec()).unwrap();
    kiln_ok(&["import", s(&onnx), "-o", s(&st)]);
    let host = ModelFile::load(&st).unwrap();
    let wasm = module::build(&host, "x").unwrap();
    let page = kiln_browser::load(&wasm, "g.wasm").unwrap();
    assert_eq!(page.model, host.to_kernel().unwrap());
    assert_eq!(page.meta.input.shape, [2, 2, 3]);
    let err = page_model(&std::fs::read(&st).unwrap()).unwrap_err();
    assert!(matches!(err, LoadError::GraphFile { .. }), "{err}");
    assert!(
        err.to_string().ends_with(
            "is read from its compiled module in the browser: `kiln build m.safetensors -o model.wasm`, then Model.load(\"model.wasm\") with the package's graph build, web/pkg-graph"
        ),
        "{err}"
    );
}
