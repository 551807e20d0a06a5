//! Updating queries: the changelog a GROUP BY sends (+I, -U, +U, -D), sinks that take it or
//! refuse it, the materialized final table, an aggregate over an updating aggregate (a
//! retraction chain, as q4's) and joins of updating aggregates (outer joins' null padding and
//! its retraction) checked against independent computations.

use std::collections::BTreeMap;
use std::fs;

use crate::reference;
use crate::support::{
    eddy, explain_sql, materialized_rows, nexmark_tables, run_sql, run_sql_materialized, stderr,
    stdout,
};

const EVENTS: u64 = 20_000;
const SEED: u64 = 11;
const RATE: u64 = 10_000_000;

/// The Nexmark tables and views of a job script, with `sql` as the query.
fn over_nexmark(dir: &std::path::Path, sql: &str) -> String {
    let seed = SEED.to_string();
    let ddl = nexmark_tables(dir, EVENTS, RATE, &[("seed", &seed)]);
    format!("{ddl}\n{sql}")
}

/// A sequence of `rows` numbers from a datagen source limited to 100 rows a second, so that
/// they arrive in batches of about ten.
fn sequence(rows: u64) -> String {
    format!(
        "CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '100', \
         'number-of-rows' = '{rows}', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', \
         'fields.id.end' = '{rows}');\n"
    )
}

#[test]
fn print_shows_the_update_pairs_of_a_running_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sql");
    let sql = sequence(40) + "SELECT COUNT(*) AS n, SUM(id) AS s FROM t;";
    fs::write(&path, sql).unwrap();
    let o = eddy(&["run", path.to_str().unwrap(), "-p", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("+I["), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("-U[")), "{out}");
    // Every -U retracts the result sent just before it.
    for pair in lines.windows(2) {
        if let Some(old) = pair[1].strip_prefix("-U") {
            assert_eq!(&pair[0][2..], old, "{out}");
        }
    }
    assert_eq!(*lines.last().unwrap(), "+U[40, 820]", "{out}");
}

#[test]
fn materialize_prints_the_final_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sql");
    let sql =
        sequence(30) + "SELECT id % 3 AS r, COUNT(*) AS n, MAX(id) AS top FROM t GROUP BY id % 3;";
    fs::write(&path, sql).unwrap();
    let o = eddy(&["run", path.to_str().unwrap(), "-p", "2", "--materialize"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("select: 3 rows\n"), "{out}");
    let rows: Vec<String> = out
        .lines()
        .skip(3)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(rows, ["0 | 10 | 30", "1 | 10 | 28", "2 | 10 | 29"], "{out}");
}

