//! `kiln import` of ONNX models written here with the prost messages: a
//! small network against an f64 reference, malformed files, and the new
//! layers' bits in wasmtime, V8 and natively (their kernels are checked
//! against the definitions with every other kernel, in kernels.rs).
//! (Comparisons with onnxruntime live in tests/python/test_onnx_*.py.)

use kiln::import::onnx::{self, proto::*};
use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::common::*;
use crate::kernels::values;

fn tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        raw_data: Some(bytemuck::cast_slice(data).to_vec()),
        ..Default::default()
    }
}

fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::FLOAT,
        f,
        ..Default::default()
    }
}

fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attribute_type::INT,
        i,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: format!("{op}_node"),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

fn value_info(name: &str, width: i64) -> ValueInfoProto {
    value_info_dims(name, &[width])
}

/// `[N, dims…]` with a symbolic batch.
fn value_info_dims(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = |value| Dimension {
        value: Some(value),
        denotation: String::new(),
    };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: std::iter::once(dim(DimensionValue::DimParam("N".into())))
                        .chain(dims.iter().map(|&d| dim(DimensionValue::DimValue(d))))
                        .collect(),
                }),
            }),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, opset: i64) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(GraphProto {
            node: nodes,
            name: "g".into(),
            initializer: inits,
            input: vec![value_info("x", 4)],
            output: vec![value_info("y", 3)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

const W: [f32; 12] = [
    0.5, -1.0, 0.25, 2.0, -0.75, 0.1, 1.5, -0.5, 0.3, 0.9, -1.2, 0.05,
];
const B: [f32; 3] = [0.1, -0.2, 0.3];
const GAMMA: [f32; 3] = [1.5, 0.5, -1.0];
const BETA: [f32; 3] = [0.0, 0.25, -0.5];
const MEAN: [f32; 3] = [0.2, -0.1, 0.4];
const VAR: [f32; 3] = [1.0, 0.5, 2.0];

/// Gemm (transB) → BatchNormalization → LeakyRelu → Softmax.
pub(crate) fn small_network() -> ModelProto {
    model(
        vec![
            node("Gemm", &["x", "w", "b"], "h", vec![attr_i("transB", 1)]),
            node(
                "BatchNormalization",
                &["h", "gamma", "beta", "mean", "var"],
                "bn",
                vec![attr_f("epsilon", 1e-5)],
            ),
            node("LeakyRelu", &["bn"], "lr", vec![attr_f("alpha", 0.1)]),
            node("Softmax", &["lr"], "y", vec![]),
        ],
        vec![
            tensor("w", &[3, 4], &W),
            tensor("b", &[3], &B),
            tensor("gamma", &[3], &GAMMA),
            tensor("beta", &[3], &BETA),
            tensor("mean", &[3], &MEAN),
            tensor("var", &[3], &VAR),
        ],
        17,
    )
}

/// The same network in f64, straight from the ONNX operator definitions.
fn reference(x: &[f64; 4]) -> Vec<f64> {
    let mut z: Vec<f64> = (0..3)
        .map(|o| {
            let h: f64 = (0..4).map(|i| x[i] * W[o * 4 + i] as f64).sum::<f64>() + B[o] as f64;
            let bn = (h - MEAN[o] as f64) / (VAR[o] as f64 + 1e-5).sqrt() * GAMMA[o] as f64
                + BETA[o] as f64;
            if bn < 0.0 { 0.1 * bn } else { bn }
        })
        .collect();
    let max = z.iter().cloned().fold(f64::MIN, f64::max);
    let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
    z.iter_mut().for_each(|v| *v = (*v - max).exp() / sum);
    z
}

#[test]
fn small_network_matches_the_onnx_definitions() {
    let dir = scratch();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("net.onnx"), small_network().encode_to_vec()).unwrap();
    let out = kiln_ok(&["import", s(&p("net.onnx")), "-o", s(&p("net.safetensors"))]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The batch norm folded into the dense layer.
    assert_eq!(
        summary["layers"],
        serde_json::json!(["dense", "leaky_relu", "softmax"])
    );
    kiln_ok(&["build", s(&p("net.safetensors")), "-o", s(&p("net.wasm"))]);
    let rows: [[f64; 4]; 4] = [
        [0.0, 0.0, 0.0, 0.0],
        [1.0, -2.0, 3.0, -4.0],
        [0.5, 0.25, -0.125, 8.0],
        [-3.0, 1.5, 2.5, -0.5],
    ];
    std::fs::write(p("rows.json"), serde_json::to_string(&rows).unwrap()).unwrap();
    let wasm = scores(&kiln_ok(&[
        "predict",
        s(&p("net.wasm")),
        "-i",
        s(&p("rows.json")),
    ]));
    let native = scores(&kiln_ok(&[
        "predict",
        s(&p("net.wasm")),
        "-i",
        s(&p("rows.json")),
        "--native",
    ]));
    assert_eq!(bits(&wasm), bits(&native), "wasm and native differ");
    for (row, got) in rows.iter().zip(&wasm) {
        for (g, w) in got.iter().zip(reference(row)) {
            assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w} for {row:?}");
        }
    }
}

fn import_err(bytes: &[u8]) -> String {
    match onnx::import(bytes, &onnx::Options::default()) {
        Ok(_) => panic!("import should have failed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_and_foreign_files_are_refused() {
    let good = small_network().encode_to_vec();
    assert!(onnx::import(&good, &onnx::Options::default()).is_ok());
    // Every strict prefix fails with an error, never a panic.
    for n in 0..good.len() {
        let _ = import_err(&good[..n]);
    }
    assert!(import_err(&good[..good.len() / 2]).contains("not an ONNX model"));
    assert!(import_err(b"").contains("not an ONNX model"));
    assert!(import_err(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").contains("not an ONNX model"));

    // Through the CLI: a clean failure naming the file, and no output file.
    let dir = scratch();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("half.onnx"), &good[..good.len() / 2]).unwrap();
    std::fs::write(p("text.onnx"), "name,value\na,1\n").unwrap();
    for f in ["half.onnx", "text.onnx"] {
        let err = kiln_err(&["import", s(&p(f)), "-o", s(&p("out.safetensors"))]);
        assert!(
            err.contains(f) && err.contains("not an ONNX model"),
            "{err}"
        );
        assert!(!p("out.safetensors").exists());
    }
}

#[test]
fn opset_newer_than_supported_is_refused() {
    let mut m = small_network();
    m.opset_import[0].version = onnx::MAX_OPSET + 1;
    let err = import_err(&m.encode_to_vec());
    assert!(
        err.contains(&format!("opset {}", onnx::MAX_OPSET + 1))
            && err.contains(&format!("up to {}", onnx::MAX_OPSET)),
        "{err}"
    );
    m.opset_import.clear();
    assert!(import_err(&m.encode_to_vec()).contains("no opset"));
}

#[test]
fn initializer_data_must_match_its_shape() {
    let mut m = small_network();
    let w = &mut m.graph.as_mut().unwrap().initializer[0];
    w.raw_data.as_mut().unwrap().truncate(44);
    let err = import_err(&m.encode_to_vec());
    assert!(
        err.contains("tensor `w`") && err.contains("needs 48 bytes") && err.contains("44"),
        "{err}"
    );

    let mut m = small_network();
    let w = &mut m.graph.as_mut().unwrap().initializer[0];
    w.raw_data = None;
    w.float_data = vec![1.0; 11];
    let err = import_err(&m.encode_to_vec());
    assert!(
        err.contains("tensor `w`") && err.contains("12 values"),
        "{err}"
    );

    let mut m = small_network();
    m.graph.as_mut().unwrap().initializer[0].data_type = data_type::FLOAT16;
    let err = import_err(&m.encode_to_vec());
    assert!(err.contains("FLOAT16"), "{err}");

    let mut m = small_network();
    m.graph.as_mut().unwrap().initializer[0].data_location = DATA_LOCATION_EXTERNAL;
    assert!(import_err(&m.encode_to_vec()).contains("external"));
}

#[test]
fn unsupported_ops_and_attributes_name_the_node() {
    let mut m = small_network();
    m.graph.as_mut().unwrap().node[2].op_type = "Elu".into();
    let err = import_err(&m.encode_to_vec());
    assert!(
        err.contains("node 2 \"LeakyRelu_node\" (Elu)") && err.contains("not supported"),
        "{err}"
    );

    let mut m = small_network();
    m.graph.as_mut().unwrap().node[0]
        .attribute
        .push(attr_i("transA", 1));
    let err = import_err(&m.encode_to_vec());
    assert!(err.contains("(Gemm)") && err.contains("transA"), "{err}");

    // An attribute kiln has never heard of is refused, not ignored.
    let mut m = small_network();
    m.graph.as_mut().unwrap().node[3]
        .attribute
        .push(attr_i("temperature", 2));
    let err = import_err(&m.encode_to_vec());
    assert!(
        err.contains("(Softmax)") && err.contains("`temperature` = 2"),
        "{err}"
    );
}

/// Any single corrupted byte gives an error or a model, never a panic.
#[test]
fn corrupted_bytes_never_panic() {
    let good = small_network().encode_to_vec();
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] ^= flip;
            let _ = onnx::import(&b, &onnx::Options::default());
        }
    }
}

/// Every layer added for import, in one model: per-channel and per-value
/// constants, PRelu, LeakyRelu, last-axis LogSoftmax, GlobalAveragePool.
pub(crate) fn every_new_layer() -> ModelProto {
    let mut m = model(
        vec![
            node("Mul", &["x", "s"], "a", vec![]),
            node("Add", &["a", "t"], "b", vec![]),
            node("PRelu", &["b", "slope"], "c", vec![]),
            node("LeakyRelu", &["c"], "d", vec![attr_f("alpha", 0.3)]),
            node("LogSoftmax", &["d"], "e", vec![attr_i("axis", -1)]),
            node("GlobalAveragePool", &["e"], "f", vec![]),
            node("Flatten", &["f"], "g", vec![]),
            node("Gemm", &["g", "w", "bias"], "h", vec![attr_i("transB", 1)]),
            node("Tanh", &["h"], "i", vec![]),
            node("Softmax", &["i"], "y", vec![]),
        ],
        vec![
            tensor("s", &[2, 1, 1], &[1.5, -0.5]),
            tensor("t", &[2, 3], &[0.1, 0.2, 0.3, -0.1, -0.2, -0.3]),
            tensor("slope", &[2, 1, 1], &[0.25, 2.0]),
            tensor("w", &[3, 2], &[1.0, -2.0, 0.5, 0.25, -1.5, 3.0]),
            tensor("bias", &[3], &[0.0, 0.1, -0.1]),
        ],
        17,
    );
    let g = m.graph.as_mut().unwrap();
    g.input = vec![value_info_dims("x", &[2, 2, 3])];
    m
}

/// The new layers give the same bits in wasmtime, V8 (Node) and natively.
#[test]
fn new_layers_have_the_same_bits_in_wasmtime_v8_and_native() {
    let dir = scratch();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("all.onnx"), every_new_layer().encode_to_vec()).unwrap();
    let out = kiln_ok(&["import", s(&p("all.onnx")), "-o", s(&p("all.safetensors"))]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        summary["layers"],
        serde_json::json!([
            "scale_shift",
            "scale_shift",
            "prelu",
            "leaky_relu",
            "log_softmax",
            "global_avg_pool",
            "dense",
            "tanh",
            "softmax"
        ])
    );
    kiln_ok(&["build", s(&p("all.safetensors")), "-o", s(&p("all.wasm"))]);
    same_bits_everywhere(&p("all.wasm"), 3);
}

/// 64 random rows of 12 values (seeded by `seed`) give `module` the same
/// score bits in wasmtime, natively and in V8 (Node).
fn same_bits_everywhere(module: &std::path::Path, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rows: Vec<Vec<f32>> = (0..64)
        .map(|_| {
            values(&mut rng, 12)
                .into_iter()
                .map(|v| v.clamp(-50.0, 50.0))
                .collect()
        })
        .collect();
    let rows_path = module.with_extension("rows.json");
    std::fs::write(&rows_path, serde_json::to_string(&rows).unwrap()).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["predict", s(module), "-i", s(&rows_path)];
        args.extend(extra);
        scores(&kiln_ok(&args))
    };
    let (wasm, native) = (run(&[]), run(&["--native"]));
    assert_eq!(wasm.len(), 64);
    assert_eq!(bits(&wasm), bits(&native), "wasmtime and native differ");
    let v8 = run_in_node(module, &rows_path);
    assert_eq!(bits(&v8), bits(&native), "V8 and native differ");
}

