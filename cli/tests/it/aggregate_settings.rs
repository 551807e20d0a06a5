//! Flink's aggregation settings: mini-batch (`table.exec.mini-batch.*`) folds an unbounded
//! aggregate's changes, and split distinct aggregation
//! (`table.optimizer.distinct-agg.split.enabled`) spreads a hot group's distinct values over
//! subtasks; neither changes the final table.

use crate::support::{
    explain_sql, materialized_rows, nexmark_tables, run_sql, run_sql_materialized,
};

const EVENTS: u64 = 20_000;
const RATE: u64 = 10_000_000;

/// The Nexmark tables of a job script, with `settings` and then `sql`.
fn job(dir: &std::path::Path, settings: &str, sql: &str) -> String {
    let ddl = nexmark_tables(dir, EVENTS, RATE, &[("seed", "5")]);
    format!("{settings}\n{ddl}\n{sql}")
}

/// How many auctions have each number of bids: a retraction chain, each auction's count
/// retracted from the outer aggregate whenever it grows.
const HISTOGRAM: &str = "CREATE TABLE hist (bids BIGINT, auctions BIGINT, top_auction BIGINT) \
     WITH ('connector' = 'blackhole');
     INSERT INTO hist
     SELECT n, COUNT(*), MAX(auction)
     FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction)
     GROUP BY n;";

const ONE_BIG_MINI_BATCH: &str = "SET 'table.exec.mini-batch.enabled' = 'true';
     SET 'table.exec.mini-batch.allow-latency' = '1 h';
     SET 'table.exec.mini-batch.size' = '1000000';";

#[test]
fn a_mini_batch_folds_the_changelog_and_keeps_the_final_table() {
    for parallelism in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        let metrics =
            run_sql_materialized(&job(dir.path(), "", HISTOGRAM), parallelism, &plain).unwrap();
        let plain_changes = metrics.sink_rows.load(std::sync::atomic::Ordering::Relaxed);
        let want = materialized_rows(&plain, "hist");

        let folded = dir.path().join("folded");
        let sql = job(dir.path(), ONE_BIG_MINI_BATCH, HISTOGRAM);
        let metrics = run_sql_materialized(&sql, parallelism, &folded).unwrap();
        let changes = metrics.sink_rows.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(materialized_rows(&folded, "hist"), want, "p{parallelism}");
        // One mini-batch for the whole input: every group changes once, from nothing to its
        // final result, where without it each input batch moved auctions between counts.
        assert_eq!(changes, want.len() as u64, "p{parallelism}");
        assert!(plain_changes > changes, "{plain_changes} vs {changes}");
    }
}

#[test]
fn mini_batch_settings_show_in_the_plan_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plan = explain_sql(&job(dir.path(), ONE_BIG_MINI_BATCH, HISTOGRAM), 2);
    assert_eq!(
        plan.matches("mini-batch 1000000 rows or 3600000 ms")
            .count(),
        2,
        "{plan}"
    );
    for (settings, message) in [
        (
            "SET 'table.exec.mini-batch.enabled' = 'true';",
            "'table.exec.mini-batch.enabled' is true, so 'table.exec.mini-batch.allow-latency' \
             must be set to a positive duration",
        ),
        (
            "SET 'table.exec.mini-batch.enabled' = 'true';
             SET 'table.exec.mini-batch.allow-latency' = '2 s';",
            "so 'table.exec.mini-batch.size' must be set to a positive number of rows",
        ),
        (
            "SET 'table.exec.mini-batch.enabled' = 'yes';",
            "'table.exec.mini-batch.enabled' = 'yes' is not 'true' or 'false'",
        ),
    ] {
        let err = run_sql(&job(dir.path(), settings, HISTOGRAM), 1).unwrap_err();
        assert!(err.contains(message), "{err}");
    }
}
