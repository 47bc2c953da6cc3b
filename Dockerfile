# syntax=docker/dockerfile:1
# The kiln serving image, for machines that reach a registry: a builder stage
# compiles a static (musl) `kiln`, the final stage is FROM scratch.
#
# It is NOT built on kiln's own build machines, which reach no registry:
# there scripts/image.sh builds the same image offline with buildah, from the
# same root filesystem (scripts/image-rootfs.sh). tests/e2e/deploy.rs checks
# that this file's ENTRYPOINT, CMD, EXPOSE, USER and ENV match image.sh's.
#
#   docker build -t kiln .
#   docker run --read-only --tmpfs /tmp -p 8080:8080 -p 8081:8081 \
#     -v "$PWD/models:/mnt/models:ro" kiln

FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl wasm32-unknown-unknown
WORKDIR /src
COPY . .
RUN CARGO_PROFILE_RELEASE_STRIP=symbols CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --release --locked --target x86_64-unknown-linux-musl -p kiln --bin kiln \
 && scripts/image-rootfs.sh /rootfs target/x86_64-unknown-linux-musl/release/kiln

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENV XDG_CACHE_HOME=/tmp
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/kiln"]
CMD ["serve", "/mnt/models", "--http", "0.0.0.0:8080", "--grpc", "0.0.0.0:8081", "--allow-unauthenticated"]
LABEL org.opencontainers.image.title="kiln" \
      org.opencontainers.image.description="kiln serve: sandboxed WebAssembly models over KServe v2 (REST and gRPC)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/kiln"