#[test]
fn an_append_only_sink_refuses_an_updating_query() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sql");
    let sql = sequence(10)
        + &format!(
            "CREATE TABLE out (n BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', \
             'format' = 'csv');\nINSERT INTO out SELECT COUNT(*) FROM t;",
            dir.path().join("out").display()
        );
    fs::write(&path, sql).unwrap();
    let o = eddy(&["run", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("table 'out' (connector 'filesystem') only takes appended rows"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn operators_that_take_appended_rows_refuse_an_updating_input() {
    let dir = tempfile::tempdir().unwrap();
    let sql = over_nexmark(
        dir.path(),
        "CREATE VIEW last_bid AS SELECT auction, MAX(dateTime) AS t FROM bid GROUP BY auction;
         SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE last_bid, DESCRIPTOR(t), \
         INTERVAL '10' SECOND)) GROUP BY window_start, window_end;",
    );
    let err = run_sql(&sql, 1).unwrap_err();
    assert!(err.contains("over an updating input"), "{err}");
}

/// Top-N over an aggregate's results (Flink's retractable Top-N): the three auctions with the
/// most bids per auction id modulo 7, and the five with the most overall, as the bid counts
/// grow, checked against counts done here.
#[test]
fn a_top_n_of_an_updating_aggregate_matches_an_independent_ranking() {
    const COUNTS: &str =
        "(SELECT auction, MOD(auction, 7) AS m, COUNT(*) AS n FROM bid GROUP BY auction)";
    for parallelism in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let sql = over_nexmark(
            dir.path(),
            &format!(
                "CREATE TABLE per_m (m BIGINT, auction BIGINT, n BIGINT, rn BIGINT) WITH ('connector' = 'blackhole');
                 CREATE TABLE overall (auction BIGINT, n BIGINT) WITH ('connector' = 'blackhole');
                 EXECUTE STATEMENT SET BEGIN
                 INSERT INTO per_m SELECT m, auction, n, rn FROM (SELECT *, ROW_NUMBER() OVER \
                   (PARTITION BY m ORDER BY n DESC, auction) AS rn FROM {COUNTS}) WHERE rn <= 3;
                 INSERT INTO overall SELECT auction, n FROM (SELECT *, ROW_NUMBER() OVER \
                   (ORDER BY n DESC, auction) AS rn FROM {COUNTS}) WHERE rn <= 5;
                 END;"
            ),
        );
        let out = dir.path().join("tables");
        run_sql_materialized(&sql, parallelism, &out).unwrap();

        let [all, ..] = counts_by_auction(parallelism);
        // Auctions best first: most bids, then the lower id.
        let mut ranked: Vec<(i64, i64)> = all.into_iter().collect();
        ranked.sort_by_key(|&(auction, n)| (-n, auction));
        let mut per_m = Vec::new();
        let mut seen: BTreeMap<i64, i64> = BTreeMap::new();
        for &(auction, n) in &ranked {
            let rn = seen.entry(auction.rem_euclid(7)).or_default();
            *rn += 1;
            if *rn <= 3 {
                per_m.push(
                    [auction % 7, auction, n, *rn]
                        .map(|v| v.to_string())
                        .to_vec(),
                );
            }
        }
        per_m.sort();
        let mut overall: Vec<Vec<String>> = ranked[..5]
            .iter()
            .map(|(a, n)| vec![a.to_string(), n.to_string()])
            .collect();
        overall.sort();
        assert_eq!(per_m.len(), 21, "seven partitions of three");
        assert_eq!(materialized_rows(&out, "per_m"), per_m, "p{parallelism}");
        assert_eq!(
            materialized_rows(&out, "overall"),
            overall,
            "p{parallelism}"
        );
    }
}

/// Bid counts per auction: all bids, those of even bidders, those of bidders divisible by 3.
fn counts_by_auction(parallelism: usize) -> [BTreeMap<i64, i64>; 3] {
    let mut out: [BTreeMap<i64, i64>; 3] = Default::default();
    for b in reference::bids(EVENTS, SEED, RATE, parallelism) {
        *out[0].entry(b.auction).or_default() += 1;
        if b.bidder % 2 == 0 {
            *out[1].entry(b.auction).or_default() += 1;
        }
        if b.bidder % 3 == 0 {
            *out[2].entry(b.auction).or_default() += 1;
        }
    }
    out
}

fn cell(v: Option<&i64>) -> String {
    v.map_or(String::new(), i64::to_string)
}

