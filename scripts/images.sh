#!/usr/bin/env bash
# Builds the two images of deploy/docker with no registry to pull from (`make images`):
#  - sweep-coordinator: FROM scratch, the coordinator and the `sweep` CLI (without the embedded
#    agent, so without libtorch) and the few system libraries `ldd` says they load;
#  - sweep-agent: FROM sweep-base, the agent on a base made here: a Debian bookworm root filesystem
#    from debootstrap (python3 for `command` trials) with the libtorch of the project's PyTorch
#    2.11.0 wheel (CUDA libraries included; the node supplies the driver) where the image's python3
#    imports it as `torch`, brought in with one `docker import`.
# Each Dockerfile builds from a context folder staged here under target/images/ (hard links where
# the files live on the same disk), not from the repository: the context holds exactly what the
# image gets. Quick when nothing changed: the base is made once per package list and torch wheel,
# debootstrap's output is kept in the user's cache, and Docker's layer cache keeps what it has seen.
#
#   scripts/images.sh                     # both, from release binaries
#   SWEEP_IMAGE_PROFILE=dev scripts/images.sh   # from the debug binaries (what `make test` built)
#   scripts/images.sh base                # only the base (it needs no binaries; `make test` makes
#                                         # it while the workspace compiles)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/apt.sh

PROFILE=${SWEEP_IMAGE_PROFILE:-release}
TAG=${SWEEP_IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)}
SITE=.venv/lib/python3.11/site-packages
STAGE=target/images
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sweep/images
# What `import torch` needs from the wheel's closure (triton, the GPU kernel compiler, is left out:
# eager libtorch does not load it).
TORCH_PACKAGES=(torch functorch torchgen nvidia numpy numpy.libs filelock fsspec jinja2 markupsafe mpmath networkx sympy
  typing_extensions.py isympy.py)
BASE_PACKAGES=(python3 ca-certificates procps)
# Where the image's python3 finds them, and the agent's loader finds libtorch.
DIST_PACKAGES=usr/local/lib/python3.11/dist-packages

