# The two commands a new machine needs: `make demo` and `make test`. Both install what is missing
# (scripts/setup.sh; for `make test` as root also scripts/slurm-up.sh) and are quick when nothing is.

CARGO ?= cargo
BIN := target/debug

.PHONY: demo test setup build images bench bench-dashboard bench-xmc bench-dispatch bench-search gpu-bundle clean

demo: build
	$(BIN)/sweep local sweeps/studies/quickstart.toml
	@echo "make demo: to look at it in the dashboard, run $(BIN)/sweep ui and open http://127.0.0.1:8765/ui/#/sweep/quickstart"

# As root (CI), a local Slurm comes up first (scripts/slurm-up.sh, idempotent) and the Slurm test
# becomes required; elsewhere that test runs only if `sbatch` is on PATH. As root with a Docker
# daemon (or with SWEEP_REQUIRE_DOCKER=1, as CI sets), the images are built from the debug binaries
# and the container tests become required; elsewhere they are skipped with the reason. As root,
# headless Chromium and its chromedriver are installed if missing (scripts/setup.sh --browser) and
# the browser tests become required; elsewhere they run only if both are on PATH. The
# training tests also run a second time on libtorch's portable kernels with one thread: their
# tolerances must hold on any CPU, not only on this one's instruction set and core count. Both runs
# of the training tests go beside the rest of the workspace's tests (scripts/test-all.sh).
test: setup
	@if [ "$$(id -u)" = 0 ] && { [ -n "$$SWEEP_REQUIRE_DOCKER" ] || docker info >/dev/null 2>&1; }; then \
	  mkdir -p target; echo "make test: making the agent image's base meanwhile (target/images-base.log)"; \
	  scripts/images.sh base >target/images-base.log 2>&1 & \
	fi
	$(CARGO) build --workspace --bins
	@if [ "$$(id -u)" = 0 ]; then \
	  scripts/slurm-up.sh || exit 1; export SWEEP_REQUIRE_SLURM=1; \
	  scripts/setup.sh --browser || exit 1; export SWEEP_REQUIRE_BROWSER=1; \
	  if [ -n "$$SWEEP_REQUIRE_DOCKER" ] || docker info >/dev/null 2>&1; then \
	    SWEEP_IMAGE_PROFILE=dev scripts/images.sh || exit 1; export SWEEP_REQUIRE_DOCKER=1; \
	  else \
	    echo "make test: no Docker daemon answers, so the container tests are skipped"; \
	  fi; \
	else \
	  echo "make test: not root, so no local Slurm is set up (scripts/slurm-up.sh needs root), no images are built and no browser is installed; the Slurm, container and browser tests run only where they can"; \
	fi; \
	scripts/test-all.sh

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --workspace --bins

# The coordinator and agent images of deploy/docker, built with nothing pulled (README, "Containers
# on one host"); deploy/docker/compose.yaml starts a cluster from them.
images: setup
	scripts/images.sh

# Coordinator throughput (BENCHMARKS.md).
bench: setup
	$(CARGO) run --release -p sweep-bench -- all

# The dashboard at 100,000 trials and 5 million metric rows: every call the sweep page makes, timed
# against its budget (BENCHMARKS.md). Builds only the coordinator, so no PyTorch is linked.
bench-dashboard: setup
	$(CARGO) run --release -p sweep-coordinator --example dashboard_bench

# The label-tree study against omikuji and PECOS on a EURLex-4K-shaped synthetic set (BENCHMARKS.md);
# the references go into their own venv (bench/xmc/compare.py says why).
bench-xmc: setup
	$(CARGO) build --release -p sweep-cli -p sweep-xmc --bins --examples
	python3 bench/xmc/compare.py --shape eurlex

# Dispatch overhead of 200 short `command` trials, 8 at a time, beside Optuna and Ray Tune
# (BENCHMARKS.md); the peers go into their own venv (bench/dispatch/compare.py says where).
bench-dispatch: setup
	$(CARGO) build --release -p sweep-cli -p sweep-coordinator -p sweep-agent --bins
	python3 bench/dispatch/compare.py

# Search quality of sweep's random search beside Ray Tune's ASHA and Optuna's TPE + Hyperband on the
# LCBench surrogate (BENCHMARKS.md); the surrogate and the peers go into their own venv
# (bench/search/compare.py says where).
bench-search: setup
	$(CARGO) build --release -p sweep-cli --bins
	python3 bench/search/compare.py

# A stripped release `sweep` in .device/ for a GPU node without a Rust toolchain, which links the
# node's own libtorch (bench/gpu/on-node.sh runs every GPU check with it).
gpu-bundle: setup
	$(CARGO) build --release -p sweep-cli
	mkdir -p .device && strip -o .device/sweep target/release/sweep

clean:
	rm -rf target .sweep results