/// Joins of two updating aggregates: inner, left (an auction's padding retracted when its
/// first even bidder arrives) and full (padding on both sides), checked against counts done
/// here.
#[test]
fn joins_of_updating_aggregates_match_independent_counts() {
    const COUNTS: &str = "(SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction) a";
    const EVEN: &str = "(SELECT auction, COUNT(*) AS n FROM bid WHERE MOD(bidder, 2) = 0 \
                        GROUP BY auction)";
    const THIRD: &str = "(SELECT auction, COUNT(*) AS n FROM bid WHERE MOD(bidder, 3) = 0 \
                         GROUP BY auction) t";
    for parallelism in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let sql = over_nexmark(
            dir.path(),
            &format!(
                "CREATE TABLE inner_j (auction BIGINT, n BIGINT, e BIGINT) WITH ('connector' = 'blackhole');
                 CREATE TABLE left_j (auction BIGINT, n BIGINT, e BIGINT) WITH ('connector' = 'blackhole');
                 CREATE TABLE full_j (ea BIGINT, e BIGINT, ta BIGINT, t BIGINT) WITH ('connector' = 'blackhole');
                 EXECUTE STATEMENT SET BEGIN
                 INSERT INTO inner_j SELECT a.auction, a.n, e.n FROM {COUNTS} JOIN {EVEN} e ON a.auction = e.auction;
                 INSERT INTO left_j SELECT a.auction, a.n, e.n FROM {COUNTS} LEFT JOIN {EVEN} e ON a.auction = e.auction;
                 INSERT INTO full_j SELECT e.auction, e.n, t.auction, t.n FROM {EVEN} e FULL JOIN {THIRD} ON e.auction = t.auction;
                 END;"
            ),
        );
        let out = dir.path().join("tables");
        run_sql_materialized(&sql, parallelism, &out).unwrap();
        let [all, even, third] = counts_by_auction(parallelism);
        let sorted = |mut rows: Vec<Vec<String>>| {
            rows.sort();
            rows
        };
        let inner = sorted(
            even.iter()
                .map(|(a, e)| vec![a.to_string(), all[a].to_string(), e.to_string()])
                .collect(),
        );
        let left = sorted(
            all.iter()
                .map(|(a, n)| vec![a.to_string(), n.to_string(), cell(even.get(a))])
                .collect(),
        );
        let keys: std::collections::BTreeSet<i64> =
            even.keys().chain(third.keys()).copied().collect();
        let full = sorted(
            keys.iter()
                .map(|a| {
                    let (e, t) = (even.get(a), third.get(a));
                    vec![cell(e.map(|_| a)), cell(e), cell(t.map(|_| a)), cell(t)]
                })
                .collect(),
        );
        assert!(
            left.len() > inner.len() && full.len() > inner.len(),
            "padding to check"
        );
        assert_eq!(
            materialized_rows(&out, "inner_j"),
            inner,
            "inner, p{parallelism}"
        );
        assert_eq!(
            materialized_rows(&out, "left_j"),
            left,
            "left, p{parallelism}"
        );
        assert_eq!(
            materialized_rows(&out, "full_j"),
            full,
            "full, p{parallelism}"
        );
    }
}

/// Count of bids per auction, then how many auctions have each count: the outer aggregate's
/// input retracts an auction's old count whenever it grows.
#[test]
fn an_aggregate_over_an_updating_aggregate_matches_an_independent_count() {
    for parallelism in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let sql = over_nexmark(
            dir.path(),
            "CREATE TABLE hist (bids BIGINT, auctions BIGINT, top_auction BIGINT, low BIGINT) \
             WITH ('connector' = 'blackhole');
             INSERT INTO hist
             SELECT n, COUNT(*), MAX(auction), MIN(auction)
             FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction)
             GROUP BY n;",
        );
        let out = dir.path().join("tables");
        run_sql_materialized(&sql, parallelism, &out).unwrap();
        let got = materialized_rows(&out, "hist");

        let mut per_auction: BTreeMap<i64, i64> = BTreeMap::new();
        for b in reference::bids(EVENTS, SEED, RATE, parallelism) {
            *per_auction.entry(b.auction).or_default() += 1;
        }
        let mut hist: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
        for (auction, n) in per_auction {
            let e = hist.entry(n).or_insert((0, i64::MIN, i64::MAX));
            *e = (e.0 + 1, e.1.max(auction), e.2.min(auction));
        }
        let mut want: Vec<Vec<String>> = hist
            .into_iter()
            .map(|(n, (c, hi, lo))| [n, c, hi, lo].iter().map(i64::to_string).collect())
            .collect();
        want.sort();
        assert!(want.len() > 10, "a histogram worth checking: {want:?}");
        assert_eq!(got, want, "parallelism {parallelism}");
    }
}

