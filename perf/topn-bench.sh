#!/usr/bin/env bash
# Top-N over an updating input (a GROUP BY's counts, Flink's retractable Top-N) over Nexmark's
# generator, into blackhole: the 10 auctions with the most bids (one partition holding every
# auction), and the 3 bidders with the most bids on each auction. BENCHMARKS.md, "Top-N over
# an updating input".
# Usage: perf/topn-bench.sh [EVENTS (4000000)] [PARALLELISM (1)]; EDDY=path overrides the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/sql-bench.sh" "${1:-4000000}" "${2:-1}" "top 10 auctions" "
CREATE TABLE out (auction BIGINT, n BIGINT, rn BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT * FROM (SELECT auction, n, ROW_NUMBER() OVER (ORDER BY n DESC) AS rn
  FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction)) WHERE rn <= 10;"
"$here/sql-bench.sh" "${1:-4000000}" "${2:-1}" "top 3 bidders per auction" "
CREATE TABLE out (auction BIGINT, bidder BIGINT, n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT auction, bidder, n FROM (SELECT *, ROW_NUMBER() OVER
  (PARTITION BY auction ORDER BY n DESC) AS rn
  FROM (SELECT auction, bidder, COUNT(*) AS n FROM bid GROUP BY auction, bidder)) WHERE rn <= 3;"
