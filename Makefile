# The two commands a new machine needs: `make demo` and `make test`. Both install what is missing
# (scripts/setup.sh) and are quick when nothing is.

CARGO ?= cargo
BIN := target/debug

.PHONY: demo test setup build bench clean

demo: build
	$(BIN)/sweep local sweeps/studies/quickstart.toml

test: setup
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --workspace --bins

# Coordinator throughput (BENCHMARKS.md).
bench: setup
	$(CARGO) run --release -p sweep-bench -- all

clean:
	rm -rf target .sweep results
