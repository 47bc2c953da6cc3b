#!/usr/bin/env bash
# The image and KServe end-to-end tests (root; ~1-2 min after the image is
# built): builds the image (scripts/image.sh), unpacks it with umoci, then
# runs tests/deploy/test_image.py in a private network namespace (only its
# loopback exists, so ports 8080/8081 are free and nothing leaves it) and
# tests/deploy/test_manifests.py. Every kiln started there runs the image's
# own binary chrooted into its read-only root filesystem, as its user.
#
#   sudo tests/deploy/run.sh
#
# Installs what it needs: buildah skopeo umoci musl-tools (Debian), the
# project's .venv with requirements/deploy.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

if [ "$(id -u)" -ne 0 ]; then
  echo "error: tests/deploy/run.sh needs root (mount and network namespaces, chroot)" >&2
  exit 1
fi
ensure_apt buildah skopeo umoci musl-tools util-linux iproute2
ensure_venv requirements/deploy.txt
python=$KILN_PYTHON

scripts/image.sh
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
bundle=target/image/bundle
rm -rf "$bundle"
step "umoci unpack" umoci unpack --image "target/image/oci:kiln:$version" "$bundle"
skopeo inspect --config "oci:target/image/oci:kiln:$version" >target/image/config.json

step "pytest tests/deploy/test_manifests.py" "$python" -I -m pytest -q tests/deploy/test_manifests.py
step "pytest tests/deploy/test_image.py (private network namespace)" \
  env KILN_BUNDLE="$bundle" KILN_IMAGE_CONFIG=target/image/config.json \
  timeout 600 unshare --net -- sh -c 'ip link set lo up && exec "$0" -I -m pytest -q tests/deploy/test_image.py' "$python"
