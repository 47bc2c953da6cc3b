//! Compiles the guest kernel (`../guest`) to `wasm32-unknown-unknown` so the
//! `kiln` binary can embed it: `kiln build` then needs no Rust toolchain.
//!
//! Four artifacts are written to `OUT_DIR`:
//! * `kernel.wasm` — feature `module`: the ABI v1 exports, no model yet,
//!   `+simd128` (runs in every engine kiln targets);
//! * `kernel-relaxed.wasm` — the same source with `+simd128,+relaxed-simd`:
//!   the second build the sandbox runs when its engine supports relaxed SIMD
//!   (`runtime/src/sandbox/relaxed.rs`);
//! * `kernel-tests.wasm`, `kernel-tests-relaxed.wasm` — feature
//!   `kernel-tests`: also export single kernels, for the host's
//!   SIMD-vs-reference tests of both builds.
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
        .compile_protos(&["proto/grpc_service.proto"], &["proto"])
        .unwrap_or_else(|e| {
            panic!("generating the gRPC service failed ({e}). Is protoc installed? apt-get install protobuf-compiler, or set PROTOC")
        });

    for (feature, features, name) in [
        ("module", SIMD128, "kernel.wasm"),
        ("module", RELAXED, "kernel-relaxed.wasm"),
        ("kernel-tests", SIMD128, "kernel-tests.wasm"),
        ("kernel-tests", RELAXED, "kernel-tests-relaxed.wasm"),
    ] {
        let flavour = if features == RELAXED { "-relaxed" } else { "" };
        let target_dir = out.join(format!("guest-{feature}{flavour}"));
        build_guest(&guest, &target_dir, feature, features);
        let built = target_dir.join("wasm32-unknown-unknown/kernel/kiln_guest.wasm");
        std::fs::copy(&built, out.join(name))
            .unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
    }
}

/// Target features of the plain build.
const SIMD128: &str = "+simd128";
/// Target features of the relaxed-SIMD build.
const RELAXED: &str = "+simd128,+relaxed-simd";

fn build_guest(guest: &Path, target_dir: &Path, feature: &str, target_features: &str) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // 128 KiB of shadow stack (the default is 1 MiB): the kernel recurses
    // nowhere, and a smaller initial memory makes instances cheaper.
    let rustflags = [
        format!("-Ctarget-feature={target_features}"),
        "-Clink-arg=-zstack-size=131072".to_string(),
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
        .args(["--profile", "kernel", "--features", feature])
        .arg("--target-dir")
        .arg(target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("running cargo to build the wasm kernel");
    if !status.success() {
        panic!(
            "building the wasm kernel failed. Is the target installed? \
             Run: rustup target add wasm32-unknown-unknown"
        );
    }
}
