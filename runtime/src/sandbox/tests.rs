//! Isolation between requests: no state survives from one instance to the
//! next, whichever way pool slots are reset.

use std::time::Duration;

use super::*;

/// An ABI v1 module that reports, then dirties, four pieces of its
/// state: a value in its data image (7), a zero page of its initial
/// memory, the first word of the page it grows (its initial memory is
/// two pages), and a mutable global.
/// A fresh instance therefore always reports `[7, 0, 0, 0]`; any state
/// surviving from an earlier call shows up as `[8, 99, 55, 1]`.
/// `kiln_input(2)` grows memory without end (the cap), `kiln_input(3)`
/// loops forever (the deadline).
const DIRTY: &str = r#"(module
  (memory (export "memory") 2)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 4096) "\07\00\00\00")
  (func (export "kiln_abi_version") (result i32) i32.const 1)
  (func (export "kiln_input_len") (result i32) i32.const 1)
  (func (export "kiln_output_len") (result i32) i32.const 4)
  (func (export "kiln_input") (param $batch i32) (result i32)
    (if (i32.eq (local.get $batch) (i32.const 2))
      (then (loop $grow (drop (memory.grow (i32.const 16))) (br $grow))))
    (if (i32.eq (local.get $batch) (i32.const 3))
      (then (loop $spin (br $spin))))
    i32.const 64)
  (func (export "kiln_output") (result i32) i32.const 128)
  (func (export "kiln_run") (param i32) (result i32)
    (f32.store (i32.const 128) (f32.convert_i32_s (i32.load (i32.const 4096))))
    (i32.store (i32.const 4096) (i32.add (i32.load (i32.const 4096)) (i32.const 1)))
    (f32.store (i32.const 132) (f32.convert_i32_s (i32.load (i32.const 70000))))
    (i32.store (i32.const 70000) (i32.const 99))
    (drop (memory.grow (i32.const 1)))
    (f32.store (i32.const 136) (f32.convert_i32_s (i32.load (i32.const 131072))))
    (i32.store (i32.const 131072) (i32.const 55))
    (f32.store (i32.const 140) (f32.convert_i32_s (global.get $calls)))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    i32.const 0))"#;

fn pooled(keep_resident: Option<usize>) -> Sandbox {
    let limits = Limits {
        memory_bytes: 1 << 20,
        deadline: Duration::from_millis(50),
        module_bytes: 1 << 20,
    };
    let options = EngineOptions {
        pool_slots: Some(2),
        max_memory_bytes: 1 << 20,
        cache_dir: None,
        keep_resident,
    };
    Sandbox::with_options(limits, options).unwrap()
}

/// Every request sees the memory and globals of a just-instantiated
/// module, whichever way pool slots are reset (pages kept resident and
/// copied back, or discarded), also after requests that hit the memory
/// cap or the deadline.
#[test]
fn no_state_survives_a_request() {
    let wasm = wat::parse_str(DIRTY).unwrap();
    for keep in [None, Some(0)] {
        let sandbox = pooled(keep);
        let module = sandbox.load(&wasm).unwrap();
        // Within one instance the module does dirty all four: what the
        // assertions below would see if an instance's state leaked.
        let mut run = sandbox.instance(&module).unwrap();
        assert_eq!(run.predict(1, &[0.0], 4).unwrap(), [7.0, 0.0, 0.0, 0.0]);
        assert_eq!(run.predict(1, &[0.0], 4).unwrap(), [8.0, 99.0, 55.0, 1.0]);
        drop(run);
        for round in 0..40 {
            let scores = sandbox.predict(&module, &[0.0]).unwrap();
            assert_eq!(scores, [7.0, 0.0, 0.0, 0.0], "round {round}, {keep:?}");
            if round % 10 == 3 {
                let err = sandbox.predict(&module, &[0.0, 0.0]).unwrap_err();
                assert!(matches!(err, SandboxError::MemoryCap(_)), "{err}");
            }
            if round % 10 == 7 {
                let err = sandbox.predict(&module, &[0.0; 3]).unwrap_err();
                assert!(matches!(err, SandboxError::Deadline(_)), "{err}");
            }
        }
    }
}

/// An ABI v1 module of one input and one output value per row whose
/// `kiln.meta` gives `input` and `output` as its tensors.
fn with_meta(input: serde_json::Value, output: serde_json::Value) -> Vec<u8> {
    let meta = serde_json::json!({
        "abi_version": 1, "name": "t", "version": "1", "task": "regression",
        "input": input, "output": output, "model_sha256": "", "kiln_version": "test"
    })
    .to_string()
    .replace('"', "\\\"");
    wat::parse_str(format!(
        r#"(module
          (memory (export "memory") 1)
          (func (export "kiln_abi_version") (result i32) i32.const 1)
          (func (export "kiln_input_len") (result i32) i32.const 1)
          (func (export "kiln_output_len") (result i32) i32.const 1)
          (func (export "kiln_input") (param i32) (result i32) i32.const 64)
          (func (export "kiln_output") (result i32) i32.const 64)
          (func (export "kiln_run") (param i32) (result i32) i32.const 0)
          (@custom "kiln.meta" "{meta}"))"#
    ))
    .unwrap()
}

/// `kiln.meta` must agree with the module's own `kiln_input_len` and
/// `kiln_output_len`, with checked arithmetic on its shapes.
#[test]
fn kiln_meta_is_checked_against_the_module() {
    let sandbox = pooled(None);
    let t = |shape: serde_json::Value| serde_json::json!({"name": "x", "datatype": "FP32", "shape": shape});
    let load = |input, output| sandbox.load(&with_meta(input, output)).map(|_| ());
    assert!(load(t(serde_json::json!([1])), t(serde_json::json!([1]))).is_ok());
    let e = load(t(serde_json::json!([1])), t(serde_json::json!([3]))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "module reports 1 output values per row but its metadata says 3"
    );
    // 2^64 values: the product overflows usize.
    let huge = serde_json::json!([65536, 65536, 65536, 65536]);
    let e = load(t(huge), t(serde_json::json!([1]))).unwrap_err();
    assert!(e.to_string().contains("too many values"), "{e}");
    let e = load(
        t(serde_json::json!([4294967296u64])),
        t(serde_json::json!([1])),
    )
    .unwrap_err();
    assert!(e.to_string().contains("between 1 and 2^31-1"), "{e}");
    let e = load(t(serde_json::json!([0])), t(serde_json::json!([1]))).unwrap_err();
    assert!(e.to_string().contains("between 1 and 2^31-1"), "{e}");
    let int8 = serde_json::json!({"name": "x", "datatype": "INT8", "shape": [1]});
    let e = load(int8, t(serde_json::json!([1]))).unwrap_err();
    assert!(e.to_string().contains("not FP32"), "{e}");
}
