#!/usr/bin/env bash
# Interleaved A/B(/C…) of kiln modules in Node through the raw ABI: runs
# bench/node_bench.mjs on each module in turn, ROUNDS times (a fresh node
# process per run), and prints each module's median over the runs' medians
# with every run, and its first scores (the same model must print the same
# bits). Use it to judge a kernel change: build the model with the old and
# the new `kiln build`, then
#
#   bench/node_ab.sh 5 1,28,28 old/cnn.wasm new/cnn.wasm     # SHAPE: 784 for the MLP
#
# OUTPUT=view passes `--output view` (no copy of the scores; for the wide
# outputs of bench/cut_models.py's cuts); ITERS sets the timed calls (3000).
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,12p' "$0"; exit 2; }
rounds=$1 shape=$2
shift 2
here=$(dirname "$0")
source "$here/../scripts/lib.sh"
ensure_venv "$KILN_ROOT/requirements/test.txt"
for _ in $(seq "$rounds"); do
  for m in "$@"; do
    node "$here/node_bench.mjs" --runtime kiln-abi --model "$m" --shape "$shape" \
      --iterations "${ITERS:-3000}" --warmup-ms 800 --output "${OUTPUT:-copy}" |
      "$KILN_PYTHON" -I -c "import json,sys; d=json.load(sys.stdin); print('$m', d['median_us'], d['scores'][:3])"
  done
done | "$KILN_PYTHON" -I -c "
import collections, statistics, sys
runs, scores = collections.defaultdict(list), {}
for line in sys.stdin:
    m, us, s = line.split(None, 2)
    runs[m].append(float(us)); scores[m] = s.strip()
for m, v in runs.items():
    print(f'{m}: median {statistics.median(v):.2f} µs over {len(v)} runs {sorted(round(x, 2) for x in v)}; scores {scores[m]}')
"
