#!/usr/bin/env bash
# The installers of scripts/lib.sh decide from what is really installed: each
# installs what is absent (also after it was removed behind its back) and
# does nothing when it is present. Run by scripts/test.sh; needs the network
# (PyPI, the npm registry, Debian's mirror) like the installers themselves.
#
#   tests/scripts/lib_test.sh            pip, npm and apt (apt only as root)
#   LIB_TEST_RUSTUP=1 tests/scripts/...  also rustup (downloads a target)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect installs|nothing LABEL COMMAND... — runs COMMAND and checks from its
# step lines ("==> …") whether it installed something.
expect() {
  local want=$1 label=$2
  shift 2
  local log="$tmp/log"
  "$@" >"$log" 2>&1 || { echo "FAIL $label: exited $?"; cat "$log"; failures=$((failures + 1)); return; }
  if grep -q '^==> ' "$log"; then got=installs; else got=nothing; fi
  if [ "$got" = "$want" ]; then
    echo "ok   $label: $got"
  else
    echo "FAIL $label: expected $want, got $got"
    sed 's/^/     | /' "$log"
    failures=$((failures + 1))
  fi
}

check() {
  local label=$1
  shift
  if "$@" >/dev/null 2>&1; then echo "ok   $label"; else echo "FAIL $label"; failures=$((failures + 1)); fi
}

# --- pip: a venv of the test's own, one small pinned package ---------------
KILN_VENV=$tmp/venv
KILN_PYTHON=$KILN_VENV/bin/python
req=$tmp/req.txt
echo "iniconfig==2.3.1" >"$req"
expect installs "ensure_venv, new venv" ensure_venv "$req"
check "iniconfig imports from the venv" "$KILN_PYTHON" -I -c "import iniconfig"
expect nothing "ensure_venv, everything there" ensure_venv "$req"
"$KILN_PYTHON" -m pip uninstall -q -y iniconfig
expect installs "ensure_venv, package removed by hand" ensure_venv "$req"
check "iniconfig is back" "$KILN_PYTHON" -I -c "import iniconfig"
echo "iniconfig==2.3.0" >"$req"
expect installs "ensure_venv, pin changed" ensure_venv "$req"
check "the new pin is installed" "$KILN_PYTHON" -I -c \
  "import importlib.metadata as m; assert m.version('iniconfig') == '2.3.0'"
echo "no-such-package-kiln-test==1.0" >"$req"
if ensure_venv "$req" >/dev/null 2>&1; then
  echo "FAIL ensure_venv, unsatisfiable pin: succeeded"
  failures=$((failures + 1))
else
  echo "ok   ensure_venv, unsatisfiable pin: fails"
fi

# --- npm: a one-package project ---------------------------------------------
cp -r "$here/npm-fixture" "$tmp/npm"
expect installs "ensure_npm, no node_modules" ensure_npm "$tmp/npm"
check "is-number installed" test -f "$tmp/npm/node_modules/is-number/package.json"
expect nothing "ensure_npm, everything there" ensure_npm "$tmp/npm"
rm -rf "$tmp/npm/node_modules/is-number"
expect installs "ensure_npm, package removed by hand" ensure_npm "$tmp/npm"
check "is-number is back" test -f "$tmp/npm/node_modules/is-number/package.json"
# What npm ci may leave out without failing: an optional package for this
# platform. A lock file of four (nothing fetched): the one present, an
# optional one for this platform (missing: reported), one for another OS and
# an optional one with no platform (both not asked for).
mkdir -p "$tmp/lock/node_modules/present"
echo '{}' >"$tmp/lock/node_modules/present/package.json"
node -e '
  const p = { "": {}, "node_modules/present": {},
    "node_modules/for-here": { optional: true, os: [process.platform], cpu: [process.arch] },
    "node_modules/for-aix": { optional: true, os: ["aix"] },
    "node_modules/needed-by-some": { optional: true } };
  require("fs").writeFileSync(process.argv[1], JSON.stringify({ lockfileVersion: 3, packages: p }));
' "$tmp/lock/package-lock.json"
check "npm_missing names this platform's missing optional package only" \
  test "$(npm_missing "$tmp/lock")" = "for-here"

# --- apt: Debian's `hello` ----------------------------------------------------
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  apt-get -o DPkg::Lock::Timeout=600 remove -y -qq hello >/dev/null 2>&1 || true
  expect installs "ensure_apt, package absent" ensure_apt hello
  check "hello installed" dpkg-query -W hello
  expect nothing "ensure_apt, package present" ensure_apt hello
  apt-get -o DPkg::Lock::Timeout=600 remove -y -qq hello >/dev/null 2>&1
else
  echo "skip ensure_apt: needs root and apt-get"
fi

# --- cargo install: a stand-in `cargo` that "installs" a tool printing its
# version, so the decision is tested without compiling anything ------------
bin=$tmp/bin
mkdir -p "$bin"
cat >"$bin/cargo" <<'STUB'
#!/usr/bin/env bash
# cargo install -q --locked CRATE --version V: writes $KILN_STUB_BIN printing V.
printf '#!/bin/sh\necho "tool %s"\n' "${@: -1}" >"$KILN_STUB_BIN"
chmod +x "$KILN_STUB_BIN"
STUB
chmod +x "$bin/cargo"
export KILN_STUB_BIN=$bin/kiln-stub-tool
PATH="$bin:$PATH" expect installs "ensure_cargo_install, tool absent" ensure_cargo_install kiln-stub-tool stub-crate 1.2.3
PATH="$bin:$PATH" check "the tool reports 1.2.3" test "$("$KILN_STUB_BIN" --version)" = "tool 1.2.3"
PATH="$bin:$PATH" expect nothing "ensure_cargo_install, version present" ensure_cargo_install kiln-stub-tool stub-crate 1.2.3
PATH="$bin:$PATH" expect installs "ensure_cargo_install, another version" ensure_cargo_install kiln-stub-tool stub-crate 1.2.4
PATH="$bin:$PATH" check "the tool reports 1.2.4" test "$("$KILN_STUB_BIN" --version)" = "tool 1.2.4"

# --- rustup (opt-in: downloads a target's standard library) -----------------
if [ "${LIB_TEST_RUSTUP:-0}" = 1 ]; then
  t=wasm32v1-none
  rustup target remove "$t" >/dev/null 2>&1 || true
  expect installs "ensure_rust_target, target absent" ensure_rust_target "$t"
  expect nothing "ensure_rust_target, target present" ensure_rust_target "$t"
  rustup target remove "$t" >/dev/null 2>&1
fi

if [ "$failures" -gt 0 ]; then
  echo "lib_test: $failures failure(s)"
  exit 1
fi
echo "lib_test: all installers decide right"
