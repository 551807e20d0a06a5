#!/usr/bin/env bash
# gemini-state and RocksDB side by side on the state benchmarks (perf/benches/state.rs):
# tier 0 / in-memory point gets and updates, YCSB A and F over 10x the memory budget, and
# the write and space amplification after them. Then prints gemini-state's throughput as a
# multiple of RocksDB's for each workload.
# Usage: perf/rocksdb-bench.sh [criterion filter]
# The first run compiles RocksDB's C++ from source (about 15 minutes on 2 cores); bindgen
# needs libclang, installed here from Debian's packages if it is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev
fi
cd "$root"
cargo bench -p perf --features rocksdb --bench state -- "$@"
python3 - "${CARGO_TARGET_DIR:-$root/target}/criterion" <<'PY'
import json, os, sys
base = sys.argv[1]
def mean_ns(group, name):
    p = os.path.join(base, group, name, "new", "estimates.json")
    if not os.path.exists(p):
        return None
    return json.load(open(p))["mean"]["point_estimate"]
groups = {
    "state_tier0": ["get_16B_64B", "update_16B_64B"],
    "state_tier0_cache_resident": ["get_16B_64B", "update_16B_64B"],
    "state_ycsb_10x_memory": ["A_read_update", "F_read_modify_write"],
}
print(f"{'workload':<52} {'gemini M ops/s':>14} {'RocksDB M ops/s':>16} {'ratio':>6}")
for group, names in groups.items():
    for name in names:
        g, r = mean_ns(group, name), mean_ns(group, "rocksdb_" + name)
        if g is None or r is None:
            continue
        # 1024 operations an iteration.
        print(f"{group + '/' + name:<52} {1024e3 / g:>14.2f} {1024e3 / r:>16.2f} {r / g:>5.1f}x")
PY
