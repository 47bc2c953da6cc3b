#!/usr/bin/env bash
# Serving benchmark: requests/s and p50/p99 latency with wrk at 1, 16 and 64
# connections, one digits row per request (KServe v2 JSON), for
#   * kiln serve      (the built-in digits model, release build),
#   * kiln serve over TLS (kiln-tls: the same, with --tls-cert/--tls-key and
#                     a self-signed P-256 certificate, at TLS_CONNS
#                     connections; wrk speaks https through OpenSSL), and
#                     the TLS / plain ratio of requests/s at 64 connections,
#   * hello_axum      (bare axum answering a fixed JSON body: the ceiling),
#   * Seldon MLServer (scikit-learn MLP on the same digits, same protocol),
# all on this machine, one after the other, with the same wrk settings.
# (MLServer runs with parallel_workers = 0: its worker processes crash with
# the uvloop that pip installs today, and inference then runs in-process.)
# Then the per-request sandbox cost (criterion bench `serve`).
#
#   bench/serve.sh                 # everything (MLServer installs into .venv)
#   SKIP_MLSERVER=1 bench/serve.sh # kiln, kiln-tls and hello only
#   DURATION=10s bench/serve.sh
#   SERVERS="kiln kiln-tls" SKIP_CRITERION=1 bench/serve.sh  # TLS against plain
#   KILN=target/debug/kiln ...     # a smoke run with another binary (no figures)
#
# Installs what it needs: wrk (Debian); Python from requirements/test.txt, or
# requirements/bench.txt (mlserver, mlserver-sklearn) unless SKIP_MLSERVER is set.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

DURATION=${DURATION:-10s}
CONNS=${CONNS:-"1 16 64"}
TLS_CONNS=${TLS_CONNS:-64}
SERVERS=${SERVERS:-"kiln kiln-tls hello mlserver"}
[ -n "${SKIP_MLSERVER:-}" ] && SERVERS=${SERVERS/mlserver/}
runs() { [[ " $SERVERS " == *" $1 "* ]]; }
out=out/bench
mkdir -p "$out"
ensure_wasm_target
ensure_apt wrk protobuf-compiler openssl

if [ -n "${KILN:-}" ]; then
  kiln=$KILN
else
  step "cargo build --release (kiln)" cargo build --release --locked -p kiln --bin kiln
  kiln=target/release/kiln
fi
if runs hello; then
  step "cargo build --release (hello_axum)" cargo build --release --locked -p kiln --example hello_axum
fi
hello=target/release/examples/hello_axum

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# One digits row as a v2 request, and a wrk script that POSTs it.
if runs mlserver; then
  ensure_venv requirements/bench.txt
else
  ensure_venv requirements/test.txt
fi
"$KILN_PYTHON" -I - "$out" <<'PY'
import json, sys
row = [float((i * 7) % 17) for i in range(64)]
body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}]}
open(f"{sys.argv[1]}/body.json", "w").write(json.dumps(body))
open(f"{sys.argv[1]}/post.lua", "w").write(
    'wrk.method = "POST"\n'
    'wrk.headers["Content-Type"] = "application/json"\n'
    f'wrk.body = [[{json.dumps(body)}]]\n')
PY

# wait_line FILE PREFIX: waits for a line starting with PREFIX, prints it.
wait_line() {
  for _ in $(seq 1 600); do
    if grep -q "^$2" "$1" 2>/dev/null; then grep -m1 "^$2" "$1"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $2 in $1" >&2; return 1
}

results="$out/serve.tsv"
printf 'server\tconnections\treq_per_s\tp50\tp99\terrors\n' > "$results"

# bench NAME URL [CONNECTIONS]: wrk at each connection count, one line per run.
bench() {
  local name=$1 url=$2
  for c in ${3:-$CONNS}; do
    local threads=$(( c < 2 ? 1 : 2 ))
    # Warm-up, then the measured run.
    wrk -t"$threads" -c"$c" -d2s -s "$out/post.lua" "$url" > /dev/null
    wrk -t"$threads" -c"$c" -d"$DURATION" --latency -s "$out/post.lua" "$url" > "$out/wrk-$name-$c.txt"
    local rps p50 p99 errs
    rps=$(awk '/^Requests\/sec/ {print $2}' "$out/wrk-$name-$c.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$out/wrk-$name-$c.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$out/wrk-$name-$c.txt")
    errs=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$out/wrk-$name-$c.txt")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$c" "$rps" "$p50" "$p99" "${errs:-none}" | tee -a "$results"
  done
}

