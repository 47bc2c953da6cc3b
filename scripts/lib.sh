# Shared helpers for scripts/*.sh: idempotent installers and step logging.
#
# Each ensure_* returns non-zero when it fails, also where the caller's
# `set -e` is off (inside `if`, `||`). Each decides from what is really installed (dpkg's status, rustup's
# list, the tool's version, pip's and npm's view of the installed packages),
# never from an installer's dry-run chatter, and installs only what is
# missing. tests/scripts/lib_test.sh removes what they install and checks that
# they put it back, and that a second run installs nothing.

KILN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The project's Python: a virtual environment made from requirements/*.txt,
# without the system's site-packages. Every Python test and bench script runs
# with "$KILN_PYTHON" (scripts call ensure_venv first).
KILN_VENV=${KILN_VENV:-$KILN_ROOT/.venv}
export KILN_PYTHON="$KILN_VENV/bin/python"

# step LABEL COMMAND... — runs COMMAND between a "==> LABEL" line and a
# "<== N s  LABEL" line (scripts/fresh-check.sh ranks the steps by time).
step() {
  local label=$1 t0=$SECONDS rc=0 failed=""
  printf '\n==> %s\n' "$label" >&2
  shift
  "$@" || rc=$?
  [ "$rc" = 0 ] || failed=" (exit $rc)"
  printf '<== %4d s  %s%s\n' $((SECONDS - t0)) "$label" "$failed" >&2
  return "$rc"
}

# ensure_rust_target TARGET — adds a rustup target unless it is installed.
ensure_rust_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx "$1"; then
    step "rustup target add $1" rustup target add "$1"
  fi
}

ensure_wasm_target() {
  ensure_rust_target wasm32-unknown-unknown
}

# ensure_apt PACKAGE... — installs missing Debian packages.
ensure_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    step "apt-get install ${missing[*]}" bash -c \
      "$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq ${missing[*]} >/dev/null"
  fi
}

# ensure_venv REQUIREMENTS.txt... — makes $KILN_VENV if it is missing and
# installs each pinned requirements file into it, unless the venv's stamp
# holds the file's hash *and* scripts/venv_check.py finds every pin installed
# inside the venv (a package removed by hand is noticed). Fails if pip leaves
# a pin unsatisfied.
ensure_venv() {
  if [ ! -x "$KILN_PYTHON" ]; then
    step "python3 -m venv ${KILN_VENV#"$KILN_ROOT"/}" python3 -m venv "$KILN_VENV" || return 1
  fi
  local req hash stamp
  for req in "$@"; do
    hash=$(python3 -I "$KILN_ROOT/scripts/venv_check.py" --hash "$req") || return 1
    stamp="$KILN_VENV/.kiln-$(basename "$req" .txt).sha256"
    if [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ] &&
      "$KILN_PYTHON" -I "$KILN_ROOT/scripts/venv_check.py" "$req" >/dev/null 2>&1; then
      continue
    fi
    rm -f "$stamp"
    step "pip install -r ${req#"$KILN_ROOT"/}" "$KILN_PYTHON" -I -m pip install -q \
      --disable-pip-version-check --no-input -r "$req" || return 1
    "$KILN_PYTHON" -I "$KILN_ROOT/scripts/venv_check.py" "$req" || return 1
    echo "$hash" >"$stamp"
  done
}

# ensure_npm DIR — installs DIR's package.json dependencies from its lock file
# (npm ci) unless node_modules holds a stamp of that lock file and every
# locked package this platform needs is there. npm ci leaves out, with only a
# warning, an optional package it fails to fetch (workerd's platform binary,
# for one): a second npm ci is tried, then it fails naming what is missing.
ensure_npm() {
  local dir=$1 hash stamp missing
  hash=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1) || return 1
  stamp="$dir/node_modules/.kiln-lock.sha256"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ] && [ -z "$(npm_missing "$dir")" ]; then
    return 0
  fi
  step "npm ci in $dir" npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error || return 1
  missing=$(npm_missing "$dir")
  if [ -n "$missing" ]; then
    step "npm ci in $dir (again: $missing missing)" npm ci --prefix "$dir" --no-audit --no-fund --loglevel=warn || return 1
    missing=$(npm_missing "$dir")
    if [ -n "$missing" ]; then
      echo "error: npm ci in $dir did not install $missing (see npm's warnings above)" >&2
      return 1
    fi
  fi
  echo "$hash" >"$stamp"
}

# npm_missing DIR — the packages DIR's lock file holds for this platform (os,
# cpu, libc) that DIR/node_modules lacks, space-separated; nothing if none.
npm_missing() {
  node -e '
    const fs = require("fs"), path = require("path");
    const dir = process.argv[1];
    const lock = JSON.parse(fs.readFileSync(path.join(dir, "package-lock.json"), "utf8"));
    const libc = process.report?.getReport().header.glibcVersionRuntime ? "glibc" : "musl";
    const fits = (list, v) => !list || list.includes(v) ||
      (list.every((x) => x.startsWith("!")) && !list.includes("!" + v));
    // An optional package without a platform is one only some platform
    // packages need (npm installs it with them): not asked for here.
    const missing = Object.entries(lock.packages ?? {}).filter(([at, p]) =>
      at !== "" && (!p.optional || p.os || p.cpu || p.libc) &&
      fits(p.os, process.platform) && fits(p.cpu, process.arch) && fits(p.libc, libc) &&
      !fs.existsSync(path.join(dir, at, "package.json")));
    console.log(missing.map(([at]) => at.replace(/^.*node_modules\//, "")).join(" "));
  ' "$1"
}

# ensure_wasm_bindgen — installs the wasm-bindgen CLI at exactly the version
# of the wasm-bindgen crate in Cargo.lock (the two must match).
ensure_wasm_bindgen() {
  local want
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$KILN_ROOT/Cargo.lock")
  if [ -z "$want" ]; then
    echo "error: no wasm-bindgen crate in Cargo.lock" >&2
    return 1
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')" != "$want" ]; then
    step "cargo install wasm-bindgen-cli --version $want" \
      cargo install -q wasm-bindgen-cli --version "$want"
  fi
}

# ensure_cargo_install BIN CRATE VERSION — `cargo install --locked CRATE
# --version VERSION` unless `BIN --version` reports exactly VERSION (its last
# word), so a missing tool and another version are both replaced.
ensure_cargo_install() {
  local bin=$1 crate=$2 want=$3
  if [ "$("$bin" --version 2>/dev/null | awk '{ print $NF; exit }')" != "$want" ]; then
    step "cargo install $crate --version $want" cargo install -q --locked "$crate" --version "$want"
  fi
}

# ensure_wasmsign2 — the wasmsign2 CLI, the reference implementation of the
# WebAssembly signature format `kiln sign` writes (tests/e2e/trust.rs checks
# that each verifies the other's signatures).
ensure_wasmsign2() {
  ensure_cargo_install wasmsign2 wasmsign2-cli 0.2.8
}

# ensure_cargo_deny — cargo-deny, for scripts/deny.sh.
ensure_cargo_deny() {
  ensure_cargo_install cargo-deny cargo-deny 0.20.2
}
