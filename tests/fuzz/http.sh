#!/usr/bin/env bash
# HTTP fuzzing of a real `kiln serve`, as Triton's L0_http_fuzz does:
# schemathesis generates requests from docs/openapi.yaml (every route,
# valid and invalid bodies, paths and headers) and fails on any 5xx, on a
# status or a response body the document does not allow, or on the server
# dying. The server holds the digits model as `digits` (f32) and
# `digits_int8`, with an admin key, so the repository routes are exercised
# too (schemathesis sends the key with every request).
#
#   tests/fuzz/http.sh [--max-examples N]     (default 30 per operation)
#
# Drives $KILN (default target/debug/kiln); Python from the project's .venv
# (requirements/fuzz.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
examples=30
[ "${1:-}" = --max-examples ] && examples=$2
ensure_venv requirements/fuzz.txt
KILN=${KILN:-target/debug/kiln}
[ -x "$KILN" ] || step "cargo build (kiln)" cargo build --locked -p kiln --bin kiln

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$KILN" build runtime/data/digits.safetensors -o "$work/digits.wasm" >/dev/null
mkdir -p "$work/repo/digits/1" "$work/repo/digits_int8/1"
cp "$work/digits.wasm" "$work/repo/digits/1/model.wasm"
cp runtime/data/digits.safetensors "$work/repo/digits/1/model.safetensors"
"$KILN" quantize runtime/data/digits.safetensors --dynamic -o "$work/int8.safetensors" >/dev/null
"$KILN" build "$work/int8.safetensors" -o "$work/repo/digits_int8/1/model.wasm" >/dev/null
key=fuzz-admin-key-0123456789abcdef
cat >"$work/kiln.toml" <<TOML
[server]
cache_dir = "$work/cache"
[[keys]]
key = "$key"
models = ["*"]
admin = true
TOML
"$KILN" serve "$work/repo" --config "$work/kiln.toml" --http 127.0.0.1:0 --no-grpc \
  >"$work/addr" 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do
  grep -q http= "$work/addr" 2>/dev/null && break
  sleep 0.1
done
url=http://$(sed -n 's/.*http=\([^ ]*\).*/\1/p' "$work/addr")
[ "$url" != http:// ] || { cat "$work/serve.log" >&2; exit 1; }

rc=0
step "schemathesis: docs/openapi.yaml against kiln serve ($examples examples per operation)" \
  "$KILN_VENV/bin/schemathesis" --config-file tests/fuzz/schemathesis.toml run docs/openapi.yaml --url "$url" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
  --max-examples "$examples" --seed 1 --no-color || rc=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "error: kiln serve died under schemathesis" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
exit "$rc"
