#!/usr/bin/env bash
# Builds the OCI image of `kiln serve` offline: no base image is pulled.
#
# 1. a static binary: `cargo build --release --target x86_64-unknown-linux-musl`
#    (musl-gcc for wasmtime's few C helpers), symbols stripped;
# 2. its root filesystem (scripts/image-rootfs.sh, shared with the Dockerfile);
# 3. `buildah from scratch`, the files added, the config below, `buildah commit`.
#
# Writes target/image/oci (an OCI layout, tag kiln:VERSION; `umoci unpack`,
# `skopeo copy oci:target/image/oci:kiln:VERSION docker://…`) and
# target/image/kiln.oci.tar (`podman load -i`), and prints the image's size.
# The image runs as uid 65532, writes nothing outside /tmp (so it runs with a
# read-only root filesystem, /tmp an emptyDir) and by default serves
# /mnt/models on 8080 (REST) and 8081 (gRPC).
#
# The Dockerfile builds the same image where registries are reachable;
# tests/e2e/deploy.rs checks that the config lines below and the Dockerfile
# agree, and tests/deploy/run.sh that the built image has this config.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# The image config (kept in step with the Dockerfile by tests/e2e/deploy.rs).
ENTRYPOINT='["/usr/local/bin/kiln"]'
CMD='["serve", "/mnt/models", "--http", "0.0.0.0:8080", "--grpc", "0.0.0.0:8081", "--allow-unauthenticated"]'
PORTS="8080 8081"
USER_ID="65532:65532"
ENV_VARS="XDG_CACHE_HOME=/tmp"

target=x86_64-unknown-linux-musl
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
revision=$(git rev-parse HEAD)
created=$(git log -1 --format=%ct HEAD)
out=target/image

ensure_apt buildah skopeo musl-tools protobuf-compiler python3
ensure_rust_target "$target"
ensure_wasm_target

step "cargo build --release --target $target (static)" \
  env CARGO_PROFILE_RELEASE_STRIP=symbols CC_x86_64_unknown_linux_musl=musl-gcc \
  cargo build --release --locked -q --target "$target" -p kiln --bin kiln
bin=target/$target/release/kiln
if ! file "$bin" | grep -q 'statically linked\|static-pie linked'; then
  echo "error: $bin is not statically linked: $(file "$bin")" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out"
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
step "image-rootfs.sh" scripts/image-rootfs.sh "$rootfs" "$bin"

ctr=$(buildah from --quiet scratch)
trap 'rm -rf "$rootfs"; buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah add --quiet "$ctr" "$rootfs/" / >/dev/null
config=(--entrypoint "$ENTRYPOINT" --cmd "$CMD" --user "$USER_ID" --workingdir /)
for p in $PORTS; do config+=(--port "$p/tcp"); done
for e in $ENV_VARS; do config+=(--env "$e"); done
for l in \
  "org.opencontainers.image.title=kiln" \
  "org.opencontainers.image.description=kiln serve: sandboxed WebAssembly models over KServe v2 (REST and gRPC)" \
  "org.opencontainers.image.version=$version" \
  "org.opencontainers.image.revision=$revision" \
  "org.opencontainers.image.created=$(date -u -d "@$created" +%Y-%m-%dT%H:%M:%SZ)" \
  "org.opencontainers.image.licenses=Apache-2.0" \
  "org.opencontainers.image.source=https://example.invalid/kiln"; do
  config+=(--label "$l")
done
buildah config "${config[@]}" "$ctr"
# The commit's timestamp makes the image reproducible from the same commit.
step "buildah commit kiln:$version" \
  buildah commit --quiet --rm --format oci --timestamp "$created" "$ctr" "localhost/kiln:$version" >/dev/null
trap 'rm -rf "$rootfs"' EXIT
step "buildah push oci:$out/oci:kiln:$version" \
  buildah push --quiet "localhost/kiln:$version" "oci:$out/oci:kiln:$version"
skopeo copy --quiet "oci:$out/oci:kiln:$version" "oci-archive:$out/kiln.oci.tar:kiln:$version"

layers=$(skopeo inspect --raw "oci:$out/oci:kiln:$version" | python3 -c \
  'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
echo "kiln:$version  binary $(stat -c %s "$bin") B  rootfs $(du -sb "$rootfs" | cut -f1) B  compressed layer $layers B  archive $(stat -c %s "$out/kiln.oci.tar") B"
