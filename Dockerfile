# prl-proxy in a container (with prl-sim, for the demo). Build from the repository root:
#
#   docker build -t prl-proxy .
#   docker run -p 8080:8080 -v "$PWD/my.toml:/etc/prl-proxy/prl-proxy.toml:ro" prl-proxy
#
# The image runs as the non-root user prl-proxy (uid 10001) with its configuration in
# /etc/prl-proxy/prl-proxy.toml (default: packaging/docker/prl-proxy.toml, which listens on
# 0.0.0.0:8080 with plain ws for a TLS-terminating front end and allows no target yet).
# The health check asks /readyz over plain HTTP on port 8080: with [tls] or another port in
# your configuration, override HEALTHCHECK.
#
# Build arguments:
# - BUILDER_IMAGE, RUNTIME_IMAGE: Debian 12 (bookworm) images; the binaries link the runtime's
#   glibc and OpenSSL 3 (libssl3), which the service's anonymous-DH TLS needs.
# - BINARIES=build (default) compiles in the build stage; BINARIES=prebuilt takes the binaries
#   from the release tarball DIST made by `cargo xtask dist` (how `cargo xtask container`
#   tests the image on a machine without a container registry).
ARG BUILDER_IMAGE=docker.io/library/rust:1-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim
ARG BINARIES=build

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
# One package per command, as `cargo xtask dist` builds them.
RUN cargo build --locked --release -p prl-proxy \
 && cargo build --locked --release -p prl-sim \
 && mkdir /out \
 && cp target/release/prl-proxy target/release/prl-sim /out/

FROM ${RUNTIME_IMAGE} AS prebuilt
ARG DIST=dist/prl-web-0.1.0-x86_64-unknown-linux-gnu.tar.gz
# ADD unpacks a local tarball.
ADD ${DIST} /dist/
RUN mv /dist/*/bin /out

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin prl-proxy
COPY --from=binaries /out/prl-proxy /out/prl-sim /usr/local/bin/
COPY packaging/docker/prl-proxy.toml /etc/prl-proxy/prl-proxy.toml
COPY LICENSE-MIT LICENSE-APACHE proxy/CHANGELOG.md /usr/share/doc/prl-proxy/
USER prl-proxy
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]
ENTRYPOINT ["prl-proxy"]
CMD ["--config", "/etc/prl-proxy/prl-proxy.toml"]
