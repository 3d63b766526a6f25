# The agent image: sweep-agent linked against the libtorch of the PyTorch 2.11.0 wheel (CUDA
# libraries included; the node supplies only the NVIDIA driver), and python3 with that torch for
# `workload = "command"` trials. BASE is made by scripts/images.sh (`make images`), since no
# registry can be reached: a Debian bookworm root filesystem from debootstrap (python3 3.11, as the
# wheel's) with torch and what it imports, from the project's .venv, in python3's dist-packages,
# and the user `sweep` (10001) owning /scratch and /shared, brought in by one `docker import` (a
# COPY would write its gigabytes twice). The context the same script stages holds bin/sweep-agent.
# Few instructions: the classic builder commits the whole image after each one.
#   scripts/images.sh      # or: make images
ARG BASE=sweep-base:bookworm
FROM ${BASE}
COPY bin/sweep-agent /usr/local/bin/sweep-agent
# libtorch finds the CUDA libraries beside it in site-packages/nvidia through its own rpath.
ENV LD_LIBRARY_PATH=/usr/local/lib/python3.11/dist-packages/torch/lib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    SWEEP_WORK_DIR=/scratch \
    HOME=/home/sweep
USER 10001:10001
WORKDIR /scratch
# SIGTERM, Docker's stop signal, drains: trials checkpoint, leases go back, exit 0 (give it more
# than --stop-grace).
ENTRYPOINT ["sweep-agent"]
