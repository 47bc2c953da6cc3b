//! The wasm kernels against their generic definitions, bit for bit, over
//! the guest's shared case table (`kiln_guest::kernels::check`), in both
//! kernel builds; and the digest of their outputs against the native
//! run's, so the wasm kernels give the native bits.

use kiln::kiln_guest::kernels::check;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use wasmtime::{Engine, Instance, Module, Store};

/// A kernel-tests module instance.
struct Kernel {
    store: Store<()>,
    instance: Instance,
}

impl Kernel {
    /// Both builds of the test kernel: the plain SIMD128 one and the
    /// relaxed-SIMD one (the latter holds no relaxed instruction but the
    /// int8 dot product, yet every check runs on it too), the relaxed one
    /// compiled with the engine's native (non-deterministic) lowering of
    /// relaxed instructions, as the sandbox compiles it.
    fn builds() -> [Self; 2] {
        [
            Self::of(kiln::module::KERNEL_TESTS_WASM),
            Self::of(kiln::module::KERNEL_TESTS_RELAXED_WASM),
        ]
    }

    fn of(wasm: &[u8]) -> Self {
        let mut config = wasmtime::Config::new();
        config
            .wasm_relaxed_simd(true)
            .relaxed_simd_deterministic(false);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wasm).unwrap();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        Kernel { store, instance }
    }

    /// `kiln_test_check`: op `op` of [`check::OPS`] on every case, encoded.
    fn check(&mut self, op: usize) -> i64 {
        self.instance
            .get_typed_func::<(i32, i32, i32), i64>(&mut self.store, "kiln_test_check")
            .unwrap()
            .call(&mut self.store, (op as i32, -1, 0))
            .unwrap()
    }
}

/// Random values spanning magnitudes, with zeros, negative zeros and
/// subnormals mixed in.
pub(crate) fn values(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match rng.random_range(0..20) {
            0 => 0.0,
            1 => -0.0,
            2 => f32::from_bits(rng.random_range(1..0x007f_ffff)),
            3 => rng.random_range(-1e4..1e4),
            _ => rng.random_range(-2.0..2.0),
        })
        .collect()
}

/// Every op in both kernel builds: the wasm kernel equals the generic
/// definition on every case (inside the module), and the outputs' digest
/// equals the native run's (the x86-64 kernels, equal to the definition
/// too). Among the cases, the int8 dense kernel on 7-bit rows with extreme
/// weights is the relaxed build's fast path (`i32x4.relaxed_dot_i8x16_i7x16_add_s`,
/// lowered natively — `pmaddubsw` on x86 — where a signed reading of an
/// out-of-range operand would saturate), and a row with a negative value
/// in the same batch must take its plain kernel.
#[test]
fn every_kernel_matches_its_definition_and_the_native_bits() {
    let native: Vec<i64> = (0..check::OPS.len())
        .map(|op| check::encode(check::check(op, None, 0)))
        .collect();
    for ((name, _), &n) in check::OPS.iter().zip(&native) {
        assert!(n >= 0, "{name} natively: {:?}", check::decode(n));
    }
    for (build, mut k) in ["plain", "relaxed"].into_iter().zip(Kernel::builds()) {
        for (op, ((name, _), &want)) in check::OPS.iter().zip(&native).enumerate() {
            let got = k.check(op);
            assert_eq!(
                check::decode(got),
                check::decode(want),
                "{name} in the {build} build (Ok: the digest)"
            );
        }
    }
}

/// The relaxed build uses relaxed SIMD for one thing only: the int8 dot
/// product, whose operands the relaxed kernel checks (everything else in it is
/// the plain build's code, tested above); the plain build uses none.
#[test]
fn relaxed_build_uses_only_the_checked_dot_product() {
    use wasmparser::{Parser, Payload};
    let relaxed_ops = |wasm: &[u8]| {
        let mut ops = std::collections::BTreeMap::<String, usize>::new();
        for payload in Parser::new(0).parse_all(wasm) {
            if let Payload::CodeSectionEntry(body) = payload.unwrap() {
                let mut reader = body.get_operators_reader().unwrap();
                while !reader.eof() {
                    let op = format!("{:?}", reader.read().unwrap());
                    if op.contains("Relaxed") {
                        *ops.entry(op).or_default() += 1;
                    }
                }
            }
        }
        ops
    };
    let plain = kiln::module::KERNELS.map(|(_, wasm)| wasm);
    for wasm in plain.into_iter().chain([kiln::module::KERNEL_TESTS_WASM]) {
        assert!(relaxed_ops(wasm).is_empty());
    }
    for wasm in [
        kiln::module::KERNEL_RELAXED_WASM,
        kiln::module::KERNEL_RNN_RELAXED_WASM,
        kiln::module::KERNEL_TESTS_RELAXED_WASM,
    ] {
        let ops = relaxed_ops(wasm);
        assert_eq!(
            ops.keys().collect::<Vec<_>>(),
            ["I32x4RelaxedDotI8x16I7x16AddS"],
            "{ops:?}"
        );
    }
}
