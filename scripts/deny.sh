#!/usr/bin/env bash
# `cargo deny check` on kiln's dependency tree: licenses, bans, sources and
# advisories, with the policy in deny.toml. Advisories come from an offline
# snapshot of the RustSec database (CI reaches no git host): the one
# committed as tests/supply-chain/advisory-db.tar.gz (CC0; its SNAPSHOT.md
# names the commit and date), or the folder $KILN_ADVISORY_DB. It is laid
# out once as the git checkout cargo-deny reads, under target/advisory-dbs,
# and its date is printed with the result, since advisories published after
# it are not checked.
#
#   scripts/deny.sh [CHECK...]     default: every check
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

if [ -n "${KILN_ADVISORY_DB:-}" ]; then
  snapshot=$KILN_ADVISORY_DB
else
  snapshot=target/advisory-snapshot/advisory-db
  tarball=tests/supply-chain/advisory-db.tar.gz
  if [ ! -f "$snapshot/SNAPSHOT.md" ] || [ "$tarball" -nt "$snapshot/SNAPSHOT.md" ]; then
    rm -rf target/advisory-snapshot
    mkdir -p target/advisory-snapshot
    tar -xzf "$tarball" -C target/advisory-snapshot
    touch "$snapshot/SNAPSHOT.md"
  fi
fi
[ -f "$snapshot/SNAPSHOT.md" ] || {
  echo "error: no advisory database snapshot at $snapshot (SNAPSHOT.md missing)" >&2
  exit 1
}
ensure_cargo_deny

# The folder name cargo-deny derives from the default database URL
# (https://github.com/rustsec/advisory-db); deny.toml's db-path points here.
db=target/advisory-dbs/advisory-db-3157b0e258782691
stamp=$(sha256sum "$snapshot/SNAPSHOT.md" | cut -d' ' -f1)
if [ "$(cat "$db/.kiln-snapshot" 2>/dev/null)" != "$stamp" ] || ! git -C "$db" rev-parse -q --verify FETCH_HEAD >/dev/null; then
  rm -rf "$db"
  mkdir -p "$db"
  cp -r "$snapshot"/. "$db"/
  # cargo-deny reads the commit time of FETCH_HEAD as the database's age.
  git -C "$db" init -q
  git -C "$db" add -A
  git -C "$db" -c user.name=kiln -c user.email=kiln@localhost commit -qm "snapshot of $snapshot"
  git -C "$db" fetch -q . HEAD
  echo "$stamp" >"$db/.kiln-snapshot"
fi
when=$(tr '\n' ' ' <"$snapshot/SNAPSHOT.md" | grep -oE 'commit +[0-9a-f]{40} of [0-9-]+' | head -1 || true)

# --offline needs every crate of every platform in the local cache.
step "cargo fetch" cargo fetch --locked -q
rc=0
step "cargo deny check ${*:-(all)}" cargo deny --offline --locked check "$@" || rc=$?
echo "scripts/deny.sh: advisories from the RustSec snapshot ${when:-(date unknown: see $snapshot/SNAPSHOT.md)}; later advisories are not checked" >&2
exit "$rc"
