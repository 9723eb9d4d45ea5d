# syntax=docker/dockerfile:1
#
# The Phalanx scheduler image: `docker build -t phalanx:dev .`
#
# Two stages: a full Rust toolchain builds the release binary (protox compiles
# the .proto in pure Rust, so no protoc is needed), and the runtime stage is
# distroless: glibc and CA certificates only, no shell, no package manager,
# running as the numeric non-root user 65532 so that `runAsNonRoot` can be
# verified by the kubelet without an /etc/passwd lookup.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target dir between builds (BuildKit);
# the binary is copied out in the same step because the target dir is a mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin phalanx \
 && install -D -m 0755 target/release/phalanx /out/phalanx

# cc-debian12 matches the builder's bookworm glibc and carries libgcc_s.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="phalanx" \
      org.opencontainers.image.description="Whole-gang Kubernetes scheduler on a Fluxion-style resource graph" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/phalanx /usr/local/bin/phalanx
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/phalanx"]
CMD ["run"]
