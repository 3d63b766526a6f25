# syntax=docker/dockerfile:1
# The coordinator image, with the `sweep` CLI for the submit Job: no libtorch, about 100 MB.
# Build from the repository root:
#   docker build -f deploy/docker/coordinator.Dockerfile -t sweep-coordinator:0.1.0 .

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# Neither binary needs PyTorch: the coordinator never links it, and the CLI without its default
# `embedded-agent` feature has no `sweep local`. Cache mounts keep the registry and target folder
# between builds; the binaries are copied out of the cached target folder.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sweep-coordinator \
 && cargo build --release --locked -p sweep-cli --no-default-features \
 && mkdir -p /out \
 && cp target/release/sweep-coordinator target/release/sweep /out/

FROM debian:bookworm-slim
# ca-certificates: the CLI trusts the system's roots for an https:// coordinator.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sweep \
 && useradd --system --uid 10001 --gid sweep --home-dir /var/lib/sweep --no-create-home --shell /usr/sbin/nologin sweep \
 && install -d -o sweep -g sweep /var/lib/sweep /shared
COPY --from=build /out/sweep-coordinator /out/sweep /usr/local/bin/
# The coordinator's defaults (127.0.0.1, ./.sweep) suit one machine; in a container it listens on
# every interface and keeps its store where the StatefulSet mounts its volume.
ENV SWEEP_LISTEN=0.0.0.0:50051 \
    SWEEP_STATE=/var/lib/sweep \
    SWEEP_RESULTS=/shared/results
USER 10001:10001
WORKDIR /var/lib/sweep
EXPOSE 50051
ENTRYPOINT ["sweep-coordinator"]