#[test]
fn state_ttl_reaches_every_stateful_operator_and_a_bad_value_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let join = "SELECT b.auction, c.n FROM bid b LEFT JOIN \
                (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction) c ON b.auction = c.auction;";
    let sql = over_nexmark(
        dir.path(),
        &format!("SET 'table.exec.state.ttl' = '1 h';\n{join}"),
    );
    let plan = explain_sql(&sql, 2);
    assert!(plan.contains("ChangelogJoin: Left"), "{plan}");
    // The join and the aggregate.
    assert_eq!(plan.matches("state TTL 3600000 ms").count(), 2, "{plan}");
    for (query, operator) in [
        (
            "SELECT * FROM (SELECT auction, price, ROW_NUMBER() OVER (PARTITION BY auction \
             ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 3;",
            "Rank",
        ),
        (
            "SELECT auction, SUM(price) OVER (PARTITION BY auction ORDER BY `dateTime` \
             ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM bid;",
            "OverAggregate",
        ),
        (
            "SELECT b.auction, a.seller FROM bid b JOIN auction a ON b.auction = a.id;",
            "StreamJoin: Inner",
        ),
    ] {
        let sql = over_nexmark(
            dir.path(),
            &format!("SET 'table.exec.state.ttl' = '90 s';\n{query}"),
        );
        let plan = explain_sql(&sql, 1);
        assert!(plan.contains(operator), "{plan}");
        assert!(plan.contains("state TTL 90000 ms"), "{plan}");
    }
    let bad = over_nexmark(
        dir.path(),
        &format!("SET 'table.exec.state.ttl' = 'forever';\n{join}"),
    );
    let err = run_sql(&bad, 1).unwrap_err();
    assert!(
        err.contains("'table.exec.state.ttl' = 'forever' is not a duration"),
        "{err}"
    );
}

#[test]
fn over_windows_eddy_cannot_frame_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "SELECT SUM(price) OVER (PARTITION BY auction ORDER BY price) FROM bid;",
            "an OVER window framed RANGE UNBOUNDED PRECEDING needs ORDER BY a time attribute",
        ),
        (
            "SELECT STDDEV(price) OVER (PARTITION BY auction ORDER BY `dateTime` ROWS BETWEEN 2 \
             PRECEDING AND CURRENT ROW) FROM bid;",
            "STDDEV OVER (…) is not supported yet",
        ),
    ];
    for (query, message) in cases {
        let err = run_sql(&over_nexmark(dir.path(), query), 1).unwrap_err();
        assert!(err.contains(message), "{query}: {err}");
    }
}

/// AVG of an integer column is of that type, the quotient truncated toward zero, as in Flink:
/// in an unbounded GROUP BY (eddy's accumulators) and in a window (DataFusion's, cast back).
#[test]
fn avg_of_integers_is_an_integer_truncated_as_in_flink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("job.sql");
    let sql = sequence(30)
        + "SELECT id % 3 AS r, AVG(id) AS a, AVG(-id) AS n, AVG(CAST(id AS DOUBLE) + 0) AS d \
           FROM t GROUP BY id % 3;";
    fs::write(&path, sql).unwrap();
    let o = eddy(&["run", path.to_str().unwrap(), "-p", "2", "--materialize"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<String> = out
        .lines()
        .skip(3)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        rows,
        [
            "0 | 16 | -16 | 16.5",
            "1 | 14 | -14 | 14.5",
            "2 | 15 | -15 | 15.5"
        ],
        "{out}"
    );

    let sql = over_nexmark(
        dir.path(),
        "CREATE TABLE avg_price (window_start TIMESTAMP(3), a BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO avg_price SELECT window_start, AVG(price)
         FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '1' MILLISECOND))
         GROUP BY window_start, window_end;",
    );
    let plan = explain_sql(&sql, 1);
    assert!(plan.contains("aggregates [\"avg("), "{plan}");
    let out = dir.path().join("tables");
    run_sql_materialized(&sql, 1, &out).unwrap();
    let mut per_ms: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for b in reference::bids(EVENTS, SEED, RATE, 1) {
        let e = per_ms.entry(b.date_time).or_default();
        *e = (e.0 + b.price, e.1 + 1);
    }
    let want: Vec<Vec<String>> = per_ms
        .iter()
        .map(|(t, (sum, n))| vec![reference::timestamp(*t), (sum / n).to_string()])
        .collect();
    assert!(want.iter().any(|r| r[1] != "0"));
    assert_eq!(materialized_rows(&out, "avg_price"), want);
}
