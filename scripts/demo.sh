#!/usr/bin/env bash
# The main job, on a fresh machine: train the digits classifier, compile it
# into one self-contained .wasm module, predict held-out rows with it, then
# serve it over the KServe v2 protocol (foreground; Ctrl-C stops it).
# Installs what it needs (the wasm32 target, protoc), idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target
ensure_apt protobuf-compiler
step "cargo build --release" cargo build --release --locked -p kiln
kiln=target/release/kiln
out=out/demo
mkdir -p "$out"

step "kiln train" "$kiln" train --data builtin:digits --model mlp:64,32 --seed 1 \
  -o "$out/digits.safetensors" --test-out "$out/test.csv"
step "kiln build" "$kiln" build "$out/digits.safetensors" -o "$out/digits.wasm"
step "kiln inspect" "$kiln" inspect "$out/digits.wasm"
step "kiln predict (first 5 held-out rows, in wasmtime)" bash -c \
  "head -n 6 '$out/test.csv' | '$kiln' predict '$out/digits.wasm' --input -"

# Serve it: a Triton-style repository holding the module and its model file.
mkdir -p "$out/repo/digits/1"
cp "$out/digits.wasm" "$out/repo/digits/1/model.wasm"
cp "$out/digits.safetensors" "$out/repo/digits/1/model.safetensors"
row=$(awk -F, 'NR == 2 { for (i = 1; i < NF; i++) printf "%s%s", (i > 1 ? "," : ""), $i }' "$out/test.csv")
cat >&2 <<EOT

==> kiln serve (Ctrl-C to stop). From another terminal:
  curl -s localhost:8000/v2/models/digits
  curl -s localhost:8000/v2/models/digits/infer -H 'Content-Type: application/json' \\
    -d '{"inputs":[{"name":"input","datatype":"FP32","shape":[1,64],"data":[$row]}]}'
  open http://127.0.0.1:8000/ for the page; docs/serving.md for the rest.
EOT
exec "$kiln" serve "$out/repo" --http "${KILN_HTTP:-127.0.0.1:8000}" --grpc "${KILN_GRPC:-127.0.0.1:8001}"
