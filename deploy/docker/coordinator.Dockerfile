# The coordinator image, with the `sweep` CLI for the submit Job: no libtorch and no distribution.
# It is built from a context that scripts/images.sh stages (`make images`): bin/ with the two
# binaries, and under rootfs/ the system libraries `ldd` says they load, /etc/passwd with the user
# `sweep` and the CA roots the CLI trusts for https://. No image is pulled, so it builds where no registry can be
# reached:
#   scripts/images.sh      # or: make images
FROM scratch
COPY rootfs/ /
COPY bin/sweep-coordinator bin/sweep /usr/local/bin/
# The store and the results volume belong to the non-root user (rootfs/ brings /tmp, mode 1777,
# for SQLite's temporary files). The classic builder suffices: no BuildKit option is used.
COPY --chown=10001:10001 empty/ /var/lib/sweep/
COPY --chown=10001:10001 empty/ /shared/
# The coordinator's defaults (127.0.0.1, ./.sweep) suit one machine; in a container it listens on
# every interface and keeps its store where the StatefulSet or compose mounts its volume.
ENV SWEEP_LISTEN=0.0.0.0:50051 \
    SWEEP_STATE=/var/lib/sweep \
    SWEEP_RESULTS=/shared/results
USER 10001:10001
WORKDIR /var/lib/sweep
EXPOSE 50051
ENTRYPOINT ["sweep-coordinator"]
