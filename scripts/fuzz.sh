#!/usr/bin/env bash
# Runs kiln's fuzz targets (tests/fuzz, cargo-fuzz on libFuzzer) from their
# committed seed corpus, after installing what they need (nightly Rust and
# its wasm32 target, cargo-fuzz), idempotently.
#
#   scripts/fuzz.sh                  every target for 25 s (CI)
#   scripts/fuzz.sh --minutes N      every target for N minutes
#   scripts/fuzz.sh --seconds N [TARGET…]   chosen targets, N seconds each
#   scripts/fuzz.sh --seeds          rewrites tests/fuzz/seeds (tests/e2e/fuzz.rs)
#   scripts/fuzz.sh --build          installs and builds the targets, runs none
#   --quick (with any of the above)  builds at opt-level 1 without debug info
#                                    (CI: the targets build in less time and
#                                    run slower; a panic still names its line)
#
# The fuzzers grow a working corpus in tests/fuzz/corpus/TARGET (not
# committed) from tests/fuzz/seeds/TARGET. A crash stops the run with the
# input under tests/fuzz/artifacts/TARGET; it becomes a regression test by
# being copied to tests/fuzz/regressions/TARGET/ (tests/e2e/fuzz.rs runs those).
# Each target's last line of libFuzzer statistics (executions, coverage) is
# kept in tests/fuzz/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

TARGETS=(blob model_file onnx keras v2_rest grpc_infer browser sandbox)
seconds=25
chosen=()
seeds=0
build_only=0
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) seconds=$(($2 * 60)); shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --seeds) seeds=1; shift ;;
    --build) build_only=1; shift ;;
    --quick) export CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "error: unknown option $1" >&2; exit 2 ;;
    *) chosen+=("$1"); shift ;;
  esac
done
[ ${#chosen[@]} -gt 0 ] || chosen=("${TARGETS[@]}")

if [ "$seeds" = 1 ]; then
  step "write tests/fuzz/seeds" cargo test --locked --test e2e write_fuzz_seeds -- --ignored
  exit 0
fi

# Nightly (libFuzzer's sanitizer coverage needs -Z flags) and its wasm32
# target: runtime/build.rs compiles the guest kernel with the same cargo.
if ! rustup toolchain list | grep -q '^nightly-'; then
  step "rustup toolchain install nightly" rustup toolchain install nightly --profile minimal
fi
if ! rustup target list --installed --toolchain nightly 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown (nightly)" \
    rustup target add wasm32-unknown-unknown --toolchain nightly
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  step "cargo install cargo-fuzz" cargo install -q --locked cargo-fuzz
fi
ensure_apt protobuf-compiler # runtime/build.rs generates the gRPC service

# One build for every target. No sanitizer: the code under test is Rust
# (ASan would only slow wasmtime down); debug assertions catch overflow.
fuzz=(cargo +nightly fuzz)
opts=(--fuzz-dir tests/fuzz --sanitizer none --debug-assertions --release --codegen-units 16)
step "cargo fuzz build" "${fuzz[@]}" build "${opts[@]}"
[ "$build_only" = 0 ] || exit 0

mkdir -p tests/fuzz/logs
# fuzz_one TARGET: one libFuzzer run (single-threaded), its figures or its
# log's tail on stderr. -timeout: one input running longer than 10 s is a
# finding (a hung reader, or a module outliving its deadline); -rss_limit_mb
# likewise.
fuzz_one() {
  local t=$1 log="tests/fuzz/logs/$1.log"
  mkdir -p "tests/fuzz/corpus/$t"
  if step "fuzz $t for ${seconds} s" "${fuzz[@]}" run "${opts[@]}" "$t" \
    "tests/fuzz/corpus/$t" "tests/fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    >"$log" 2>&1; then
    grep -E '^#[0-9]+ *DONE|^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" | sed "s/^/  $t: /" >&2 || true
  else
    tail -n 40 "$log" >&2
    return 1
  fi
}
# One fuzzer per core at a time.
declare -A running=()
failed=()
reap_one() {
  local pid rc=0
  wait -n -p pid || rc=$?
  [ "$rc" = 0 ] || failed+=("${running[$pid]}")
  unset "running[$pid]"
}
for t in "${chosen[@]}"; do
  [ ${#running[@]} -lt "$(nproc)" ] || reap_one
  fuzz_one "$t" &
  running[$!]=$t
done
while [ ${#running[@]} -gt 0 ]; do reap_one; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "error: fuzz targets failed: ${failed[*]} (inputs under tests/fuzz/artifacts/)" >&2
  exit 1
fi
echo "scripts/fuzz.sh: ${#chosen[@]} targets, ${seconds} s each, no crash" >&2
