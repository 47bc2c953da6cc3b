//! The fuzz targets' inputs in the normal test suite: every committed seed
//! (`tests/fuzz/seeds/TARGET/`) and every crash the fuzzers found
//! (`tests/fuzz/regressions/TARGET/`) through the same entry points
//! (`kiln::fuzzing`) the targets call. The seeds are written by the ignored
//! test `write_fuzz_seeds` (`scripts/fuzz.sh --seeds`).

use std::path::{Path, PathBuf};

use kiln::fuzzing::{self, Server};
use kiln::model::ModelFile;
use kiln::shrink::quantize::{QuantizeConfig, quantize};
use prost::Message;

const DIGITS: &[u8] = include_bytes!("../../runtime/data/digits.safetensors");

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz")
}

/// The browser target's loader (`tests/fuzz/fuzz_targets/browser.rs`).
fn browser(data: &[u8]) {
    fuzzing::browser(data, |bytes| {
        kiln_browser::load(bytes, "fuzz")
            .map(|l| l.model)
            .map_err(|e| e.to_string())
    });
}

/// Runs one input of `target` as its fuzz target does. The sandbox target
/// turns bytes into a module with wasm-smith; its regressions are stored as
/// the modules themselves (`*.wasm`).
fn run(target: &str, data: &[u8]) {
    match target {
        "blob" => fuzzing::blob(data),
        "model_file" => fuzzing::model_file(data),
        "onnx" => fuzzing::onnx(data),
        "keras" => fuzzing::keras(data),
        "browser" => browser(data),
        "v2_rest" => Server::get().rest_infer(data),
        "grpc_infer" => Server::get().grpc_infer(data),
        "sandbox" => fuzzing::sandbox(data),
        _ => panic!("unknown fuzz target `{target}`"),
    }
}

/// A file real Keras saved (tests/data/keras, see its make.py).
fn keras_file(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/keras")
            .join(name),
    )
    .unwrap()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    out.sort();
    out
}

#[test]
fn committed_seeds_and_crashes_pass_their_fuzz_targets() {
    let mut ran = 0;
    for kind in ["seeds", "regressions"] {
        for target_dir in files(&fuzz_dir().join(kind)) {
            let target = target_dir.file_name().unwrap().to_str().unwrap().to_owned();
            for file in files(&target_dir) {
                // The sandbox target's seeds are wasm-smith's raw bytes.
                if target == "sandbox" && kind == "seeds" {
                    continue;
                }
                let data = std::fs::read(&file).unwrap();
                let name = file.display().to_string();
                let outcome = std::panic::catch_unwind(|| run(&target, &data));
                assert!(outcome.is_ok(), "{name} fails its fuzz target");
                ran += 1;
            }
        }
    }
    assert!(
        ran >= 10,
        "only {ran} committed fuzz inputs under {:?}",
        fuzz_dir()
    );
}

fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let path = Path::new("digits.safetensors");
    let digits = ModelFile::from_bytes(DIGITS, path).unwrap();
    let int8 = quantize(
        &digits,
        None,
        &QuantizeConfig {
            dynamic: true,
            ..Default::default()
        },
    )
    .unwrap();
    let int8_bytes = int8.to_bytes().unwrap();
    // A graph (format 2, blob version 5): residual add, gate, concat.
    let joins = crate::onnx::joins();
    let graph = kiln::import::onnx::import(&joins.encode_to_vec(), &Default::default())
        .unwrap()
        .model;
    let blob = |m: &ModelFile, mode: u8| {
        let mut v = vec![mode];
        v.extend(kiln_guest::blob::encode(&m.to_kernel().unwrap()));
        v
    };
    let module = |m: &ModelFile, bytes: &[u8]| {
        kiln::module::build(m, &kiln::module::sha256_hex(bytes)).unwrap()
    };
    // A bidirectional GRU sequence feeding an LSTM, for the page's reader.
    let layer = |cell, bi, seq| crate::recurrent::Rec {
        cell,
        hidden: 3,
        bi,
        seq,
    };
    let recurrent = crate::recurrent::model(
        "rec",
        &[layer("gru", true, true), layer("lstm", false, false)],
        1,
    );
    let recurrent_bytes = recurrent.to_bytes().unwrap();
    // A tree ensemble of every comparison mode, NaN directions, softmax.
    let trees = crate::trees::model(
        4,
        6,
        3,
        kiln::model::TreeAggregate::Average,
        kiln::model::PostTransform::Softmax,
        kiln::model::BinaryScores::No,
    );
    let trees_bytes = trees.to_bytes().unwrap();
    // wasm-smith reads its choices from these bytes.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let mut out = vec![
        ("blob", "digits".into(), blob(&digits, 0)),
        ("blob", "digits-len-patched".into(), blob(&digits, 1)),
        ("blob", "digits-int8".into(), blob(&int8, 0)),
        ("model_file", "digits".into(), DIGITS.to_vec()),
        ("model_file", "digits-int8".into(), int8_bytes.clone()),
        (
            "onnx",
            "small".into(),
            crate::onnx::small_network().encode_to_vec(),
        ),
        (
            "onnx",
            "new-layers".into(),
            crate::onnx::every_new_layer().encode_to_vec(),
        ),
        ("onnx", "joins".into(), joins.encode_to_vec()),
        ("blob", "joins".into(), blob(&graph, 0)),
        ("model_file", "joins".into(), graph.to_bytes().unwrap()),
        ("blob", "trees".into(), blob(&trees, 0)),
        ("model_file", "trees".into(), trees_bytes.clone()),
        ("browser", "trees.wasm".into(), module(&trees, &trees_bytes)),
        ("browser", "digits.safetensors".into(), DIGITS.to_vec()),
        (
            "browser",
            "digits-int8.safetensors".into(),
            int8_bytes.clone(),
        ),
        ("browser", "digits.wasm".into(), module(&digits, DIGITS)),
        (
            "browser",
            "digits-int8.wasm".into(),
            module(&int8, &int8_bytes),
        ),
        (
            "browser",
            "recurrent.safetensors".into(),
            recurrent_bytes.clone(),
        ),
        (
            "browser",
            "recurrent.wasm".into(),
            module(&recurrent, &recurrent_bytes),
        ),
        ("keras", "mlp.h5".into(), keras_file("mlp.h5")),
        ("keras", "mlp.keras".into(), keras_file("mlp.keras")),
        ("keras", "mlp_keras2.h5".into(), keras_file("mlp_keras2.h5")),
        ("sandbox", "noise-256".into(), noise(256)),
        ("sandbox", "noise-4096".into(), noise(4096)),
    ];
    out.extend(server_seeds());
    out
}

