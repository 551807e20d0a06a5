#!/usr/bin/env bash
# Bids joined to their auctions over Nexmark's generator, into blackhole: once as an inner
# join of insert-only inputs (StreamJoin) and once as a LEFT join (ChangelogJoin, state in a
# StateTable). No Nexmark query has an outer join; BENCHMARKS.md, "changelog joins".
# Usage: perf/join-bench.sh [EVENTS (4000000)] [PARALLELISM (1)]; EDDY=path overrides the binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
events=${1:-4000000}
parallelism=${2:-1}
eddy=${EDDY:-$root/target/release/eddy}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for join in "JOIN" "LEFT JOIN"; do
    sed -e "s/\${TPS}/10000000/g; s/\${EVENTS_NUM}/$events/g; s/\${PERSON_PROPORTION}/1/g" \
        -e "s/\${AUCTION_PROPORTION}/3/g; s/\${BID_PROPORTION}/46/g; s/\${NEXMARK_TABLE}/datagen/g" \
        "$root/nexmark/queries/ddl_gen.sql" "$root/nexmark/queries/ddl_views.sql" >"$dir/job.sql"
    cat >>"$dir/job.sql" <<SQL
CREATE TABLE out (auction BIGINT, price BIGINT, category BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT B.auction, B.price, A.category FROM bid B $join auction A ON B.auction = A.id;
SQL
    /usr/bin/time -f "$join, p$parallelism: %e s wall, %U+%S s CPU, %M KiB max RSS" \
        "$eddy" run "$dir/job.sql" -p "$parallelism" >/dev/null
done
