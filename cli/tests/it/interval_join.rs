//! Interval joins: both inputs' rowtimes bounded by each other's. State expires with the
//! watermark, the result keeps a time attribute, and a window over it loses no row to a
//! watermark the join let pass too early; checked against pairs counted here.

use std::collections::BTreeMap;

use crate::reference;
use crate::support::{explain_sql, materialized_rows, nexmark_tables, run_sql_materialized};

const EVENTS: u64 = 10_000;
const SEED: u64 = 5;
/// 1,000 events a second of event time: 10 s of bids, five times the join's 2 s interval.
const RATE: u64 = 1_000;

/// The Nexmark tables with the watermark at the latest rowtime (not 4 s behind), then `sql`.
fn over_nexmark(dir: &std::path::Path, sql: &str) -> String {
    let seed = SEED.to_string();
    // Small batches: the watermark moves in steps of 0.1 s of event time.
    let ddl = nexmark_tables(dir, EVENTS, RATE, &[("seed", &seed), ("batch-size", "100")]);
    let lag = "- INTERVAL '4' SECOND";
    assert!(ddl.contains(lag));
    format!("{}\n{sql}", ddl.replace(lag, ""))
}

/// The times of each auction's bids, as the generator makes them at `parallelism`.
fn bid_times_by_auction(parallelism: usize) -> BTreeMap<i64, Vec<i64>> {
    let mut by_key: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in reference::bids(EVENTS, SEED, RATE, parallelism) {
        by_key.entry(b.auction).or_default().push(b.date_time);
    }
    by_key
}

/// Each bid with the later bids on its auction within 2 s (itself included),
/// counted per one-second tumbling window of the first bid's time.
const PAIRS_PER_SECOND: &str = "
    CREATE VIEW pairs AS
      SELECT b1.auction, b1.`dateTime` AS t1, b2.`dateTime` AS t2
      FROM bid b1 JOIN bid b2 ON b1.auction = b2.auction
        AND b2.`dateTime` BETWEEN b1.`dateTime` AND b1.`dateTime` + INTERVAL '2' SECOND;
    CREATE TABLE per_second (window_start TIMESTAMP(3), pairs BIGINT) WITH ('connector' = 'blackhole');
    INSERT INTO per_second
      SELECT window_start, COUNT(*)
      FROM TABLE(TUMBLE(TABLE pairs, DESCRIPTOR(t1), INTERVAL '1' SECOND))
      GROUP BY window_start, window_end;";

#[test]
fn a_window_over_an_interval_join_counts_every_pair() {
    for parallelism in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let sql = over_nexmark(dir.path(), PAIRS_PER_SECOND);
        let out = dir.path().join("tables");
        run_sql_materialized(&sql, parallelism, &out).unwrap();

        let by_key = bid_times_by_auction(parallelism);
        let mut per_second: BTreeMap<i64, i64> = BTreeMap::new();
        let mut late_for_the_source_watermark = 0;
        for times in by_key.values() {
            for &t1 in times {
                for &t2 in times {
                    if (t1..=t1 + 2_000).contains(&t2) {
                        *per_second.entry(t1.div_euclid(1000) * 1000).or_default() += 1;
                        // Found when b2 arrives, with the watermark at b2: past t1's window.
                        late_for_the_source_watermark += usize::from(t2 >= t1 + 1_000);
                    }
                }
            }
        }
        assert!(
            late_for_the_source_watermark > 0,
            "pairs that only a held-back watermark keeps"
        );
        let mut want: Vec<Vec<String>> = per_second
            .iter()
            .map(|(s, n)| vec![reference::timestamp(*s), n.to_string()])
            .collect();
        want.sort();
        assert!(want.len() >= 8, "{want:?}");
        assert_eq!(
            materialized_rows(&out, "per_second"),
            want,
            "parallelism {parallelism}"
        );
    }
}

#[test]
fn explain_shows_the_expiry_and_the_held_back_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let plan = explain_sql(&over_nexmark(dir.path(), PAIRS_PER_SECOND), 2);
    assert!(plan.contains("IntervalJoin: Inner"), "{plan}");
    // b1 rows live until the watermark passes t1 + 2 s; b2 rows until it passes t2.
    assert!(
        plan.contains("dateTime expires below watermark -1999 ms"),
        "{plan}"
    );
    assert!(
        plan.contains("dateTime expires below watermark +1 ms"),
        "{plan}"
    );
    assert!(plan.contains("watermark held back 2000 ms"), "{plan}");
}

/// Each bid with the later bids on its auction within 1 s, or alone (padded) when there is
/// none; rows and pairs per one-second window of the first bid's time. A window over the join
/// shows the result is append-only and keeps its time attribute.
const LATER_OR_ALONE: &str = "
    CREATE VIEW later AS
      SELECT b1.auction, b1.`dateTime` AS t1, b2.`dateTime` AS t2
      FROM bid b1 LEFT JOIN bid b2 ON b1.auction = b2.auction
        AND b2.`dateTime` > b1.`dateTime` AND b2.`dateTime` <= b1.`dateTime` + INTERVAL '1' SECOND;
    CREATE TABLE per_second (window_start TIMESTAMP(3), n BIGINT, pairs BIGINT)
      WITH ('connector' = 'blackhole');
    INSERT INTO per_second
      SELECT window_start, COUNT(*), COUNT(t2)
      FROM TABLE(TUMBLE(TABLE later, DESCRIPTOR(t1), INTERVAL '1' SECOND))
      GROUP BY window_start, window_end;";

#[test]
fn a_left_interval_join_pads_unmatched_rows_as_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let plan = explain_sql(&over_nexmark(dir.path(), LATER_OR_ALONE), 2);
    assert!(plan.contains("IntervalJoin: Left"), "{plan}");
    for parallelism in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let sql = over_nexmark(dir.path(), LATER_OR_ALONE);
        let out = dir.path().join("tables");
        run_sql_materialized(&sql, parallelism, &out).unwrap();

        let by_key = bid_times_by_auction(parallelism);
        let mut per_second: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let mut alone = 0;
        for times in by_key.values() {
            for &t1 in times {
                let pairs = times
                    .iter()
                    .filter(|&&t2| t2 > t1 && t2 <= t1 + 1_000)
                    .count();
                let e = per_second.entry(t1.div_euclid(1000) * 1000).or_default();
                e.0 += pairs.max(1) as i64;
                e.1 += pairs as i64;
                alone += usize::from(pairs == 0);
            }
        }
        assert!(alone > 100, "bids with no later bid: {alone}");
        let want: Vec<Vec<String>> = per_second
            .iter()
            .map(|(s, (n, p))| vec![reference::timestamp(*s), n.to_string(), p.to_string()])
            .collect();
        assert_eq!(
            materialized_rows(&out, "per_second"),
            want,
            "parallelism {parallelism}"
        );
    }
}