/// `ModelInferRequest` and its tensors as `proto/grpc_service.proto` numbers
/// them: the fields the seeds set.
#[derive(Clone, PartialEq, prost::Message)]
struct InferRequest {
    #[prost(string, tag = "1")]
    model_name: String,
    #[prost(string, tag = "3")]
    id: String,
    #[prost(message, repeated, tag = "5")]
    inputs: Vec<InputTensor>,
    #[prost(bytes = "vec", repeated, tag = "7")]
    raw_input_contents: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct InputTensor {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    datatype: String,
    #[prost(int64, repeated, tag = "3")]
    shape: Vec<i64>,
    #[prost(message, optional, tag = "5")]
    contents: Option<Contents>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Contents {
    #[prost(float, repeated, tag = "6")]
    fp32_contents: Vec<f32>,
}

/// Requests for the digits model (input `input`, 64 values a row) of the
/// server targets: REST (2-byte header length, `0xffff` for none, then the
/// body) and gRPC (the protobuf message).
fn server_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let row: Vec<f32> = (0..64).map(|i| (i % 17) as f32).collect();
    let json = serde_json::json!({
        "id": "seed",
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}],
    });
    let rest = |header: u16, body: &[u8]| {
        let mut v = header.to_le_bytes().to_vec();
        v.extend_from_slice(body);
        v
    };
    let binary_json = serde_json::json!({
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                    "parameters": {"binary_data_size": 256}}],
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let mut binary = binary_json.clone().into_bytes();
    binary.extend(row.iter().flat_map(|v| v.to_le_bytes()));
    let header = u16::try_from(binary_json.len()).unwrap();
    let tensor = |contents| InputTensor {
        name: "input".into(),
        datatype: "FP32".into(),
        shape: vec![1, 64],
        contents,
    };
    let grpc = |inputs, raw_input_contents| {
        InferRequest {
            model_name: "digits".into(),
            id: "seed".into(),
            inputs,
            raw_input_contents,
        }
        .encode_to_vec()
    };
    let raw: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
    let fp32 = Contents {
        fp32_contents: row.clone(),
    };
    vec![
        (
            "v2_rest",
            "json".into(),
            rest(u16::MAX, json.to_string().as_bytes()),
        ),
        ("v2_rest", "binary".into(), rest(header, &binary)),
        (
            "grpc_infer",
            "fp32_contents".into(),
            grpc(vec![tensor(Some(fp32))], vec![]),
        ),
        (
            "grpc_infer",
            "raw".into(),
            grpc(vec![tensor(None)], vec![raw]),
        ),
    ]
}

/// Writes the seed corpus: `cargo test --test e2e write_fuzz_seeds -- --ignored`.
#[test]
#[ignore = "writes tests/fuzz/seeds; run by scripts/fuzz.sh --seeds"]
fn write_fuzz_seeds() {
    for (target, name, bytes) in seeds() {
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