log() { echo "images: $*"; }
die() { echo "images: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not on PATH; install Docker Engine (TOOLCHAIN.md)"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (docker info); start it and run this again"
[[ -d $SITE/torch ]] || die "$SITE/torch is missing; run scripts/setup.sh first"
mkdir -p "$STAGE" "$CACHE"

# ---------------------------------------------------------------------------------- the base
# debootstrap's output, named after the Debian packages it holds.
debian=bookworm-$(echo "${BASE_PACKAGES[*]}" | sha256sum | cut -c1-12)
rootfs_tar=$CACHE/$debian.tar.gz

make_base() {
  if docker image inspect "$BASE" >/dev/null 2>&1; then
    return
  fi
  [[ $(id -u) == 0 ]] || die "making the base image needs root (debootstrap, and files owned by root); run as root once, or sudo $0"
  if [[ ! -s $rootfs_tar ]]; then
    command -v debootstrap >/dev/null || { log "installing debootstrap"; apt_get update -qq && apt_get install -y -qq debootstrap; }
    local fresh
    fresh=$(mktemp -d /var/tmp/sweep-debootstrap.XXXXXX)
    log "debootstrap bookworm with ${BASE_PACKAGES[*]} (a few minutes, once; kept in $CACHE)"
    debootstrap --variant=minbase --include="$(IFS=,; echo "${BASE_PACKAGES[*]}")" bookworm "$fresh" \
      http://deb.debian.org/debian >"$STAGE/debootstrap.log" 2>&1 \
      || { rm -rf "$fresh"; die "debootstrap failed; see $STAGE/debootstrap.log"; }
    rm -rf "$fresh"/var/cache/apt/archives/*.deb "$fresh"/var/lib/apt/lists/* "$fresh"/usr/share/doc/* \
      "$fresh"/usr/share/man/* "$fresh"/usr/share/locale/*
    tar -C "$fresh" --numeric-owner -c . | gzip -1 >"$rootfs_tar.part"
    mv "$rootfs_tar.part" "$rootfs_tar"
    rm -rf "$fresh"
  fi
  local root=$STAGE/base
  rm -rf "$root"
  mkdir -p "$root"
  tar -C "$root" --numeric-owner -xzf "$rootfs_tar"
  # The user the agent runs as, with the folders it writes (one step here rather than a RUN, which
  # costs a commit of the whole image on every build).
  chroot "$root" groupadd --system --gid 10001 sweep
  chroot "$root" useradd --system --uid 10001 --gid sweep --create-home --home-dir /home/sweep \
    --shell /usr/sbin/nologin sweep 2>/dev/null
  install -d -o 10001 -g 10001 "$root/scratch" "$root/shared"
  mkdir -p "$root/$DIST_PACKAGES"
  for p in "${TORCH_PACKAGES[@]}"; do
    cp -al "$SITE/$p" "$root/$DIST_PACKAGES/" 2>/dev/null || cp -a "$SITE/$p" "$root/$DIST_PACKAGES/"
  done
  log "importing $BASE (libtorch and the CUDA libraries: GBs, a minute or two once)"
  tar -C "$root" --numeric-owner -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$root"
}

# The base, named after what it holds: that, the files of the torch and CUDA wheels, and what
# make_base does (it also adds the user `sweep`, 10001, with its /scratch and /shared).
BASE=sweep-base:$debian-torch-$( (declare -f make_base; echo "${TORCH_PACKAGES[*]}"
  cat "$SITE"/{torch,nvidia_*}-*.dist-info/RECORD) | sha256sum | cut -c1-12)

# One maker at a time: `make test` starts one in the background while the workspace compiles, and
# the full build below waits for it rather than making the same base twice.
exec 9>"$CACHE/base.lock"
flock -n 9 || { log "waiting for the base that another run is making"; flock 9; }
make_base
flock -u 9
# The name the Dockerfile's ARG BASE defaults to, so that a plain `docker build` of a staged
# context finds it too.
docker tag "$BASE" sweep-base:bookworm
log "base: $BASE ($(docker image inspect -f '{{.Size}}' "$BASE" | numfmt --to=iec))"
[[ ${1:-all} == base ]] && exit 0

# ---------------------------------------------------------------------------------- binaries
profile_dir=$([[ $PROFILE == dev ]] && echo debug || echo "$PROFILE")
# The whole workspace, as `make build` and `make test` build it: the same features, so nothing is
# built twice (a build of two packages alone unifies fewer features and rebuilds their dependencies).
log "building sweep-coordinator and sweep-agent ($PROFILE)"
cargo build --profile "$PROFILE" --workspace --bins
# The CLI without `embedded-agent` links no libtorch. It is built in the same target folder (most
# of its dependencies are already built there), which puts it where the full `sweep` was: that one
# is kept aside and put back, also when this script stops half-way.
bin=target/$profile_dir
cli=$STAGE/sweep-remote-cli
full_cli=$STAGE/sweep-full-cli
rm -f "$full_cli"
if [[ -e $bin/sweep ]]; then
  ln -f "$bin/sweep" "$full_cli"
  trap 'mv -f "$full_cli" "$bin/sweep"' EXIT
fi
log "building the sweep CLI without the embedded agent ($PROFILE)"
cargo build --profile "$PROFILE" -p sweep-cli --no-default-features --bins
cp "$bin/sweep" "$cli"
if [[ -e $full_cli ]]; then
  mv -f "$full_cli" "$bin/sweep"
  trap - EXIT
fi

# ---------------------------------------------------------------------------------- contexts
rm -rf "$STAGE/coordinator" "$STAGE/agent"
mkdir -p "$STAGE/coordinator/bin" "$STAGE/coordinator/rootfs/etc/ssl/certs" "$STAGE/coordinator/empty" \
  "$STAGE/agent/bin"

# The coordinator's root filesystem: its binaries, the libraries ldd names (at the paths the loader
# looks in), a user and group, and the CA roots the CLI trusts for https://.
# Binaries without their debug information (symbols stay, for backtraces): a tenth of the size.
strip --strip-debug -o "$STAGE/coordinator/bin/sweep-coordinator" "$bin/sweep-coordinator"
strip --strip-debug -o "$STAGE/coordinator/bin/sweep" "$cli"
for lib in $(ldd "$bin/sweep-coordinator" "$cli" | awk '/=>/ { print $3 } /^\t\// { print $1 }' | sort -u); do
  [[ -f $lib ]] || die "ldd names $lib, which is not a file"
  mkdir -p "$STAGE/coordinator/rootfs$(dirname "$lib")"
  cp -L "$lib" "$STAGE/coordinator/rootfs$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$STAGE/coordinator/rootfs/etc/ssl/certs/"
install -d -m 1777 "$STAGE/coordinator/rootfs/tmp"
printf 'root:x:0:0:root:/:/sbin/nologin\nsweep:x:10001:10001:sweep:/var/lib/sweep:/sbin/nologin\n' \
  >"$STAGE/coordinator/rootfs/etc/passwd"
printf 'root:x:0:\nsweep:x:10001:\n' >"$STAGE/coordinator/rootfs/etc/group"
cp deploy/docker/coordinator.Dockerfile "$STAGE/coordinator/Dockerfile"

# The agent's: its binary (the base brings torch).
strip --strip-debug -o "$STAGE/agent/bin/sweep-agent" "$bin/sweep-agent"
cp deploy/docker/agent.Dockerfile "$STAGE/agent/Dockerfile"

# ---------------------------------------------------------------------------------- images
log "building sweep-coordinator:$TAG"
docker build -q -t "sweep-coordinator:$TAG" "$STAGE/coordinator" >/dev/null
log "building sweep-agent:$TAG"
docker build -q --build-arg "BASE=$BASE" -t "sweep-agent:$TAG" "$STAGE/agent" >/dev/null
docker tag "sweep-coordinator:$TAG" sweep-coordinator:latest
docker tag "sweep-agent:$TAG" sweep-agent:latest

# ---------------------------------------------------------------------------------- checks
docker run --rm --entrypoint sweep-coordinator "sweep-coordinator:$TAG" --version >/dev/null \
  || die "sweep-coordinator does not start in its image"
docker run --rm --entrypoint sweep "sweep-coordinator:$TAG" --version >/dev/null \
  || die "the sweep CLI does not start in the coordinator image"
docker run --rm "sweep-agent:$TAG" --version >/dev/null || die "sweep-agent does not start in its image"
docker run --rm --entrypoint python3 "sweep-agent:$TAG" -c 'import torch; assert torch.__version__.startswith("2.11.0")' \
  || die "python3 cannot import torch 2.11.0 in the agent image"
for image in "sweep-coordinator:$TAG" "sweep-agent:$TAG"; do
  user=$(docker image inspect -f '{{.Config.User}}' "$image")
  [[ -n $user && $user != 0* && $user != root* ]] || die "$image runs as root"
  log "$image: $(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec), user $user"
done
