#!/usr/bin/env bash
# Bids joined to their auctions over Nexmark's generator, into blackhole: once as an inner
# join of insert-only inputs (StreamJoin) and once as a LEFT join (ChangelogJoin, state in a
# StateTable). No Nexmark query has an outer join; BENCHMARKS.md, "changelog joins".
# Usage: perf/join-bench.sh [EVENTS (4000000)] [PARALLELISM (1)]; EDDY=path overrides the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for join in "JOIN" "LEFT JOIN"; do
    "$here/sql-bench.sh" "${1:-4000000}" "${2:-1}" "$join" "
CREATE TABLE out (auction BIGINT, price BIGINT, category BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT B.auction, B.price, A.category FROM bid B $join auction A ON B.auction = A.id;"
done
