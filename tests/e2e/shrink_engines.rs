//! int8 modules in every engine: the quantized digits CNN natively, in
//! wasmtime and in V8, and the relaxed-SIMD twin the sandbox runs against the
//! plain SIMD128 build. The models come from `shrink`'s helpers.

use kiln::model::{LayerSpec, ModelFile, TensorData};

use crate::common::*;
use crate::shrink::{big, eval, write_raw, write_train_rows};

/// The digits CNN (`kiln train --model cnn`: conv 16×3×3, relu, max pool,
/// dense 64, dense 10) quantizes end to end: its convolution becomes
/// `conv2d_int8` (no f32 convolution remains), pooling runs on int8, held-out
/// accuracy stays within 0.5 points of f32, and wasmtime, V8 and the native
/// kernel give the same bits. Broken int8 conv tensors are refused by name.
#[test]
fn int8_cnn_is_accurate_and_bit_exact_everywhere() {
    let dir = scratch();
    let p = |n: &str| dir.path().join(n);
    kiln_ok(&[
        "train",
        "--data",
        "builtin:digits",
        "--model",
        "cnn",
        "--seed",
        "1",
        "-o",
        s(&p("cnn.safetensors")),
        "--test-out",
        s(&p("test.csv")),
    ]);
    write_train_rows(&p("test.csv"), &p("train.csv"));
    let int8 = p("cnn-int8.safetensors");
    kiln_ok(&[
        "quantize",
        s(&p("cnn.safetensors")),
        "--calibrate",
        s(&p("train.csv")),
        "-o",
        s(&int8),
    ]);
    let cmp = eval(&p("cnn.safetensors"), &int8, &p("test.csv"));
    let (fa, qa) = (
        cmp["a"]["accuracy"].as_f64().unwrap(),
        cmp["b"]["accuracy"].as_f64().unwrap(),
    );
    eprintln!("cnn: f32 {fa:.4}  int8 {qa:.4}");
    assert!(fa > 0.95, "f32 CNN accuracy {fa}");
    assert!((qa - fa).abs() * 100.0 <= 0.5, "int8 {qa} vs f32 {fa}");
    let inspect: serde_json::Value =
        serde_json::from_str(&kiln_ok(&["inspect", s(&int8)])).unwrap();
    let layers = inspect["layers"].as_array().unwrap();
    let ops: Vec<&str> = layers.iter().map(|l| l["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "standardize",
            "quantize",
            "conv2d_int8",
            "max_pool",
            "flatten",
            "dense_int8",
            "dense_int8",
            "softmax"
        ],
        "every conv and dense layer is int8, the relus fused"
    );
    for l in layers.iter().filter(|l| l["op"] == "conv2d_int8") {
        assert_eq!(l["dtype"], "I8", "{l}");
        // 16 filters of 3×3 int8 + 16 f32 scales + 16 i32 biases.
        assert_eq!(l["bytes"], 16 * 9 + 16 * 4 + 16 * 4, "{l}");
    }

    let module = p("cnn.wasm");
    kiln_ok(&["build", s(&int8), "-o", s(&module)]);
    assert_eq!(kernel_of(&module), "cnn-int8");
    let wasm = scores(&kiln_ok(&[
        "predict",
        s(&module),
        "--input",
        s(&p("test.csv")),
    ]));
    let native = scores(&kiln_ok(&[
        "predict",
        s(&module),
        "--native",
        "--input",
        s(&p("test.csv")),
    ]));
    let single = scores(&kiln_ok(&[
        "predict",
        s(&module),
        "--batch",
        "1",
        "--input",
        s(&p("test.csv")),
    ]));
    csv_rows_as_json(&p("test.csv"), &p("rows.json"));
    let v8 = run_in_node(&module, &p("rows.json"));
    assert_eq!(wasm.len(), 359);
    assert_eq!(bits(&wasm), bits(&native), "wasmtime vs native");
    assert_eq!(bits(&wasm), bits(&single), "batch vs single rows");
    assert_eq!(bits(&v8), bits(&native), "V8 vs native");

    // Bad input: filter scales that are zero, negative or NaN; an int8
    // filter tensor whose length does not match its layer.
    let good = ModelFile::load(&int8).unwrap();
    let bad = p("bad.safetensors");
    for value in [0.0, -0.5, f32::NAN] {
        let mut m = good.clone();
        let TensorData::F32(scales) = &mut m.tensors.get_mut("conv0.weight.scale").unwrap().data
        else {
            panic!("scales are f32");
        };
        scales[5] = value;
        write_raw(&m, &bad);
        let err = kiln_err(&["build", s(&bad), "-o", s(&p("bad.wasm"))]);
        assert!(
            err.contains("(conv2d_int8)")
                && err.contains("conv0.weight.scale")
                && err.contains("positive, finite"),
            "{value}: {err}"
        );
    }
    let mut m = good;
    let w = m.tensors.get_mut("conv0.weight").unwrap();
    let TensorData::I8(data) = &mut w.data else {
        panic!("int8 filters");
    };
    data.truncate(15 * 9);
    w.shape = vec![15, 1, 3, 3];
    write_raw(&m, &bad);
    let err = kiln_err(&["inspect", s(&bad)]);
    assert!(
        err.contains("conv0.weight.scale") && err.contains("expected [15]"),
        "{err}"
    );
    // The header declares 16×1×3×4 filters over the 144 bytes of 16×1×3×3.
    let bytes = std::fs::read(&int8).unwrap();
    let needle = b"\"conv0.weight\":{\"dtype\":\"I8\",\"shape\":[16,1,3,3]";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("header layout");
    let mut raw = bytes.clone();
    raw[at + needle.len() - 2] = b'4';
    std::fs::write(&bad, &raw).unwrap();
    let err = kiln_err(&["inspect", s(&bad)]);
    assert!(
        err.contains("conv0.weight") && err.contains("holds 144 bytes, but its shape needs 192"),
        "{err}"
    );
}

