#!/usr/bin/env bash
# Chaos test of exactly-once recovery: `eddy run` over a paced Nexmark source into a
# filesystem sink, checkpointing every 100 ms, is SIGKILLed at random moments and resumed
# with --from each time. At every kill no visible file may be partial; at the end the
# committed rows must equal those of a run without failures, as a multiset.
#
#   bash ci/chaos.sh [--kills N] [--events N] [--rate R] [--parallelism P] [--eddy PATH]
#
# CI runs a short one (ci/test.sh); benchmarks and longer soaks pass more kills and events.
set -euo pipefail
cd "$(dirname "$0")/.."

kills=5
events=200000
rate=50000
parallelism=2
eddy=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) kills=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --parallelism) parallelism=$2; shift 2 ;;
    --eddy) eddy=$2; shift 2 ;;
    *) echo "chaos.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$eddy" ]; then
  cargo build --locked --bin eddy
  eddy=target/debug/eddy
  [ -n "${CARGO_TARGET_DIR:-}" ] && eddy="$CARGO_TARGET_DIR/debug/eddy"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

job() { # job OUT_DIR [checkpoint settings]
  cat <<EOF
$2
CREATE TABLE bids (
  event_type INT,
  bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>
) WITH ('connector' = 'nexmark', 'events.num' = '$events', 'first-event.rate' = '$rate', 'max-emit-speed' = 'false');
CREATE TABLE out_t (auction BIGINT, bidder BIGINT, price BIGINT, url VARCHAR)
  WITH ('connector' = 'filesystem', 'path' = '$1', 'format' = 'csv', 'sink.rolling-policy.file-size' = '64 kb');
INSERT INTO out_t SELECT bid.auction, bid.bidder, bid.price, bid.url FROM bids WHERE event_type = 2;
EOF
}

job "$work/ref" "" | sed "s/'first-event.rate' = '$rate', 'max-emit-speed' = 'false'/'first-event.rate' = '10000000'/" > "$work/ref.sql"
job "$work/out" "SET 'execution.checkpointing.interval' = '100 ms';
SET 'execution.checkpointing.dir' = '$work/chk';
SET 'execution.checkpointing.externalized-checkpoint-retention' = 'RETAIN_ON_CANCELLATION';" > "$work/job.sql"

"$eddy" run "$work/ref.sql" -p "$parallelism" 2>/dev/null
LC_ALL=C sort "$work"/ref/part-* > "$work/want"

# Every visible file ends with a line break and every line has all four columns.
check_whole() {
  for f in "$work"/out/part-*; do
    [ -e "$f" ] || continue
    if [ -s "$f" ] && [ "$(tail -c 1 "$f" | od -An -c | tr -d ' ')" != '\n' ]; then
      echo "chaos: $f is cut short after a kill" >&2; exit 1
    fi
    if awk -F, 'NF != 4 { bad = 1 } END { exit !bad }' "$f"; then
      echo "chaos: $f holds a partial row after a kill" >&2; exit 1
    fi
  done
}

done_kills=0
from=()
while [ "$done_kills" -lt "$kills" ]; do
  "$eddy" run "$work/job.sql" -p "$parallelism" "${from[@]}" >/dev/null 2>"$work/log" &
  pid=$!
  # A random moment between 0.3 and 1.5 s in.
  sleep "$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 1.2 }')"
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || { cat "$work/log" >&2; exit 1; }
    break # finished before the kill
  fi
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  done_kills=$((done_kills + 1))
  check_whole
  from=(--from "$work/chk")
  echo "chaos: kill $done_kills: $(cat "$work"/out/part-* 2>/dev/null | wc -l) rows committed so far"
done
if kill -0 "${pid:-0}" 2>/dev/null || [ "$done_kills" -eq "$kills" ]; then
  "$eddy" run "$work/job.sql" -p "$parallelism" "${from[@]}" >/dev/null 2>"$work/log" \
    || { cat "$work/log" >&2; exit 1; }
fi
check_whole
leftover=$(find "$work/out" -name '*.inprogress' | wc -l)
[ "$leftover" -eq 0 ] || { echo "chaos: $leftover in-progress files left behind" >&2; exit 1; }
LC_ALL=C sort "$work"/out/part-* > "$work/got"
if ! cmp -s "$work/want" "$work/got"; then
  echo "chaos: after $done_kills kills the committed rows differ from a run without failures" >&2
  echo "  want $(wc -l < "$work/want") rows, got $(wc -l < "$work/got")" >&2
  exit 1
fi
echo "chaos: $done_kills kills, $(wc -l < "$work/got") rows, exactly those of a run without failures"
