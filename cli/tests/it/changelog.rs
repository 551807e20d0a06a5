//! Updating queries: the changelog a GROUP BY sends (+I, -U, +U, -D), sinks that take it or
//! refuse it, the materialized final table, and an aggregate over an updating aggregate (a
//! retraction chain, as q4's) checked against an independent computation.

use std::collections::BTreeMap;
use std::fs;

use nexmark::queries::{job_script, JobSettings};

use crate::reference;
use crate::support::{eddy, materialized_rows, run_sql, run_sql_materialized, stderr, stdout};

const EVENTS: u64 = 20_000;
const SEED: u64 = 11;
const RATE: u64 = 10_000_000;

/// The Nexmark tables and views of a job script, with `sql` as the query.
fn over_nexmark(dir: &std::path::Path, sql: &str) -> String {
    let settings = JobSettings {
        events: EVENTS,
        rate: RATE,
        extra_options: vec![("seed".into(), SEED.to_string())],
        nexmark_dir: dir.display().to_string(),
        submit_time: "changelog".into(),
        flink_home: dir.display().to_string(),
    };
    let script = job_script("q0", &settings).unwrap();
    let ddl = &script[..script.find("CREATE TABLE nexmark_q0").unwrap()];
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
        "SELECT c.auction, b.price FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction) c \
         JOIN bid b ON c.auction = b.auction;",
    );
    let err = run_sql(&sql, 1).unwrap_err();
    assert!(err.contains("a JOIN over an updating input"), "{err}");
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
