# Shared helpers for scripts/*.sh: idempotent installers and step logging.
# Each ensure_* does nothing when what it installs is already there.

step() {
  printf '\n==> %s\n' "$1" >&2
  shift
  "$@"
}

ensure_wasm_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    step "rustup target add wasm32-unknown-unknown" rustup target add wasm32-unknown-unknown
  fi
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

# ensure_pip REQUIREMENT... — installs requirements pip does not already satisfy.
ensure_pip() {
  if ! python3 -m pip install --dry-run --no-deps -q "$@" 2>/dev/null | grep -q "Would install"; then
    return 0
  fi
  step "pip install $*" python3 -m pip install -q --disable-pip-version-check "$@"
}

# ensure_npm DIR — installs DIR's package.json dependencies (from its lock file).
ensure_npm() {
  local dir=$1
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    step "npm ci in $dir" npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
}

# ensure_wasm_bindgen — installs the wasm-bindgen CLI at exactly the version
# of the wasm-bindgen crate in Cargo.lock (the two must match).
ensure_wasm_bindgen() {
  local want
  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
  if [ -z "$want" ]; then
    echo "error: no wasm-bindgen crate in Cargo.lock" >&2
    return 1
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')" != "$want" ]; then
    step "cargo install wasm-bindgen-cli --version $want" \
      cargo install -q wasm-bindgen-cli --version "$want"
  fi
}