/// A graph: a residual add, a squeeze-and-excitation gate and a channel
/// concatenation of the input, then Gemm and Softmax.
pub(crate) fn joins() -> ModelProto {
    let w: Vec<f32> = (0..72).map(|i| ((i as f32) * 0.37).sin()).collect();
    let mut m = model(
        vec![
            node("Relu", &["x"], "r", vec![]),
            node("Add", &["r", "x"], "a", vec![]),
            node("GlobalAveragePool", &["a"], "p", vec![]),
            node("Sigmoid", &["p"], "g", vec![]),
            node("Mul", &["g", "a"], "m", vec![]),
            node("Concat", &["m", "x"], "c", vec![attr_i("axis", 1)]),
            node("Flatten", &["c"], "f", vec![]),
            node("Gemm", &["f", "w", "bias"], "h", vec![attr_i("transB", 1)]),
            node("Softmax", &["h"], "y", vec![]),
        ],
        vec![
            tensor("w", &[3, 24], &w),
            tensor("bias", &[3], &[0.0, 0.1, -0.1]),
        ],
        17,
    );
    let g = m.graph.as_mut().unwrap();
    g.input = vec![value_info_dims("x", &[2, 2, 3])];
    m
}

/// A graph module gives the same bits in wasmtime, V8 (Node) and natively,
/// and `kiln inspect` plans it into less memory than all its tensors.
#[test]
fn a_graph_has_the_same_bits_in_wasmtime_v8_and_native() {
    let dir = scratch();
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("g.onnx"), joins().encode_to_vec()).unwrap();
    let out = kiln_ok(&["import", s(&p("g.onnx")), "-o", s(&p("g.safetensors"))]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        summary["layers"],
        serde_json::json!([
            "relu",
            "add",
            "global_avg_pool",
            "sigmoid",
            "mul",
            "concat",
            "dense",
            "softmax"
        ])
    );
    kiln_ok(&["build", s(&p("g.safetensors")), "-o", s(&p("g.wasm"))]);
    let info: serde_json::Value =
        serde_json::from_str(&kiln_ok(&["inspect", s(&p("g.wasm"))])).unwrap();
    assert_eq!(info["graph"], true);
    assert_eq!(info["kernel"], "graph");
    // x, r (x is still read: not in place), a, p, g, m, c, h, y = 12 + 12
    // + 12 + 2 + 2 + 12 + 24 + 3 + 3; the most live at once is x, m and c.
    assert_eq!(info["tensor_values"], 82);
    assert_eq!(info["arena_values"], 48, "{info}");
    same_bits_everywhere(&p("g.wasm"), 25);
}
