//! Flink's OVER windows: ordered by the rowtime over insert-only bids, ROWS and RANGE frames
//! send each bid once with its frame's aggregates (append-only), the rowtime stays a time
//! attribute for a window downstream, and frames Flink cannot order are refused by name;
//! checked against frames folded here.

use std::collections::BTreeMap;

use crate::reference::{self, Bid};
use crate::support::{
    explain_sql, materialized_rows, nexmark_tables, run_sql, run_sql_materialized,
};

const EVENTS: u64 = 10_000;
const SEED: u64 = 9;
/// 1,000 events a second of event time: at parallelism 1 every bid has its own millisecond;
/// at 2 each generator subtask keeps its own clock, so bids of a channel share some (RANGE
/// frames' peers), but no two bids of one auction do (checked), so ROWS frames have one order.
const RATE: u64 = 1_000;

fn over_nexmark(dir: &std::path::Path, sql: &str) -> String {
    let seed = SEED.to_string();
    // Small batches: the watermark (4 s behind the rowtime) moves in steps of 0.1 s.
    let ddl = nexmark_tables(dir, EVENTS, RATE, &[("seed", &seed), ("batch-size", "100")]);
    format!("{ddl}\n{sql}")
}

const JOB: &str = "
    CREATE VIEW last3 AS
      SELECT auction, price, `dateTime`,
        SUM(price) OVER w AS s, MIN(price) OVER w AS lo, MAX(price) OVER w AS hi,
        COUNT(*) OVER w AS n
      FROM bid
      WINDOW w AS (PARTITION BY auction ORDER BY `dateTime` ROWS BETWEEN 2 PRECEDING AND CURRENT ROW);
    CREATE TABLE rows_frame (auction BIGINT, price BIGINT, t TIMESTAMP(3), s BIGINT, lo BIGINT,
      hi BIGINT, n BIGINT) WITH ('connector' = 'blackhole');
    CREATE TABLE range_frame (channel STRING, t TIMESTAMP(3), n BIGINT, s BIGINT)
      WITH ('connector' = 'blackhole');
    CREATE TABLE per_second (window_start TIMESTAMP(3), bids BIGINT, frames BIGINT)
      WITH ('connector' = 'blackhole');
    EXECUTE STATEMENT SET BEGIN
    INSERT INTO rows_frame SELECT * FROM last3;
    INSERT INTO range_frame
      SELECT channel, `dateTime`,
        COUNT(*) OVER (PARTITION BY channel ORDER BY `dateTime`
          RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW),
        SUM(price) OVER (PARTITION BY channel ORDER BY `dateTime`
          RANGE BETWEEN INTERVAL '2' SECOND PRECEDING AND CURRENT ROW)
      FROM bid;
    INSERT INTO per_second
      SELECT window_start, COUNT(*), SUM(n)
      FROM TABLE(TUMBLE(TABLE last3, DESCRIPTOR(`dateTime`), INTERVAL '1' SECOND))
      GROUP BY window_start, window_end;
    END;";

/// Each bid with the bids of its `key` (index `j` among them in time order) that `within`
/// keeps in its frame (the bid being index `i`).
fn frames(
    bids: &[Bid],
    key: impl Fn(&Bid) -> String,
    within: impl Fn(usize, &Bid, usize, &Bid) -> bool,
) -> Vec<(&Bid, Vec<&Bid>)> {
    let mut by_key: BTreeMap<String, Vec<&Bid>> = BTreeMap::new();
    for b in bids {
        by_key.entry(key(b)).or_default().push(b);
    }
    let mut out = Vec::new();
    for list in by_key.values_mut() {
        list.sort_by_key(|b| b.date_time);
        for (i, b) in list.iter().enumerate() {
            let frame = list
                .iter()
                .enumerate()
                .filter(|(j, o)| within(i, b, *j, o))
                .map(|(_, o)| *o)
                .collect();
            out.push((*b, frame));
        }
    }
    out
}

/// `got` equals `want`; if not, says where they first differ.
fn assert_same_rows(got: Vec<Vec<String>>, want: Vec<Vec<String>>, what: &str) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "{what}: {} rows, {} wanted; first difference at row {i}: got {:?}, wanted {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
}

