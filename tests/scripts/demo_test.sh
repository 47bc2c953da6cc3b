#!/usr/bin/env bash
# The main job (scripts/demo.sh) ends serving what the README promises: the
# drawing page at /, the browser package it imports, the f32 and int8 modules
# it loads, and predictions over the v2 API. Runs demo.sh with $KILN (the
# debug binary in scripts/test.sh, instead of a release build) on free ports
# and a scratch output folder. The page itself is tested in Chromium by
# tests/browser.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${KILN:?set KILN to a kiln binary}"
tmp=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

KILN_HTTP=127.0.0.1:0 KILN_GRPC=127.0.0.1:0 KILN_DEMO_OUT=$tmp/demo \
  scripts/demo.sh >"$tmp/out" 2>"$tmp/err" &
pid=$!
addr=""
for _ in $(seq 1 600); do
  addr=$(sed -n 's/^kiln serve: http=\([^ ]*\).*/\1/p' "$tmp/out")
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/err"; echo "FAIL: demo.sh exited before serving"; exit 1; }
  sleep 0.5
done
[ -n "$addr" ] || { tail -20 "$tmp/err"; echo "FAIL: demo.sh did not start kiln serve in 300 s"; exit 1; }

failures=0
# expect URL PATTERN LABEL — GET URL (following redirects); its body must match PATTERN.
expect() {
  local body
  if body=$(curl -sfL "http://$addr$1") && grep -q -- "$2" <<<"$body"; then
    echo "ok   $3"
  else
    echo "FAIL $3 (GET $1)"
    failures=$((failures + 1))
  fi
}
expect / 'url=demo/' "/ forwards to the demo page"
expect /demo/ 'id="pad"' "the drawing page"
expect /demo/demo.js 'from "../pkg/kiln.js"' "the page's script"
expect /pkg/kiln.js 'Model' "the browser package"
expect /demo/test-digits.csv ',' "the page's test digits"
for m in digits digits-int8; do
  if curl -sf "http://$addr/models/$m/model.wasm" -o "$tmp/$m.wasm" &&
    [ "$(head -c 4 "$tmp/$m.wasm" | od -An -tx1 | tr -d ' ')" = 0061736d ]; then
    echo "ok   /models/$m/model.wasm is a wasm module"
  else
    echo "FAIL /models/$m/model.wasm"
    failures=$((failures + 1))
  fi
done
# The first held-out row, predicted by the server and by kiln predict --native.
row=$(awk -F, 'NR == 2 { for (i = 1; i < NF; i++) printf "%s%s", (i > 1 ? "," : ""), $i }' "$tmp/demo/test.csv")
curl -sf "http://$addr/v2/models/digits/infer" -H 'Content-Type: application/json' \
  -d "{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,64],\"data\":[$row]}]}" \
  >"$tmp/served.json" || true
head -n 2 "$tmp/demo/test.csv" | "$KILN" predict "$tmp/demo/digits.wasm" --native --input - >"$tmp/native.json"
if "${KILN_PYTHON:-python3}" -I - "$tmp/served.json" "$tmp/native.json" <<'PY'; then
import json, struct, sys
served = json.load(open(sys.argv[1]))["outputs"][0]["data"]
native = json.loads(open(sys.argv[2]).readline())["scores"]
f32 = lambda v: [struct.pack("<f", x) for x in v]
sys.exit(0 if len(served) == 10 and f32(served) == f32(native) else 1)
PY
  echo "ok   the server's scores equal kiln predict --native's, bit for bit"
else
  echo "FAIL the server's scores differ from kiln predict --native's"
  failures=$((failures + 1))
fi
[ "$failures" -eq 0 ] || { echo "demo_test: $failures failure(s)"; exit 1; }
echo "demo_test: the main job serves the page, the package, both modules and the v2 API"
