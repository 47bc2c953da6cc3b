#!/usr/bin/env bash
# The main job, on a fresh machine: train the digits classifier, compile it
# into one self-contained .wasm module, predict held-out rows with it, shrink
# it to int8, build the browser package, then serve both modules over the
# KServe v2 protocol with the drawing demo page at / (foreground; Ctrl-C
# stops it). Installs what it needs (the wasm32 target, protoc, and for the
# page wasm-bindgen-cli, binaryen, wabt, terser), idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target
ensure_apt protobuf-compiler
# KILN=path uses a kiln binary already built (tests/scripts/demo_test.sh
# passes the debug one); KILN_HTTP / KILN_GRPC pick the addresses.
if [ -z "${KILN:-}" ]; then
  step "cargo build --release" cargo build --release --locked -p kiln
fi
kiln=${KILN:-target/release/kiln}
out=${KILN_DEMO_OUT:-out/demo}
mkdir -p "$out"

step "kiln train" "$kiln" train --data builtin:digits --model mlp:64,32 --seed 1 \
  -o "$out/digits.safetensors" --test-out "$out/test.csv"
step "kiln build" "$kiln" build "$out/digits.safetensors" -o "$out/digits.wasm"
step "kiln inspect" "$kiln" inspect "$out/digits.wasm"
step "kiln predict (first 5 held-out rows, in wasmtime)" bash -c \
  "head -n 6 '$out/test.csv' | '$kiln' predict '$out/digits.wasm' --input -"
step "kiln quantize (int8, calibrated on the digits)" "$kiln" quantize "$out/digits.safetensors" \
  --calibrate builtin:digits -o "$out/digits-int8.safetensors"
step "kiln build (int8)" "$kiln" build "$out/digits-int8.safetensors" -o "$out/digits-int8.wasm"

# The page's browser package (web/pkg).
./scripts/web.sh

# Serve them: a Triton-style repository holding each module and its model file.
for m in digits digits-int8; do
  mkdir -p "$out/repo/$m/1"
  cp "$out/$m.wasm" "$out/repo/$m/1/model.wasm"
  cp "$out/$m.safetensors" "$out/repo/$m/1/model.safetensors"
done
row=$(awk -F, 'NR == 2 { for (i = 1; i < NF; i++) printf "%s%s", (i > 1 ? "," : ""), $i }' "$out/test.csv")
cat >&2 <<EOT

==> kiln serve (Ctrl-C to stop). From another terminal:
  curl -s localhost:8000/v2/models/digits
  curl -s localhost:8000/v2/models/digits/infer -H 'Content-Type: application/json' \\
    -d '{"inputs":[{"name":"input","datatype":"FP32","shape":[1,64],"data":[$row]}]}'

  Open http://${KILN_HTTP:-127.0.0.1:8000}/ and draw a digit: the page predicts it
  with the browser package and asks the server, bit for bit the same answer.
  docs/web.md and docs/serving.md for the rest.
EOT
exec "$kiln" serve "$out/repo" --static web/ --http "${KILN_HTTP:-127.0.0.1:8000}" \
  --grpc "${KILN_GRPC:-127.0.0.1:8001}"
