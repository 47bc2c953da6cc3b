#!/usr/bin/env bash
# Builds the browser package four times: web/pkg (dense models), web/pkg-cnn
# (with the CNN family), web/pkg-rnn (with the recurrent family) and
# web/pkg-graph (graph models: the CNN family plus `dag`). Each is the crate `kiln-browser` (browser/) over
# `kiln-guest`, compiled for wasm32 with SIMD128 (the same kernels as every
# model module; profile `web` in Cargo.toml: kernels at opt-level 3, glue at
# "z"), then wasm-opt, wasm-bindgen (`--target web`: an ES module, no bundler)
# and terser. Installs what it needs, idempotently. Prints the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_wasm_target
ensure_wasm_bindgen
ensure_apt binaryen wabt
ensure_npm web/browser

# Four builds of the same package: web/pkg for dense models (the demo's,
# within 150 KB), web/pkg-cnn with the CNN family (guest feature `conv`),
# web/pkg-rnn with the recurrent one (`rnn`) and web/pkg-graph with graph
# models (`dag`, over `conv`: MobileNet-class modules), as the model modules
# carry only the kernel families their model needs. The CNN and recurrent
# families in one build would be ~194 KB (docs/web.md).
target=target/web
build() {
  local out=$1 features=$2
  step "cargo rustc kiln-browser → $out (wasm32, +simd128${features:+, $features})" \
    env CARGO_ENCODED_RUSTFLAGS="-Ctarget-feature=+simd128" \
    cargo rustc --locked -q -p kiln-browser --lib --crate-type cdylib ${features:+--features "$features"} \
    --target wasm32-unknown-unknown --profile web --target-dir "$target"
  # wasm-opt runs before wasm-bindgen: binaryen 108 (Debian) mangles the
  # externref table wasm-bindgen adds. wasm-strip then drops the name section.
  local built="$target/wasm32-unknown-unknown/web/kiln_browser.wasm"
  step "wasm-opt -Oz" wasm-opt -Oz --converge --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$built" -o "$target/kiln_opt.wasm"
  step "wasm-bindgen --target web" wasm-bindgen --target web --out-dir "$out" --out-name kiln \
    "$target/kiln_opt.wasm"
  step "wasm-strip" wasm-strip "$out/kiln_bg.wasm"
  # The glue is minified by terser (web/browser/package.json; kiln.d.ts keeps the
  # API docs): 16.4 → 9.5 KB. Class names stay (`Model` is still `Model` in a
  # console), and so does the comment that points TypeScript at kiln.d.ts.
  step "terser kiln.js" web/browser/node_modules/.bin/terser "$out/kiln.js" --module --compress --mangle \
    --keep-classnames --comments '/@ts-self-types/' -o "$out/kiln.min.js"
  mv "$out/kiln.min.js" "$out/kiln.js"
  local wasm js
  wasm=$(stat -c %s "$out/kiln_bg.wasm")
  js=$(stat -c %s "$out/kiln.js")
  echo "$out: kiln_bg.wasm $wasm B + kiln.js $js B = $((wasm + js)) B ($(( (wasm + js) / 1024 )) KiB)"
}
build web/pkg ""
build web/pkg-cnn conv
build web/pkg-rnn rnn
build web/pkg-graph dag
