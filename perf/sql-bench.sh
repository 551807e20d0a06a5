#!/usr/bin/env bash
# Times `eddy run` of SQL over Nexmark's generator tables (person, auction, bid; datagen at
# 10 M events/s), the job's rows sent to blackhole sinks the SQL declares.
# Usage: perf/sql-bench.sh EVENTS PARALLELISM LABEL SQL; EDDY=path overrides the binary.
# Prints "LABEL, pP: wall, CPU, max RSS" (GNU time).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
events=$1
parallelism=$2
label=$3
sql=$4
eddy=${EDDY:-$root/target/release/eddy}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed -e "s/\${TPS}/10000000/g; s/\${EVENTS_NUM}/$events/g; s/\${PERSON_PROPORTION}/1/g" \
    -e "s/\${AUCTION_PROPORTION}/3/g; s/\${BID_PROPORTION}/46/g; s/\${NEXMARK_TABLE}/datagen/g" \
    "$root/nexmark/queries/ddl_gen.sql" "$root/nexmark/queries/ddl_views.sql" >"$dir/job.sql"
printf '%s\n' "$sql" >>"$dir/job.sql"
/usr/bin/time -f "$label, p$parallelism: %e s wall, %U+%S s CPU, %M KiB max RSS" \
    "$eddy" run "$dir/job.sql" -p "$parallelism" >/dev/null
