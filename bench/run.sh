#!/usr/bin/env bash
# The peer benchmark (issue #9): kiln — native kernel, module in wasmtime
# (fresh sandboxed instance per call and warm instance), module in Node via
# the raw ABI and via the wasm-bindgen package — against onnxruntime native
# (1 thread), onnxruntime-web's wasm backend in Node (1 thread, SIMD) and
# tract, on an MLP 784-256-128-10, a LeNet-style CNN, an LSTM (64 features,
# 128 hidden, 50 steps; issue #19) and MobileNetV2-0.35 at 96×96 (a graph,
# imported from ONNX by kiln), f32 and int8, same weights for every peer
# (kiln has no int8 graphs yet: its MobileNetV2 int8 rows are skipped,
# named in the report). One process per (peer, model) run; the order of the
# peers rotates across rounds; the report takes medians over rounds.
#
#   bench/run.sh            full run: release build, 5 rounds; writes the peer
#                           table into docs/benchmarks.md and docs/bench.svg
#   bench/run.sh --smoke    CI smoke run: debug build, 1 round, few iterations;
#                           checks that every peer runs, the figures are sane
#                           and the scores agree; writes only out/bench/smoke/
#   bench/run.sh --ab BASE  A/B of this tree's release build against the kiln
#                           binary BASE (e.g. an older commit's): kiln's runners
#                           only, each build's own modules of the same model
#                           files, interleaved; writes only out/bench/ab/
#
# Environment: ROUNDS (5), ITERS (1000 timed batch-1 calls per run; batch 32
# gets ITERS/8), WARMUP (300), TRACT=0 to skip tract (its first build takes
# minutes), KILN=path to use a given kiln binary.
# Installs what it needs, idempotently (Python: .venv from requirements/test.txt,
# with onnx, onnxruntime, safetensors, numpy; npm: onnxruntime-web in bench/;
# the browser package via scripts/web.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

smoke=0 base=""
case ${1:-} in
  --smoke) smoke=1 ;;
  --ab) base=$(realpath "${2:?--ab needs the base kiln binary}") ;;
esac

ensure_venv requirements/test.txt
ensure_npm bench
if [ "$smoke" = 1 ]; then
  out=out/bench/smoke
  rounds=${ROUNDS:-1} iters=${ITERS:-40} warmup=${WARMUP:-5}
  [ -f web/pkg/kiln.js ] && [ -f web/pkg-cnn/kiln.js ] && [ -f web/pkg-rnn/kiln.js ] && [ -f web/pkg-graph/kiln.js ] || ./scripts/web.sh
  kiln=${KILN:-target/debug/kiln}
  [ -x "$kiln" ] || step "cargo build (kiln)" cargo build --locked -p kiln
  tract=""
else
  out=out/bench/full
  [ -z "$base" ] || out=out/bench/ab
  rounds=${ROUNDS:-5} iters=${ITERS:-1000} warmup=${WARMUP:-300}
  [ -n "$base" ] || ./scripts/web.sh
  if [ -z "${KILN:-}" ]; then
    step "cargo build --release (kiln)" cargo build --release --locked -p kiln
  fi
  kiln=${KILN:-target/release/kiln}
  tract=""
  if [ "${TRACT:-1}" = 1 ] && [ -z "$base" ]; then
    start=$(date +%s)
    step "cargo build --release (bench/tract, tract-onnx; not a workspace member)" \
      cargo build --release --locked -q --manifest-path bench/tract/Cargo.toml --target-dir out/bench/tract-target
    echo "bench/tract built in $(( $(date +%s) - start )) s" >&2
    tract=out/bench/tract-target/release/kiln-bench-tract
  fi
fi
rm -rf "$out" && mkdir -p "$out"
models=$out/models

step "bench/make_models.py (ONNX + kiln files, same weights; onnxruntime int8)" \
  "$KILN_PYTHON" -I bench/make_models.py "$models" > /dev/null
for m in mlp cnn lstm; do
  calib=$models/calib.json
  [ "$m" != lstm ] || calib=$models/calib-lstm.json
  "$kiln" quantize "$models/$m.safetensors" --calibrate "$calib" \
    -o "$models/$m.int8.safetensors" > /dev/null
  for v in "$m" "$m.int8"; do
    "$kiln" build "$models/$v.safetensors" -o "$models/$v.wasm" > /dev/null
  done
done
# (its notes — one per BatchNormalization folded — go to a log beside it)
"$kiln" import "$models/mobilenet.onnx" -o "$models/mobilenet.safetensors" > /dev/null 2> "$models/mobilenet.import.log"
"$kiln" build "$models/mobilenet.safetensors" -o "$models/mobilenet.wasm" > /dev/null

ab=()
if [ -n "$base" ]; then
  # The base builds its own modules from the same model files.
  mkdir -p "$models/base"
  for v in mlp mlp.int8 cnn cnn.int8 lstm lstm.int8 mobilenet; do
    "$base" build "$models/$v.safetensors" -o "$models/base/$v.wasm" > /dev/null
  done
  ab=(--base-kiln "$base" --base-models "$models/base")
fi

uptime > "$out/uptime-before"
step "bench/peers.py: $rounds round(s), $iters calls per run" \
  "$KILN_PYTHON" -I bench/peers.py --kiln "$kiln" --models "$models" --out "$out/results.jsonl" \
  --rounds "$rounds" --iters "$iters" --warmup "$warmup" ${tract:+--tract "$tract"} "${ab[@]}"
uptime > "$out/uptime-after"

if [ -n "$base" ]; then
  {
    echo "A/B measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`bench/run.sh --ab\` (ROUNDS=$rounds ITERS=$iters WARMUP=$warmup) on $(nproc) cores;"
    echo "head $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- guest runtime || echo '+changes') against $base;"
    echo "load average $(sed 's/.*load average: //' "$out/uptime-before") before, $(sed 's/.*load average: //' "$out/uptime-after") after."
    echo
  } > "$out/table.md"
  step "bench/report.py --ab" "$KILN_PYTHON" -I bench/report.py "$out/results.jsonl" --ab > "$out/ab.md"
  cat "$out/ab.md" >> "$out/table.md"
  cat "$out/table.md"
  exit 0
fi

if [ "$smoke" = 1 ]; then
  step "bench/report.py (checks)" "$KILN_PYTHON" -I bench/report.py "$out/results.jsonl" --table "$out/table.md" > /dev/null
  exit 0
fi

cat > "$out/meta.json" <<JSON
{
  "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
  "command": "bench/run.sh (ROUNDS=$rounds ITERS=$iters WARMUP=$warmup${tract:+, with tract})",
  "cpu": "$(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)",
  "load_before": "$(sed 's/.*load average: //' "$out/uptime-before")",
  "load_after": "$(sed 's/.*load average: //' "$out/uptime-after")",
  "kiln": "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- guest runtime || echo '+changes')",
  "onnxruntime": "$("$KILN_PYTHON" -I -c 'import onnxruntime; print(onnxruntime.__version__)')",
  "onnxruntime_web": "$(node -p 'require("./bench/node_modules/onnxruntime-web/package.json").version')",
  "node": "$(node --version)",
  "tract": "$([ -n "$tract" ] && sed -n '/^name = "tract-onnx"$/{n;s/version = //;s/"//g;p}' bench/tract/Cargo.lock || echo 'not run')"
}
JSON
step "bench/report.py → docs/benchmarks.md, docs/bench.svg" \
  "$KILN_PYTHON" -I bench/report.py "$out/results.jsonl" --table "$out/table.md" --svg docs/bench.svg \
  --doc docs/benchmarks.md --meta "$out/meta.json"
