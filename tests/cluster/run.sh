#!/usr/bin/env bash
# The three-replica cluster test (tests/cluster/cluster.py): root, about
# 60 s, loopback and a private 10.77.0.0/16 subnet of network namespaces
# only. KILN names the binary (default: the image's static binary, built by
# scripts/image.sh, else `cargo build --release`'s). Figures go to stdout
# and target/cluster/figures.json.
#
#   sudo tests/cluster/run.sh
#
# Needs: haproxy wrk iproute2 util-linux (Debian), Python 3.11+ (stdlib).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

if [ "$(id -u)" -ne 0 ]; then
  echo "error: tests/cluster/run.sh needs root (network namespaces)" >&2
  exit 1
fi
ensure_apt haproxy wrk iproute2 util-linux
if [ -z "${KILN:-}" ]; then
  KILN=target/x86_64-unknown-linux-musl/release/kiln
  if [ ! -x "$KILN" ]; then
    step "cargo build --release" cargo build --release --locked -q -p kiln --bin kiln
    KILN=target/release/kiln
  fi
fi
mkdir -p target/cluster
step "tests/cluster/cluster.py ($KILN)" \
  env KILN="$KILN" timeout 300 python3 tests/cluster/cluster.py target/cluster/figures.json
