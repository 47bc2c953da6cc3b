#!/usr/bin/env bash
# Runs every test of kiln on a fresh machine (Rust toolchain, gcc, Python
# 3.11+, Node 20): installs what the tests need, idempotently, then runs them.
# `.ci/run` runs exactly this; scripts/fresh-check.sh runs it in a fresh clone.
#
# Python runs from the project's .venv (requirements/test.txt), isolated
# (`python -I`): a guard below fails the run if any package the tests import
# resolves outside .venv, so nothing passes thanks to the machine's own
# site-packages.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
start=$(date +%s)

ensure_wasm_target
ensure_apt protobuf-compiler chromium # protoc for the gRPC service (runtime/build.rs); Chromium for tests/browser
ensure_venv requirements/test.txt
ensure_wasmsign2 # tests/e2e/trust.rs checks that it and kiln verify each other's signatures
step "the Python tests' packages resolve inside .venv" "$KILN_PYTHON" -I scripts/venv_check.py \
  requirements/test.txt --modules tritonclient.http tritonclient.grpc pytest numpy safetensors \
  onnx onnxruntime skl2onnx sklearn keras jax h5py
pytest() { "$KILN_PYTHON" -I -m pytest -q "$@"; }

# The fuzz targets' cold build (nightly, a target dir of its own) is the
# longest piece of work after `cargo test`. It starts here, after the
# installers, at the lowest CPU priority: it takes only the cycles the steps
# below leave idle (linking, single-crate stretches, the Python and browser
# tests) and adds next to nothing to their time; the fuzz step at the end
# waits for it. Its log: out/fuzz-build.log.
mkdir -p out
nice -n 19 scripts/fuzz.sh --quick --build >out/fuzz-build.log 2>&1 &
fuzz_build=$!
trap 'kill $fuzz_build 2>/dev/null || true' EXIT
step "the installers of scripts/lib.sh decide right" tests/scripts/lib_test.sh

step "cargo fmt --check" cargo fmt --all -- --check
# The dependency policy of deny.toml, advisories from the offline RustSec
# snapshot committed in tests/supply-chain (the script prints its date).
step "scripts/deny.sh (licenses, bans, sources, advisories)" scripts/deny.sh
# One build both lints and tests: the workspace's crates are compiled by
# clippy-driver in place of rustc (RUSTC_WORKSPACE_WRAPPER, as `cargo clippy`
# runs it, with its lints denied as `cargo clippy -- -D warnings` passes
# them), every target as `--all-targets` lints them. A separate `cargo
# clippy` checked every dependency a second time: ~7 min of a fresh run here.
lint=(env RUSTC_WORKSPACE_WRAPPER=clippy-driver CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__)
step "cargo test --no-run (every target, linted by clippy -D warnings)" \
  "${lint[@]}" cargo test --workspace --all-targets --no-run --locked
step "cargo test" "${lint[@]}" cargo test --workspace --locked
# The workspace unifies the guest's features; the MLP module kernel builds
# the guest with no layer family, the browser packages with the CNN family
# alone (`conv`) or the recurrent family without int8 weights (`rnn`), so
# test those builds of the guest on their own too.
step "cargo test (guest, no layer family)" cargo test -p kiln-guest --locked
step "cargo test (guest, CNN family only)" cargo test -p kiln-guest --features conv --locked
step "cargo test (guest, recurrent family only, f32 weights as in web/pkg-rnn)" cargo test -p kiln-guest --features rnn --locked

# The kiln binary the remaining tests drive is the one `cargo test` built for
# tests/e2e. A separate `cargo build` would resolve other features (no
# dev-dependencies) and compile wasmtime and the rest a second time.
export KILN=target/debug/kiln
[ -x "$KILN" ] || { echo "error: cargo test left no $KILN" >&2; exit 1; }

step "int8 model opens with safetensors.numpy" scripts/test-int8-python.sh

# ONNX import against onnxruntime and the onnx package's conformance cases,
# then the stock Python tritonclient (http and grpc) against a real `kiln serve`.
step "pytest tests/python/test_onnx_*.py" pytest tests/python/test_onnx_import.py \
  tests/python/test_onnx_mobilenet.py tests/python/test_onnx_graphs.py \
  tests/python/test_onnx_conformance.py tests/python/test_onnx_recurrent.py \
  tests/python/test_onnx_backend_recurrent.py tests/python/test_onnx_trees.py \
  tests/python/test_tree_files.py
# Keras import against real Keras 3 (JAX backend): models trained in the test.
step "pytest tests/python/test_keras_*.py" pytest tests/python/test_keras_import.py \
  tests/python/test_keras_graphs.py
step "pytest tests/python/test_tritonclient.py" pytest tests/python/test_tritonclient.py
# The same clients over TLS and mutual TLS (certificates from the example
# test_certs, which `cargo test` built).
step "pytest tests/python/test_tls.py" pytest tests/python/test_tls.py

for features in "" conv rnn dag; do
  step "cargo clippy (browser package, wasm32${features:+, $features})" cargo clippy -p kiln-browser \
    --target wasm32-unknown-unknown --locked ${features:+--features "$features"} -- -D warnings
done

# The browser package + demo page in headless Chromium and the edge worker in
# workerd; both drive $KILN.
./scripts/web.sh
ensure_npm tests/browser
ensure_npm tests/worker
step "node --test tests/worker" node --test tests/worker/
step "node --test tests/browser" node --test tests/browser/
step "the main job (scripts/demo.sh) serves the page" tests/scripts/demo_test.sh

# Deployment: the KServe and Kubernetes manifests against the vendored schemas,
# and the worker through `wrangler deploy --dry-run`. The image and cluster
# tests (tests/deploy/run.sh, tests/cluster/run.sh: root, a static release
# build) run by hand; docs/deploy.md has their figures.
ensure_venv requirements/deploy.txt
step "pytest tests/deploy/test_manifests.py" pytest tests/deploy/test_manifests.py
ensure_npm tests/deploy/wrangler
step "wrangler deploy --dry-run" node --test tests/deploy/wrangler/

# Issue #16's HTTP fuzzing and soak: schemathesis against a live server from
# docs/openapi.yaml, and the 60 s soak (tests/soak). docs/security.md has the
# longer runs' figures.
step "tests/fuzz/http.sh (schemathesis)" tests/fuzz/http.sh
step "tests/soak/run.sh (60 s)" tests/soak/run.sh --seconds 60

# The peer benchmark's smoke run: every peer (kiln native, wasmtime, Node raw
# ABI + wasm-bindgen package; onnxruntime native and -web) on the MLP and CNN,
# f32 and int8, a few calls each; fails unless the figures are finite and
# positive and the scores agree (bench/report.py). The full run is bench/run.sh.
step "pytest tests/python/test_bench_report.py" pytest tests/python/test_bench_report.py
step "bench/run.sh --smoke" bench/run.sh --smoke

# Last, so that every step above overlaps their build: the fuzz targets for 15 s
# each from their seed corpus (scripts/fuzz.sh installs nightly and cargo-fuzz
# if missing).
fuzz_build_done() {
  wait "$fuzz_build" || { tail -n 40 out/fuzz-build.log >&2; return 1; }
  sed -n 's/^\(<==.*\)/\1 (in the background)/p' out/fuzz-build.log >&2
}
step "the fuzz targets' build (started after the installers)" fuzz_build_done
step "scripts/fuzz.sh --quick --seconds 15" scripts/fuzz.sh --quick --seconds 15

echo "scripts/test.sh: every test passed in $(($(date +%s) - start)) s" >&2
