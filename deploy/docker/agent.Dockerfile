# syntax=docker/dockerfile:1
# The agent image: sweep-agent linked against the libtorch of the PyTorch 2.11.0 wheel (CUDA
# libraries included; the node supplies only the NVIDIA driver), and python3 with that torch for
# `workload = "command"` trials. Build from the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t sweep-agent:0.1.0 .

# Both stages are Debian bookworm, whose python3 is 3.11: the venv built here runs there as is.
FROM rust:1.95-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
# tch 0.24 pairs with PyTorch 2.11.0 and checks the version when it builds; nvidia-cuda-crt has the
# CUDA headers the workloads' libtorch shim compiles against.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir torch==2.11.0 "nvidia-cuda-crt==13.0.*"
# The workspace's .cargo/config.toml points LIBTORCH at .venv/lib/python3.11/...; its [env] does
# not use `force`, so these variables override it. The agent's build.rs writes an rpath to this
# folder, which is the same path in the runtime stage.
ENV LIBTORCH=/opt/venv/lib/python3.11/site-packages/torch \
    LIBTORCH_CXX11_ABI=1 \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/torch/lib
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p sweep-agent \
 && mkdir -p /out \
 && cp target/release/sweep-agent /out/

FROM debian:bookworm-slim
# python3 runs the venv (and users' training scripts); procps gives `ps` for debugging a pod.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates procps \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sweep \
 && useradd --system --uid 10001 --gid sweep --create-home --home-dir /home/sweep --shell /usr/sbin/nologin sweep \
 && install -d -o sweep -g sweep /scratch /shared
COPY --from=build /opt/venv /opt/venv
COPY --from=build /out/sweep-agent /usr/local/bin/sweep-agent
ENV PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/torch/lib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    SWEEP_WORK_DIR=/scratch \
    HOME=/home/sweep
USER 10001:10001
WORKDIR /scratch
# SIGTERM drains: trials checkpoint, leases go back, exit 0 (give it more than --stop-grace).
STOPSIGNAL SIGTERM
ENTRYPOINT ["sweep-agent"]
