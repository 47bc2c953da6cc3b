#!/usr/bin/env bash
# Runs the README's test command the way a new user would: in a fresh clone
# of HEAD in a temporary folder, with no target/, no .venv, no node_modules
# and no web/pkg, and reports how long it took. A green CI on a machine that
# earlier work left packages on proves nothing about a fresh one; run this
# before resolving anything that touches installation.
#
#   scripts/fresh-check.sh            # clone HEAD, run scripts/test.sh there
#   KEEP=1 scripts/fresh-check.sh     # keep the clone (its path is printed)
#   CMD=./scripts/demo.sh ...         # time another command instead
#
# What it cannot make fresh: packages apt already installed and rustup's
# targets (machine-wide), and cargo's download cache (~/.cargo/registry).
# The log is in the clone's fresh-check.log and out/fresh-check.log here.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cmd=${CMD:-./scripts/test.sh}
dir=$(mktemp -d /tmp/kiln-fresh.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$dir"' EXIT

head=$(git rev-parse --short HEAD)
git clone -q --no-hardlinks "$root" "$dir/kiln"
cd "$dir/kiln"
for d in target .venv node_modules web/pkg; do
  [ ! -e "$d" ] || { echo "fresh-check: the clone has $d" >&2; exit 1; }
done
# Nothing from the caller's environment that would point back at warm state.
unset KILN KILN_VENV KILN_PYTHON CARGO_TARGET_DIR VIRTUAL_ENV PYTHONPATH PYTHONHOME

echo "fresh-check: $cmd in a fresh clone of $head at $dir/kiln ($(nproc) cores)" >&2
start=$(date +%s)
set +e
$cmd 2>&1 | tee fresh-check.log
rc=${PIPESTATUS[0]}
set -e
secs=$(($(date +%s) - start))
mkdir -p "$root/out"
cp fresh-check.log "$root/out/fresh-check.log"
summary="fresh-check: $cmd on $head: exit $rc after $((secs / 60)) min $((secs % 60)) s"
{
  echo "$summary"
  echo "slowest steps:"
  sed -n 's/^<== *//p' fresh-check.log | sort -rn | head -8 | sed 's/^/  /'
} | tee -a "$root/out/fresh-check.log" >&2
exit "$rc"
