#!/usr/bin/env bash
# Builds the browser package into web/pkg: the guest crate with feature
# `browser`, compiled for wasm32 with SIMD128 (the same kernels as every
# model module), then wasm-bindgen (`--target web`: an ES module, no bundler)
# and wasm-opt. Installs what it needs, idempotently. Prints the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target
ensure_wasm_bindgen
ensure_apt binaryen

out=web/pkg
target=target/web
step "cargo rustc kiln-guest --features browser (wasm32, +simd128)" \
  env CARGO_ENCODED_RUSTFLAGS="-Ctarget-feature=+simd128" \
  cargo rustc --locked -q -p kiln-guest --lib --crate-type cdylib \
  --target wasm32-unknown-unknown --profile web --features browser --target-dir "$target"
step "wasm-bindgen --target web" wasm-bindgen --target web --out-dir "$out" --out-name kiln \
  "$target/wasm32-unknown-unknown/web/kiln_guest.wasm"
step "wasm-opt -Os" wasm-opt -Os --strip-debug --strip-producers --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$out/kiln_bg.wasm" -o "$out/kiln_bg.wasm"
wasm=$(stat -c %s "$out/kiln_bg.wasm")
js=$(stat -c %s "$out/kiln.js")
echo "web/pkg: kiln_bg.wasm $wasm B + kiln.js $js B = $((wasm + js)) B ($(( (wasm + js) / 1024 )) KiB)"
