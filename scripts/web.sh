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
  # What kiln.js imports for `Model.load` (fetching; the signature check of
  # `{ publicKey }`), and the check's fallback, imported only where WebCrypto
  # lacks Ed25519: ed25519.js over noble's Ed25519 and, where WebCrypto is
  # absent, SHA-2 (web/browser/package.json pins them; MIT, their LICENSE
  # files go along), as ./noble/ with their own relative imports.
  for f in web/browser/load.js web/trust/verify.js web/trust/ed25519.js; do
    step "terser $f" web/browser/node_modules/.bin/terser "$f" --module --compress --mangle \
      -o "$out/$(basename "$f")"
  done
  local noble=web/browser/node_modules/@noble
  rm -rf "$out/noble"
  mkdir -p "$out/noble/hashes"
  step "terser @noble/ed25519" web/browser/node_modules/.bin/terser "$noble/ed25519/index.js" \
    --module --compress --mangle -o "$out/noble/ed25519.js"
  cp "$noble/ed25519/LICENSE" "$out/noble/LICENSE"
  for f in sha2 _md _u64 utils; do
    step "terser @noble/hashes/$f.js" web/browser/node_modules/.bin/terser "$noble/hashes/$f.js" \
      --module --compress --mangle -o "$out/noble/hashes/$f.js"
  done
  cp "$noble/hashes/LICENSE" "$out/noble/hashes/LICENSE"
  local wasm js verify fallback sha2
  wasm=$(stat -c %s "$out/kiln_bg.wasm")
  js=$(cat "$out/kiln.js" "$out/load.js" | wc -c)
  # Fetched on demand, outside the page's budget: verify.js by the first
  # `Model.load(…, { publicKey })`; the fallback only without WebCrypto
  # Ed25519 (ed25519.js + noble/ed25519.js), and noble/hashes only without
  # WebCrypto at all.
  verify=$(stat -c %s "$out/verify.js")
  fallback=$(cat "$out/ed25519.js" "$out/noble/ed25519.js" | wc -c)
  sha2=$(cat "$out"/noble/hashes/*.js | wc -c)
  echo "$out: kiln_bg.wasm $wasm B + JS (kiln.js, load.js) $js B = $((wasm + js)) B" \
    "($(( (wasm + js) / 1024 )) KiB); on demand: verify.js $verify B (with publicKey: $((wasm + js + verify)) B)," \
    "Ed25519 fallback (ed25519.js, noble/ed25519.js) $fallback B, + noble/hashes $sha2 B without WebCrypto"
}
build web/pkg ""
build web/pkg-cnn conv
build web/pkg-rnn rnn
build web/pkg-graph dag
