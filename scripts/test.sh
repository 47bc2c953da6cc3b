#!/usr/bin/env bash
# Runs every test of kiln on a fresh machine (Rust toolchain, gcc, Python 3.11,
# Node 20): installs what the tests need, idempotently, then runs them.
# `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test" cargo test --workspace --locked

ensure_pip "safetensors>=0.4" "numpy>=1.24"
step "int8 model opens with safetensors.numpy" scripts/test-int8-python.sh
