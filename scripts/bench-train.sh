#!/usr/bin/env bash
# Training speed: epochs per second of the digits MLP (64, 32, ReLU, mini-batch
# SGD, batch 32) in `kiln train` beside scikit-learn's MLPClassifier on the
# same data, layer sizes, batch size and epochs, in one script run.
# Usage: scripts/bench-train.sh [EPOCHS] [RUNS]   (defaults 100 and 5)
# Installs scikit-learn (.venv, requirements/test.txt) and builds kiln in
# release mode if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

epochs=${1:-100}
runs=${2:-5}
ensure_wasm_target
ensure_venv requirements/test.txt
step "cargo build --release" cargo build --release --locked -p kiln
kiln=target/release/kiln
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# kiln: the sum of the per-epoch `seconds` of --log-json (each epoch's
# training pass plus its validation pass over the 359 held-out rows;
# scikit-learn does no validation pass, so this favours it slightly).
kiln_rates=()
for seed in $(seq 1 "$runs"); do
  "$kiln" train --data builtin:digits --model mlp:64,32 --activation relu --optimizer sgd \
    --lr 0.05 --batch 32 --l2 1e-3 --epochs "$epochs" --val-split 0.2 --seed "$seed" \
    --log-json -o "$out/m.safetensors" >"$out/log-$seed.jsonl"
  kiln_rates+=("$("$KILN_PYTHON" -I -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
epochs = [l for l in lines if "epoch" in l]
rate = len(epochs) / sum(l["seconds"] for l in epochs)
print(rate, lines[-1]["test_accuracy"], sep=":")' "$out/log-$seed.jsonl")")
done

sk=$("$KILN_PYTHON" -I scripts/bench_train_sklearn.py "$epochs" "$runs")
"$KILN_PYTHON" -I - "$epochs" "$runs" "$sk" "${kiln_rates[@]}" <<'PY'
import json, statistics, sys
epochs, runs, sk = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
kiln = [float(r.split(":")[0]) for r in sys.argv[4:]]
kiln_acc = statistics.median(float(r.split(":")[1]) for r in sys.argv[4:])
k, s = statistics.median(kiln), sk["median_epochs_per_s"]
print(f"digits MLP 64-32 relu, sgd batch 32, {epochs} epochs, {runs} runs, 1438 training rows")
print(f"kiln train            median {k:8.1f} epochs/s  (runs: {', '.join(f'{r:.1f}' for r in kiln)})")
print(f"scikit-learn MLP       median {s:8.1f} epochs/s  (runs: {', '.join(f'{r:.1f}' for r in sk['epochs_per_s'])})")
print(f"median held-out accuracy (359 rows): kiln {kiln_acc:.4f}, scikit-learn {sk['median_test_accuracy']:.4f}")
print(f"ratio kiln / scikit-learn: {k / s:.2f}x")
PY
