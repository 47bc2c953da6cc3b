#!/usr/bin/env bash
# A/B of `kiln serve` against another kiln binary (e.g. an older commit's
# release build): the same wrk run as bench/serve.sh (one digits row per
# request, KServe v2 JSON, the built-in digits model) against both servers,
# interleaved round by round so that the shared machine's drifts fall on both
# alike. Prints each round and the medians, and the ratio B/A of requests/s.
#
#   bench/serve-ab.sh BASE_KILN              # 64 connections, 5 rounds of 10 s
#   ROUNDS=7 CONNS="16 64" DURATION=5s bench/serve-ab.sh /work/wt-base/target/release/kiln
#
# KILN names this tree's binary (default: `cargo build --release`'s).
# Writes out/bench/serve-ab/ (wrk outputs, ab.tsv).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

base=$(realpath "${1:?usage: bench/serve-ab.sh BASE_KILN}")
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
out=out/bench/serve-ab
rm -rf "$out"
mkdir -p "$out"
ensure_apt wrk
if [ -z "${KILN:-}" ]; then
  step "cargo build --release (kiln)" cargo build --release --locked -q -p kiln --bin kiln
  KILN=target/release/kiln
fi

row=$(seq -s, 0 63 | awk -F, '{for (i = 1; i <= NF; i++) printf "%s%d", (i > 1 ? "," : ""), ($i * 7) % 17}')
cat > "$out/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [$row]}]}]]
EOF

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# start NAME BINARY: serves the built-in digits model on a free port (in
# this shell, so the trap above stops it); address NAME prints its address.
start() {
  mkdir -p "$out/$1"
  printf '[server]\ncache_dir = "%s"\n' "$PWD/$out/$1/cache" > "$out/$1/kiln.toml"
  "$2" serve --http 127.0.0.1:0 --no-grpc --config "$out/$1/kiln.toml" > "$out/$1/out" 2> "$out/$1/err" &
  pids+=($!)
}
address() {
  for _ in $(seq 1 600); do
    if grep -q "^kiln serve:" "$out/$1/out"; then
      sed -n 's/^kiln serve:.*http=\([^ ]*\).*/\1/p' "$out/$1/out" | head -1
      return 0
    fi
    sleep 0.1
  done
  echo "error: kiln serve ($1) did not start; see $out/$1/err" >&2
  return 1
}
start a "$KILN"
start b "$base"
a=$(address a)
b=$(address b)
echo "A (this tree): $KILN on $a; B (base): $base on $b" >&2

printf 'round\tconnections\tserver\treq_per_s\tp50\tp99\n' > "$out/ab.tsv"
for c in $CONNS; do
  threads=$(( c < 2 ? 1 : 2 ))
  for name in a b; do
    addr=$a; [ "$name" = b ] && addr=$b
    wrk -t"$threads" -c"$c" -d2s -s "$out/post.lua" "http://$addr/v2/models/digits/infer" > /dev/null
  done
  for r in $(seq 1 "$ROUNDS"); do
    # Alternate which server goes first.
    order="a b"; [ $((r % 2)) = 0 ] && order="b a"
    for name in $order; do
      addr=$a; [ "$name" = b ] && addr=$b
      f="$out/wrk-$name-$c-$r.txt"
      wrk -t"$threads" -c"$c" -d"$DURATION" --latency -s "$out/post.lua" \
        "http://$addr/v2/models/digits/infer" > "$f"
      if grep -q 'Non-2xx\|Socket errors' "$f"; then
        echo "error: failed requests in $f" >&2
        grep 'Non-2xx\|Socket errors' "$f" >&2
        exit 1
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$c" "$name" \
        "$(awk '/^Requests\/sec/ {print $2}' "$f")" \
        "$(awk '$1 == "50%" {print $2}' "$f")" \
        "$(awk '$1 == "99%" {print $2}' "$f")" | tee -a "$out/ab.tsv"
    done
  done
done

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# Medians per server (the standard library only: no .venv needed).
python3 -I - "$out/ab.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
for c in sorted({r["connections"] for r in rows}, key=int):
    med = {s: statistics.median(float(r["req_per_s"]) for r in rows
                                if r["connections"] == c and r["server"] == s) for s in "ab"}
    print(f"{c} connections: median req/s A (this tree) {med['a']:.0f}, "
          f"B (base) {med['b']:.0f}, A/B {med['a'] / med['b']:.3f}")
PY
