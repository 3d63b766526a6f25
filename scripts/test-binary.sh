#!/usr/bin/env bash
# Prints the path of one workspace library's unit-test executable (its crate name, such as
# sweep_workloads), as `cargo test --workspace` builds it. Asking cargo with the same package
# selection keeps its feature resolution, so nothing is rebuilt; `cargo test -p <package>` resolves
# features for that package alone and recompiles some 30 crates first.
set -euo pipefail
cd "$(dirname "$0")/.."
crate=${1:?usage: scripts/test-binary.sh CRATE_NAME}
cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
crate, found = sys.argv[1], None
for line in sys.stdin:  # read to the end: cargo must not write into a closed pipe
    m = json.loads(line)
    t = m.get("target") or {}
    if (m.get("reason") == "compiler-artifact" and m.get("executable") and t.get("name") == crate
            and "lib" in t.get("kind", []) and m["profile"]["test"]):
        found = found or m["executable"]
if not found:
    sys.exit(f"test-binary: no unit-test executable of crate {crate} in the workspace build")
print(found)
' "$crate"
