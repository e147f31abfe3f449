# syntax=docker/dockerfile:1
# The throng server for Agones (docs/AGONES.md): built with the `agones` feature, run as a
# non-root user in a slim image that holds the binary and nothing else.
#
#   docker build -t throng:dev .
#
# Build stage: the Rust toolchain, and protoc (the Agones SDK crate compiles its protos).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and target directories are cache mounts (BuildKit): a rebuild after a source
# change recompiles throng, not its dependencies. The binary is copied out of the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --features agones --bin throng \
    && cp target/release/throng /usr/local/bin/throng

# Runtime stage: the same Debian release as the builder (same glibc), no toolchain, no shell
# tools beyond the base image's.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/throng --create-home throng
COPY --from=build /usr/local/bin/throng /usr/local/bin/throng
USER 10001:10001
# The player database (when not on PostgreSQL) and recordings go here by default.
WORKDIR /var/lib/throng
# Players (TCP), the web listener (page and WebSocket players), metrics and probes.
EXPOSE 7000/tcp 7080/tcp 9100/tcp
ENTRYPOINT ["/usr/local/bin/throng"]
# Every listener on all interfaces (the defaults are loopback only), reporting to Agones.
# A manifest's `args` replace these: deploy/agones/ passes them all explicitly.
CMD ["--listen", "0.0.0.0:7000", "--web", "0.0.0.0:7080", "--metrics", "0.0.0.0:9100", "--agones", "true"]
