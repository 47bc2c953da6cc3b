#!/usr/bin/env bash
# The main job, on a fresh machine: train the digits classifier, compile it
# into one self-contained .wasm module, and predict held-out rows with it.
# Installs what it needs (the wasm32 target), idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target
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
