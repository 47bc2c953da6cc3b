#!/usr/bin/env bash
# An int8 model written by `kiln quantize` opens with safetensors.numpy
# (I8/I32/F32 tensors + the graph JSON). Run by scripts/test.sh after
# `cargo test` built target/debug/kiln (or $KILN).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_venv requirements/test.txt
kiln=${KILN:-target/debug/kiln}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$kiln" train --data builtin:digits --epochs 5 --seed 1 -o "$dir/f32.safetensors" >/dev/null
"$kiln" quantize "$dir/f32.safetensors" --calibrate builtin:digits -o "$dir/int8.safetensors" >/dev/null
"$KILN_PYTHON" -I tests/python/int8_safetensors.py "$dir/int8.safetensors"
