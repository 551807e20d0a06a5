#!/usr/bin/env bash
# Nexmark queries with and without checkpoints every second, alternately, twice each; one line
# per run from eddy's own report (events/CPU-s, peak RSS, the checkpoints line).
# BENCHMARKS.md, "Checkpoints on and off".
# Usage: EVENTS=N perf/checkpoint-bench.sh Q...   (EVENTS: 10000000; EDDY=path overrides the binary)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
eddy=${EDDY:-$here/../target/release/eddy}
chk=$(mktemp -d)
trap 'rm -rf "$chk"' EXIT
for q in "$@"; do
    events=${EVENTS:-10000000}
    for run in 1 2; do
        for mode in none chk; do
            rm -rf "${chk:?}"/*
            extra=()
            if [ "$mode" = chk ]; then
                extra=(--set execution.checkpointing.interval=1s --set "execution.checkpointing.dir=$chk")
            fi
            report=$("$eddy" nexmark run --query "$q" --events "$events" -p 2 "${extra[@]}") ||
                { echo "$q ($mode): eddy failed" >&2; exit 1; }
            echo "$q $events $mode run$run | $(grep -E 'events/CPU-s|peak RSS|^checkpoints|wall seconds' <<<"$report" | tr -s ' ' | tr '\n' '|')"
        done
    done
done
