#!/bin/sh
# Lays out the image's root filesystem in DIR around the static `kiln`
# binary BIN: the binary, a passwd/group naming the non-root user (uid/gid
# 65532, distroless' "nonroot"), an empty /mnt/models (KServe's storage
# initializer and the Kubernetes manifests mount the models there) and /tmp
# (the compile cache, XDG_CACHE_HOME; an emptyDir under a read-only root
# filesystem). Shared by scripts/image.sh and the Dockerfile, so both images
# hold the same files. POSIX sh: it also runs in the Dockerfile's builder.
set -eu
if [ $# -ne 2 ]; then
  echo "usage: $0 DIR BIN" >&2
  exit 2
fi
dir=$1
bin=$2
mkdir -p "$dir/usr/local/bin" "$dir/etc" "$dir/mnt/models" "$dir/tmp"
install -m 0755 "$bin" "$dir/usr/local/bin/kiln"
printf 'root:x:0:0:root:/root:/sbin/nologin\nkiln:x:65532:65532:kiln:/nonexistent:/sbin/nologin\n' >"$dir/etc/passwd"
printf 'root:x:0:\nkiln:x:65532:\n' >"$dir/etc/group"
chmod 0644 "$dir/etc/passwd" "$dir/etc/group"
chmod 0755 "$dir/mnt" "$dir/mnt/models"
chmod 1777 "$dir/tmp"
