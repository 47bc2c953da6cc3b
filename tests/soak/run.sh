#!/usr/bin/env bash
# The soak and fault test of `kiln serve` (tests/soak/soak.py says what it
# runs and what it must show), loopback only.
#
#   tests/soak/run.sh                 60 s (CI)
#   tests/soak/run.sh --seconds 600   the 10-minute run of docs/security.md
#
# Drives $KILN (default target/debug/kiln, which `cargo test` builds).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
ensure_venv requirements/test.txt
KILN=${KILN:-target/debug/kiln}
[ -x "$KILN" ] || step "cargo build (kiln)" cargo build --locked -p kiln --bin kiln
exec "$KILN_PYTHON" -I tests/soak/soak.py --kiln "$KILN" "$@"
