#!/usr/bin/env bash
# The image and KServe end-to-end tests (root; ~1-2 min after the image is
# built): builds the image (scripts/image.sh), unpacks it with umoci, then
# runs tests/deploy/test_image.py in a private network namespace (only its
# loopback exists, so ports 8080/8081 are free and nothing leaves it) and
# tests/deploy/test_manifests.py. Every kiln started there runs the image's
# own binary chrooted into its read-only root filesystem, as its user.
#
#   sudo tests/deploy/run.sh            # PYTHON=… picks the interpreter
#
# Needs: buildah skopeo umoci musl-tools (Debian), and Python with
# tritonclient[all] numpy pytest jsonschema pyyaml.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

if [ "$(id -u)" -ne 0 ]; then
  echo "error: tests/deploy/run.sh needs root (mount and network namespaces, chroot)" >&2
  exit 1
fi
ensure_apt buildah skopeo umoci musl-tools util-linux iproute2
python=${PYTHON:-python3}

scripts/image.sh
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
bundle=target/image/bundle
rm -rf "$bundle"
step "umoci unpack" umoci unpack --image "target/image/oci:kiln:$version" "$bundle"
skopeo inspect --config "oci:target/image/oci:kiln:$version" >target/image/config.json

step "pytest tests/deploy/test_manifests.py" "$python" -m pytest -q tests/deploy/test_manifests.py
step "pytest tests/deploy/test_image.py (private network namespace)" \
  env KILN_BUNDLE="$bundle" KILN_IMAGE_CONFIG=target/image/config.json \
  timeout 600 unshare --net -- sh -c 'ip link set lo up && exec "$0" -m pytest -q tests/deploy/test_image.py' "$python"