#[test]
fn rows_and_range_frames_send_each_bid_once_with_its_frame() {
    for parallelism in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tables");
        run_sql_materialized(&over_nexmark(dir.path(), JOB), parallelism, &out).unwrap();
        let bids = reference::bids(EVENTS, SEED, RATE, parallelism);

        let mut rows_frame: Vec<Vec<String>> = frames(
            &bids,
            |b| b.auction.to_string(),
            |i, _, j, _| j <= i && j + 2 >= i,
        )
        .into_iter()
        .map(|(b, frame)| {
            let prices = frame.iter().map(|o| o.price);
            [
                b.auction.to_string(),
                b.price.to_string(),
                reference::timestamp(b.date_time),
                prices.clone().sum::<i64>().to_string(),
                prices.clone().min().unwrap().to_string(),
                prices.max().unwrap().to_string(),
                frame.len().to_string(),
            ]
            .to_vec()
        })
        .collect();
        rows_frame.sort();
        assert_eq!(rows_frame.len(), bids.len());
        let what = format!("ROWS, p{parallelism}");
        assert_same_rows(materialized_rows(&out, "rows_frame"), rows_frame, &what);

        let mut range_frame: Vec<Vec<String>> = frames(
            &bids,
            |b| b.channel.clone(),
            |_, b, _, o| (b.date_time - 2_000..=b.date_time).contains(&o.date_time),
        )
        .into_iter()
        .map(|(b, frame)| {
            let sum: i64 = frame.iter().map(|o| o.price).sum();
            [
                b.channel.clone(),
                reference::timestamp(b.date_time),
                frame.len().to_string(),
                sum.to_string(),
            ]
            .to_vec()
        })
        .collect();
        range_frame.sort();
        assert!(range_frame
            .iter()
            .any(|r| r[2].parse::<u64>().unwrap() > 100));
        let what = format!("RANGE, p{parallelism}");
        assert_same_rows(materialized_rows(&out, "range_frame"), range_frame, &what);

        // A window over the OVER result: every bid reaches its second, none too late.
        let mut per_second: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let counts: BTreeMap<(i64, i64), usize> = frames(
            &bids,
            |b| b.auction.to_string(),
            |i, _, j, _| j <= i && j + 2 >= i,
        )
        .into_iter()
        .map(|(b, f)| ((b.auction, b.date_time), f.len()))
        .collect();
        assert_eq!(
            counts.len(),
            bids.len(),
            "no two bids of an auction share a millisecond"
        );
        for b in &bids {
            let e = per_second
                .entry(b.date_time.div_euclid(1000) * 1000)
                .or_default();
            e.0 += 1;
            e.1 += counts[&(b.auction, b.date_time)] as i64;
        }
        let want: Vec<Vec<String>> = per_second
            .iter()
            .map(|(s, (n, f))| vec![reference::timestamp(*s), n.to_string(), f.to_string()])
            .collect();
        let what = format!("windows, p{parallelism}");
        assert_same_rows(materialized_rows(&out, "per_second"), want, &what);
    }
}

#[test]
fn the_result_is_append_only_and_keeps_its_rowtime() {
    let dir = tempfile::tempdir().unwrap();
    let plan = explain_sql(&over_nexmark(dir.path(), JOB), 2);
    assert!(plan.contains("by rowtime dateTime, append-only"), "{plan}");
    assert!(plan.contains("RANGE 2000 ms PRECEDING"), "{plan}");
    assert!(!plan.contains("Retract"), "{plan}");
    // An append-only file sink takes it.
    let path = dir.path().join("over.csv");
    let sql = over_nexmark(
        dir.path(),
        &format!(
            "CREATE TABLE f (auction BIGINT, n BIGINT) WITH ('connector' = 'filesystem', \
             'path' = '{}', 'format' = 'csv');
             INSERT INTO f SELECT auction, COUNT(*) OVER (PARTITION BY auction ORDER BY \
             `dateTime` ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM bid;",
            path.display()
        ),
    );
    run_sql(&sql, 1).unwrap();
}

#[test]
fn frames_flink_cannot_order_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "SELECT COUNT(*) OVER (ORDER BY t RANGE BETWEEN INTERVAL '1' SECOND PRECEDING AND \
             CURRENT ROW) FROM (SELECT auction, MAX(`dateTime`) AS t FROM bid GROUP BY auction);",
            "needs ORDER BY a time attribute",
        ),
        (
            "SELECT SUM(price) OVER (PARTITION BY auction ORDER BY `dateTime` ROWS BETWEEN 2 \
             PRECEDING AND 1 FOLLOWING) FROM bid;",
            "is not supported yet",
        ),
        (
            "SELECT SUM(price) OVER (PARTITION BY auction ORDER BY `dateTime` ROWS BETWEEN 2 \
             PRECEDING AND CURRENT ROW), COUNT(*) OVER (PARTITION BY auction ORDER BY \
             `dateTime` ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM bid;",
            "OVER windows framed differently in one SELECT",
        ),
    ];
    for (query, message) in cases {
        let err = run_sql(&over_nexmark(dir.path(), query), 1).unwrap_err();
        assert!(err.contains(message), "{query}: {err}");
    }
}