# kiln serve, the demo model; NAME SCHEME [serve flags…].
printf '[server]\ncache_dir = "%s/cache"\n' "$PWD/$out" > "$out/kiln.toml"
kiln_bench() {
  local name=$1 scheme=$2 conns=$3
  shift 3
  "$kiln" serve --http 127.0.0.1:0 --no-grpc --config "$out/kiln.toml" "$@" \
    > "$out/$name.out" 2> "$out/$name.err" &
  pids+=($!)
  local addr
  addr=$(wait_line "$out/$name.out" "kiln serve:" | sed 's/.*http=\([^ ]*\).*/\1/')
  step "wrk: kiln serve on $scheme://$addr" bench "$name" "$scheme://$addr/v2/models/digits/infer" "$conns"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
}
if runs kiln; then kiln_bench kiln http "$CONNS"; fi
if runs kiln-tls; then
  # A throwaway self-signed certificate for 127.0.0.1 (wrk does not check it).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$out/tls.key" -out "$out/tls.crt" 2> /dev/null
  kiln_bench kiln-tls https "$TLS_CONNS" --tls-cert "$out/tls.crt" --tls-key "$out/tls.key"
  # Requests/s over TLS against plain, at 64 connections (issue #17's goal: within 25 %).
  plain=$(awk -F'\t' '$1 == "kiln" && $2 == 64 {print $3}' "$results")
  tls=$(awk -F'\t' '$1 == "kiln-tls" && $2 == 64 {print $3}' "$results")
  if [ -n "$plain" ] && [ -n "$tls" ]; then
    awk -v p="$plain" -v t="$tls" 'BEGIN {printf "kiln serve at 64 connections: https %.0f req/s, http %.0f req/s: TLS costs %.1f %%\n", t, p, 100 * (1 - t / p)}' \
      | tee "$out/tls.txt"
  fi
fi

# The ceiling.
if runs hello; then
  "$hello" 127.0.0.1:0 > "$out/hello.out" &
  pids+=($!)
  addr=$(wait_line "$out/hello.out" "hello:" | sed 's/.*http=//')
  step "wrk: hello_axum on $addr" bench hello "http://$addr/v2/models/digits/infer"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
fi

# The peer: Seldon MLServer with its scikit-learn runtime.
if runs mlserver; then
  ms=$out/mlserver
  rm -rf "$ms"; mkdir -p "$ms/digits"
  "$KILN_PYTHON" -I - "$ms" <<'PY'
import json, sys, joblib
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
X, y = load_digits(return_X_y=True)
clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=300, random_state=1).fit(X, y)
joblib.dump(clf, f"{sys.argv[1]}/digits/model.joblib")
json.dump({"name": "digits", "implementation": "mlserver_sklearn.SKLearnModel",
           "parameters": {"uri": "./model.joblib"}},
          open(f"{sys.argv[1]}/digits/model-settings.json", "w"))
json.dump({"http_port": 18080, "grpc_port": 18081, "metrics_port": 18082,
           "parallel_workers": 0}, open(f"{sys.argv[1]}/settings.json", "w"))
PY
  (cd "$ms" && exec "$KILN_VENV/bin/mlserver" start . > ../mlserver.log 2>&1) &
  pids+=($!)
  ready=""
  for _ in $(seq 1 600); do
    curl -sf http://127.0.0.1:18080/v2/models/digits/ready > /dev/null && { ready=1; break; }
    sleep 0.2
  done
  [ -n "$ready" ] || { echo "MLServer did not become ready; see $out/mlserver.log" >&2; exit 1; }
  step "wrk: MLServer on 127.0.0.1:18080" bench mlserver "http://127.0.0.1:18080/v2/models/digits/infer"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
fi

if [ -z "${SKIP_CRITERION:-}" ]; then
  step "criterion: per-request sandbox cost" \
    cargo bench --locked -p kiln --bench serve -- --noplot 2>&1 | grep -E "^serve_request|time:" | tee "$out/instantiate.txt"
fi

echo
column -t -s $'\t' "$results"
