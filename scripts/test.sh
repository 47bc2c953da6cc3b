#!/usr/bin/env bash
# Runs every test of kiln on a fresh machine (Rust toolchain, gcc, Python 3.11,
# Node 20): installs what the tests need, idempotently, then runs them.
# `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target
ensure_apt protobuf-compiler   # protoc, for the gRPC service (runtime/build.rs)
ensure_pip "tritonclient[all]" pytest numpy

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test" cargo test --workspace --locked

ensure_pip "safetensors>=0.4" "numpy>=1.24"
step "int8 model opens with safetensors.numpy" scripts/test-int8-python.sh

# ONNX import against onnxruntime and the onnx package's conformance cases
# (tests/python/test_onnx_*.py drive the kiln binary named by $KILN).
ensure_pip "onnx>=1.16" "onnxruntime>=1.18" "skl2onnx>=1.17" "scikit-learn>=1.4" "numpy" "pytest>=8"
step "cargo build (kiln binary for the Python tests)" cargo build --locked
step "pytest tests/python/test_onnx_*.py" env KILN=target/debug/kiln \
  python3 -m pytest -q tests/python/test_onnx_import.py tests/python/test_onnx_conformance.py

# The stock Python tritonclient (http and grpc) against a real `kiln serve`.
step "pytest tests/python/test_tritonclient.py" env KILN=target/debug/kiln \
  python3 -m pytest -q tests/python/test_tritonclient.py

step "cargo clippy (browser package, wasm32)" cargo clippy -p kiln-browser \
  --target wasm32-unknown-unknown --locked -- -D warnings

# The browser package + demo page in headless Chromium (issue #6) and the edge
# worker in workerd (issue #7). Both drive target/debug/kiln, built above.
ensure_apt chromium
./scripts/web.sh
ensure_npm tests/browser
ensure_npm tests/worker
step "node --test tests/worker" env KILN=target/debug/kiln node --test tests/worker/
step "node --test tests/browser" env KILN=target/debug/kiln node --test tests/browser/

# The peer benchmark's smoke run (issue #9): every peer (kiln native, wasmtime,
# Node raw ABI + wasm-bindgen package; onnxruntime native and -web) on the MLP
# and CNN, f32 and int8, a few calls each; fails unless the figures are finite
# and positive and the scores agree (bench/report.py). ~20 s. The full run is
# bench/run.sh.
step "python3 -m pytest tests/python/test_bench_report.py" python3 -m pytest -q tests/python/test_bench_report.py
step "bench/run.sh --smoke" env KILN=target/debug/kiln bench/run.sh --smoke