/// The relaxed-SIMD twin the sandbox runs (`kernel-relaxed.wasm` with the
/// module's blob) gives the plain SIMD128 build's scores bit for bit on the
/// 359 held-out rows, batched and row by row — for a calibrated model whose
/// hidden activations are 7-bit (ReLU ranges get zero point 0), so the
/// relaxed dot product is what runs them.
#[test]
fn relaxed_simd_twin_gives_the_plain_builds_bits() {
    use kiln::sandbox::{Limits, Sandbox};
    let b = big();
    let int8 = ModelFile::load(&b.int8).unwrap();
    let hidden: Vec<_> = int8
        .graph
        .layers
        .iter()
        .filter_map(|l| match l {
            LayerSpec::DenseInt8 {
                output: Some(q),
                relu: true,
                ..
            } => Some(q.zero_point),
            _ => None,
        })
        .collect();
    assert_eq!(hidden, [0, 0], "hidden ReLU activations are 7-bit");

    let dir = scratch();
    let module = dir.path().join("m.wasm");
    kiln_ok(&["build", s(&b.int8), "-o", s(&module)]);
    let wasm = std::fs::read(&module).unwrap();
    let rows: Vec<f32> = std::fs::read_to_string(&b.test_csv)
        .unwrap()
        .lines()
        .skip(1)
        .flat_map(|l| {
            let v: Vec<f32> = l.split(',').map(|v| v.trim().parse().unwrap()).collect();
            v[..64].to_vec()
        })
        .collect();
    assert_eq!(rows.len(), 359 * 64);

    let relaxed = Sandbox::new(Limits::default()).unwrap();
    let plain = Sandbox::new(Limits::default())
        .unwrap()
        .with_relaxed_simd(false);
    let (lr, lp) = (relaxed.load(&wasm).unwrap(), plain.load(&wasm).unwrap());
    assert!(lr.relaxed_simd(), "the sandbox runs the relaxed twin");
    assert!(!lp.relaxed_simd());
    let to_bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    let want = to_bits(plain.predict(&lp, &rows).unwrap());
    assert_eq!(want.len(), 359 * 10);
    assert_eq!(to_bits(relaxed.predict(&lr, &rows).unwrap()), want, "batch");
    for (r, row) in rows.chunks_exact(64).enumerate().step_by(17) {
        let got = to_bits(relaxed.predict(&lr, row).unwrap());
        assert_eq!(got, want[r * 10..(r + 1) * 10], "row {r}");
    }
    // A module this kiln did not make byte for byte runs as given.
    let mut other = wasm.clone();
    other.extend_from_slice(&[0, 4, 3, b'x', b'y', b'z']);
    assert!(!relaxed.load(&other).unwrap().relaxed_simd());

    // `kiln build --relaxed-simd` writes that twin as a file, for loaders
    // that pick it after probing the engine (tests/node/relaxed-probe.mjs).
    let twin = dir.path().join("m.relaxed.wasm");
    kiln_ok(&["build", s(&b.int8), "--relaxed-simd", "-o", s(&twin)]);
    let twin_bytes = std::fs::read(&twin).unwrap();
    assert_eq!(Some(twin_bytes), kiln::module::relaxed_twin(&wasm).unwrap());
    // In V8: a conforming relaxed dot product (Chrome 114+) gives the
    // portable module's bits; Node 20's pre-release one (behind its flag)
    // doubles every dot product, which the probe reports and which changes
    // the scores — so a loader must probe, not just validate.
    let rows_json = dir.path().join("rows.json");
    let json_rows: Vec<&[f32]> = rows.chunks_exact(64).collect();
    std::fs::write(&rows_json, serde_json::to_vec(&json_rows).unwrap()).unwrap();
    let flags = node_relaxed_simd_flags();
    let v8_twin = bits(&run_in_node_with(&flags, &twin, &rows_json));
    let v8_plain = bits(&run_in_node(&module, &rows_json));
    assert_eq!(v8_plain.concat(), want, "V8 vs wasmtime, portable module");
    match node_relaxed_dot(&flags) {
        -4 => assert_eq!(v8_twin, v8_plain, "V8: relaxed twin vs portable module"),
        -8 => assert_ne!(
            v8_twin, v8_plain,
            "Node 20's doubled dot product went unseen"
        ),
        dot => panic!(
            "relaxed dot(-1, 1) = {dot} in this Node: neither the spec's -4 nor Node 20's -8"
        ),
    }
    let err = kiln_err(&[
        "build",
        s(&b.model),
        "--relaxed-simd",
        "-o",
        s(&dir.path().join("f.wasm")),
    ]);
    assert!(err.contains("has no int8 dense layer"), "{err}");
}
