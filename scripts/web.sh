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
ensure_apt binaryen wabt

out=web/pkg
target=target/web
step "cargo rustc kiln-guest --features browser (wasm32, +simd128)" \
  env CARGO_ENCODED_RUSTFLAGS="-Ctarget-feature=+simd128" \
  cargo rustc --locked -q -p kiln-guest --lib --crate-type cdylib \
  --target wasm32-unknown-unknown --profile web --features browser --target-dir "$target"
# wasm-opt runs before wasm-bindgen: binaryen 108 (Debian) mangles the
# externref table wasm-bindgen adds. wasm-strip then drops the name section.
built="$target/wasm32-unknown-unknown/web/kiln_guest.wasm"
step "wasm-opt -Oz" wasm-opt -Oz --converge --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$built" -o "$target/kiln_opt.wasm"
step "wasm-bindgen --target web" wasm-bindgen --target web --out-dir "$out" --out-name kiln \
  "$target/kiln_opt.wasm"
step "wasm-strip" wasm-strip "$out/kiln_bg.wasm"
# The API docs live in kiln.d.ts; drop their JSDoc copies from kiln.js, then
# line comments and indentation (the generated glue has no multi-line
# strings, so only whitespace and comments go; every statement stays on its
# own line). Saves ~5 KB of the 150 KB budget without a JS minifier.
perl -0pi -e 's{\n\s*/\*\*.*?\*/}{}gs' "$out/kiln.js"
perl -ni -e 's/^\s+//; print unless m{^//} && !m{^//# }' "$out/kiln.js"
wasm=$(stat -c %s "$out/kiln_bg.wasm")
js=$(stat -c %s "$out/kiln.js")
echo "web/pkg: kiln_bg.wasm $wasm B + kiln.js $js B = $((wasm + js)) B ($(( (wasm + js) / 1024 )) KiB)"
