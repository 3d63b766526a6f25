#!/usr/bin/env bash
# The tests of `make test`, on every core. The training tests of sweep-workloads take libtorch's
# generator lock one at a time, so each of their runs keeps one core busy at most: they run in
# processes of their own beside the rest of the workspace's tests, each logging to target/:
#  - workloads-tests.log: on this CPU's kernels and core count;
#  - portable-kernels.log: again on libtorch's portable kernels with one thread, as a CPU unlike
#    this one would run them: their tolerances must hold on any CPU. The reruns of shipped studies
#    (`_study_`), which check effects rather than tolerances, run once.
# A run that passes prints its summary line; one that fails prints its whole log. The exit status
# is that of the first failure.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --no-run || exit 1
bin=$(scripts/test-binary.sh sweep_workloads) || exit 1
mkdir -p target

lanes=()
start() {  # start NAME ENV... -- ARGS...: the workloads' test executable in the background
  local name=$1 envs=() args=()
  shift
  while [[ $# -gt 0 && $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  args=("$@")
  (cd agent/workloads && env "${envs[@]}" "$bin" "${args[@]}") >"target/$name.log" 2>&1 &
  lanes+=("$name:$!")
}
echo "test-all: the tests of sweep-workloads run beside the others (target/workloads-tests.log, target/portable-kernels.log)"
start workloads-tests --
start portable-kernels ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 -- --skip _study_

cargo test --workspace --exclude sweep-workloads
status=$?
for lane in "${lanes[@]}"; do
  name=${lane%%:*}
  if wait "${lane##*:}"; then
    echo "test-all: $name: $(grep '^test result' "target/$name.log")"
  else
    cat "target/$name.log"
    echo "test-all: $name failed (its log is above)"
    [[ $status == 0 ]] && status=1
  fi
done
exit "$status"
