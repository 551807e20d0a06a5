#!/usr/bin/env bash
# Time from SIGKILL to the first new output of the resumed job, with about STATE_MB of state.
# Nexmark q20 (every bid joined with its auction: the join keeps all bids) runs unpaced into a
# CSV filesystem sink with a checkpoint every INTERVAL; once a published checkpoint holds
# STATE_MB of state files, the process is SIGKILLed and `eddy run --from` resumes it. Printed:
# the checkpoint's size, the seconds from the kill to the resumed job's first new sink file
# (rows written again), and to its first checkpoint published.
# BENCHMARKS.md, "Recovery time".
# Usage: STATE_MB=1024 INTERVAL=5s perf/recovery-bench.sh   (EDDY=path overrides the binary)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
eddy=${EDDY:-$here/../target/release/eddy}
state_mb=${STATE_MB:-1024}
interval=${INTERVAL:-5s}
work=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
chk=$work/chk
out=$work/out

{
    echo "SET 'execution.checkpointing.interval' = '$interval';"
    echo "SET 'execution.checkpointing.dir' = '$chk';"
    echo "SET 'execution.checkpointing.externalized-checkpoint-retention' = 'RETAIN_ON_CANCELLATION';"
    sed -e 's/${TPS}/10000000/g' -e 's/${EVENTS_NUM}/1000000000/g' -e 's/${PERSON_PROPORTION}/1/' \
        -e 's/${AUCTION_PROPORTION}/3/' -e 's/${BID_PROPORTION}/46/' "$here/../nexmark/queries/ddl_gen.sql"
    sed -e 's/${NEXMARK_TABLE}/datagen/g' "$here/../nexmark/queries/ddl_views.sql"
    sed -e "s#'connector' = 'blackhole'#'connector' = 'filesystem', 'path' = '$out', 'format' = 'csv'#" \
        "$here/../nexmark/queries/q20.sql"
} >"$work/q20.sql"

# The state files the newest published checkpoint names, in MiB, and its directory.
newest() {
    python3 - "$chk" <<'EOF'
import json, os, sys
best = None
for root, dirs, files in os.walk(sys.argv[1]):
    name = os.path.basename(root)
    if "_metadata" in files and name.startswith("chk-"):
        n = int(name[4:])
        if best is None or n > best[0]:
            best = (n, root)
if best is None:
    print("0 -"); sys.exit()
body = open(os.path.join(best[1], "_metadata"), "rb").read().split(b"\n", 1)[1]
meta = json.loads(body)
sizes = {}
for op in meta["operators"].values():
    for sub in op["subtasks"]:
        for m in sub.get("tables", {}).values():
            for run in m["runs"]:
                sizes[run["name"]] = run["bytes"]
                for b in run.get("blobs", []):
                    sizes[b["name"]] = b["bytes"]
print(sum(sizes.values()) // (1 << 20), best[1])
EOF
}

"$eddy" run "$work/q20.sql" -p 2 >/dev/null 2>"$work/first.log" &
pid=$!
while true; do
    read -r mb dir < <(newest)
    if [ "$mb" -ge "$state_mb" ]; then break; fi
    if ! kill -0 $pid 2>/dev/null; then echo "eddy ended early: $(tail -3 "$work/first.log")" >&2; exit 1; fi
    sleep 0.2
done
kill -9 $pid
wait $pid 2>/dev/null
killed=$(date +%s.%N)
ls -a "$out" >"$work/before"
"$eddy" run "$work/q20.sql" -p 2 --from "$chk" >/dev/null 2>"$work/second.log" &
pid=$!
first_output=
first_checkpoint=
while [ -z "$first_checkpoint" ]; do
    now=$(date +%s.%N)
    if [ -z "$first_output" ] && ls -a "$out" | grep -qvxF -f "$work/before"; then
        first_output=$(awk "BEGIN{printf \"%.2f\", $now - $killed}")
    fi
    read -r _ newdir < <(newest)
    if [ "$newdir" != "$dir" ]; then
        first_checkpoint=$(awk "BEGIN{printf \"%.2f\", $now - $killed}")
    fi
    if ! kill -0 $pid 2>/dev/null; then echo "resumed eddy ended: $(tail -3 "$work/second.log")" >&2; exit 1; fi
    sleep 0.05
done
kill -9 $pid
echo "state ${mb} MiB ($(basename "$dir")) | kill to first new output ${first_output:-none} s | kill to first checkpoint ${first_checkpoint} s"
