# The agent image: sweep-agent linked against the libtorch of the PyTorch 2.11.0 wheel (CUDA
# libraries included; the node supplies only the NVIDIA driver), and python3 with that torch for
# `workload = "command"` trials. It is built from a context that scripts/images.sh stages
# (`make images`): bin/sweep-agent and site-packages/ (torch and what it imports, from the project's
# .venv). BASE is a Debian bookworm root filesystem the same script makes with debootstrap and
# `docker import`, since no registry can be reached; its python3 is 3.11, as the wheel's.
#   scripts/images.sh      # or: make images
ARG BASE=sweep-base:bookworm
FROM ${BASE}
RUN groupadd --system --gid 10001 sweep \
 && useradd --system --uid 10001 --gid sweep --create-home --home-dir /home/sweep --shell /usr/sbin/nologin sweep \
 && install -d -o sweep -g sweep /scratch /shared
COPY site-packages/ /usr/local/lib/python3.11/dist-packages/
COPY bin/sweep-agent /usr/local/bin/sweep-agent
# libtorch finds the CUDA libraries beside it in site-packages/nvidia through its own rpath.
ENV LD_LIBRARY_PATH=/usr/local/lib/python3.11/dist-packages/torch/lib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    SWEEP_WORK_DIR=/scratch \
    HOME=/home/sweep
USER 10001:10001
WORKDIR /scratch
# SIGTERM drains: trials checkpoint, leases go back, exit 0 (give it more than --stop-grace).
STOPSIGNAL SIGTERM
ENTRYPOINT ["sweep-agent"]
