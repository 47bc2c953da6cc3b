//! Compiles the guest kernel (`../guest`) to `wasm32-unknown-unknown` so the
//! `kiln` binary can embed it: `kiln build` then needs no Rust toolchain.
//!
//! The guest's layer families are cargo features (`guest/Cargo.toml`), and
//! a module embeds the smallest kernel holding the families its model uses
//! ([`kiln::module::kernel_for`]). These artifacts are written to
//! `OUT_DIR` ([`KERNELS`]), all `+simd128` (runs in every engine kiln
//! targets) and exporting ABI v1 with no model yet:
//! * `kernel-mlp.wasm` — feature `module` alone: dense and int8 dense
//!   layers and the activations of MLPs (MLPs, quantized or not);
//! * `kernel-cnn.wasm` — `module,conv`: with the CNN family (f32
//!   convolution, pooling, their activations), for f32 CNNs;
//! * `kernel-cnn-int8.wasm` — `module,int8-conv`: also int8 convolution
//!   and pooling, for quantized CNNs — every layer a chain model can have;
//! * `kernel-rnn.wasm` — `module,int8-rnn`: the MLP kernel with the
//!   recurrent family (RNN, GRU, LSTM; f32 or int8 weights), for models with
//!   recurrent layers;
//! * `kernel-trees.wasm` — `module,trees`: the MLP kernel with the tree
//!   family (tree ensembles), for models with a tree ensemble;
//! * `kernel-graph.wasm` — `module,conv,dag`: the CNN kernel with graph
//!   models (blob version 5, the arena plan), for graph models (f32 only);
//! * `kernel-relaxed.wasm` — `kernel-cnn-int8.wasm`'s source with the guest
//!   feature `relaxed-simd` (its int8 dense kernel enables the
//!   `relaxed-simd` target feature, nothing else does): the one twin the
//!   sandbox runs, for every chain model with int8 dense layers, when its
//!   engine supports relaxed SIMD ([`kiln::module::relaxed_twin`]);
//! * `kernel-rnn-relaxed.wasm` — `kernel-rnn.wasm`'s source with
//!   `relaxed-simd`: the twin of recurrent models with int8 weights or int8
//!   dense layers;
//! * `kernel-tests.wasm`, `kernel-tests-relaxed.wasm` — feature
//!   `kernel-tests`: also export single kernels, for the host's
//!   SIMD-vs-reference tests of both builds.
//!
//! Each is a nested cargo with its own target directory ([`kernels_dir`]:
//! shared by the outer builds of one profile); they run at once (sharing
//! the outer build's jobserver), since this script is on the critical path
//! of every fresh build.
//!
//! It also generates the KServe v2 gRPC service (`proto/grpc_service.proto`)
//! with tonic-prost-build, which needs `protoc` (Debian `protobuf-compiler`,
//! or `PROTOC=/path/to/protoc`).
//!
//! Like wasmtime's test-programs build script, this runs a nested cargo with
//! its own target directory (so it never waits on the outer build's lock)
//! and a clean set of RUSTFLAGS.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let guest = manifest.join("../guest");
    println!("cargo:rerun-if-changed={}", guest.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        guest.join("Cargo.toml").display()
    );
    println!("cargo:rerun-if-changed=../Cargo.toml");

    println!("cargo:rerun-if-changed=proto/grpc_service.proto");
    tonic_prost_build::configure()
        .build_client(false)
        .codec_path("crate::serve::grpc::codec::Codec")
        .compile_protos(&["proto/grpc_service.proto"], &["proto"])
        .unwrap_or_else(|e| {
            panic!("generating the gRPC service failed ({e}). Is protoc installed? apt-get install protobuf-compiler, or set PROTOC")
        });

    std::thread::scope(|scope| {
        for &(features, name) in KERNELS {
            let (guest, out) = (&guest, &out);
            scope.spawn(move || kernel(guest, out, features, name));
        }
    });
}

/// The guest features and file name of every kernel artifact.
const KERNELS: &[(&str, &str)] = &[
    ("module", "kernel-mlp.wasm"),
    ("module,int8-rnn", "kernel-rnn.wasm"),
    ("module,trees", "kernel-trees.wasm"),
    ("module,conv", "kernel-cnn.wasm"),
    ("module,int8-conv", "kernel-cnn-int8.wasm"),
    ("module,conv,dag", "kernel-graph.wasm"),
    ("module,int8-conv,relaxed-simd", "kernel-relaxed.wasm"),
    ("module,int8-rnn,relaxed-simd", "kernel-rnn-relaxed.wasm"),
    ("kernel-tests,int8-conv,int8-rnn", "kernel-tests.wasm"),
    (
        "kernel-tests,int8-conv,int8-rnn,relaxed-simd",
        "kernel-tests-relaxed.wasm",
    ),
];

/// Where the nested builds keep their target directories: `kernels/` in the
/// outer build's profile directory (`OUT_DIR` is
/// `<profile>/build/kiln-<hash>/out`), so every build of one profile
/// (`cargo clippy` and `cargo test` each run this script with its own
/// `OUT_DIR`) shares them and compiles each kernel once; `OUT_DIR` itself
/// when it is laid out otherwise.
fn kernels_dir(out: &Path) -> PathBuf {
    match (out.ancestors().nth(2), out.ancestors().nth(3)) {
        (Some(build), Some(profile)) if build.file_name() == Some("build".as_ref()) => {
            profile.join("kernels")
        }
        _ => out.to_path_buf(),
    }
}

/// Builds the guest with `features` and writes it to `out/name`.
fn kernel(guest: &Path, out: &Path, features: &str, name: &str) {
    let target_dir = kernels_dir(out).join(format!("guest-{}", features.replace(',', "-")));
    build_guest(guest, &target_dir, features);
    let built = target_dir.join("wasm32-unknown-unknown/kernel/kiln_guest.wasm");
    let mut wasm =
        std::fs::read(&built).unwrap_or_else(|e| panic!("reading {}: {e}", built.display()));
    if features.contains("relaxed-simd") {
        pin_min_max(&mut wasm);
    }
    std::fs::write(out.join(name), wasm).unwrap_or_else(|e| panic!("writing {name}: {e}"));
}

fn build_guest(guest: &Path, target_dir: &Path, features: &str) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // 128 KiB of shadow stack (the default is 1 MiB): the kernel recurses
    // nowhere, and a smaller initial memory makes instances cheaper.
    // `__heap_base` and `__data_end` are exported explicitly: the module
    // builder reads them, and newer wasm-ld (nightly Rust, which the fuzz
    // build uses) no longer exports them by default.
    let rustflags = [
        "-Ctarget-feature=+simd128",
        "-Clink-arg=-zstack-size=131072",
        "-Clink-arg=--export=__heap_base",
        "-Clink-arg=--export=__data_end",
    ]
    .join("\x1f");
    let status = Command::new(cargo)
        .arg("rustc")
        .arg("--manifest-path")
        .arg(guest.join("Cargo.toml"))
        .args([
            "--lib",
            "--crate-type",
            "cdylib",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .args(["--profile", "kernel", "--features", features])
        .arg("--target-dir")
        .arg(target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        // Under `cargo clippy` the wrapper would lint the guest again, once
        // per kernel, and clippy-driver's settings change the code it makes.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("running cargo to build the wasm kernel");
    if !status.success() {
        panic!(
            "building the wasm kernel (guest features {features}) failed. Is the target \
             installed? Run: rustup target add wasm32-unknown-unknown"
        );
    }
}

/// Turns the `f32x4.relaxed_min`/`relaxed_max` LLVM emits into
/// `f32x4.pmin`/`pmax`.
///
/// wasm has no per-function target features, so LLVM applies the relaxed
/// kernel's `relaxed-simd` feature to the whole module, and then lowers
/// some `pmin`/`pmax`-shaped selects (the quantize clamp, ReLU, max
/// reductions) to relaxed min/max — whose NaN and ±0 results vary by host
/// (x86 `minps` keeps the second operand, Arm propagates NaN). `pmin`/`pmax`
/// are among the results the relaxed forms allow, so this only pins what
/// LLVM already accepted, and gives the plain build's instructions back.
/// Each encoding is three bytes (0xfd prefix, two-byte LEB128), patched in
/// place at the operator's offset. tests/e2e/kernels.rs checks that the
/// relaxed build then holds no relaxed instruction but the int8 dot product
/// and runs every kernel test on it.
fn pin_min_max(wasm: &mut [u8]) {
    use wasmparser::{Operator, Parser, Payload};
    const RELAXED_MIN: [u8; 3] = [0xfd, 0x8d, 0x02]; // 0x10d
    const RELAXED_MAX: [u8; 3] = [0xfd, 0x8e, 0x02]; // 0x10e
    const PMIN: [u8; 3] = [0xfd, 0xea, 0x01]; // 0xea
    const PMAX: [u8; 3] = [0xfd, 0xeb, 0x01]; // 0xeb
    let mut patches = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.expect("the relaxed kernel parses");
        if let Payload::CodeSectionEntry(body) = payload {
            let mut ops = body.get_operators_reader().expect("function body");
            while !ops.eof() {
                let (op, at) = ops.read_with_offset().expect("operator");
                match op {
                    Operator::F32x4RelaxedMin => patches.push((at as usize, RELAXED_MIN, PMIN)),
                    Operator::F32x4RelaxedMax => patches.push((at as usize, RELAXED_MAX, PMAX)),
                    _ => {}
                }
            }
        }
    }
    for (at, from, to) in patches {
        assert_eq!(wasm[at..at + 3], from, "relaxed min/max encoding at {at}");
        wasm[at..at + 3].copy_from_slice(&to);
    }
}
