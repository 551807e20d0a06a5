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

const SPLIT: &str = "SET 'table.optimizer.distinct-agg.split.enabled' = 'true';
     SET 'table.optimizer.distinct-agg.split.bucket-num' = '16';";

/// Nexmark query `name`'s script at this file's event count, with `settings` first.
fn nexmark_job(dir: &std::path::Path, name: &str, settings: &str) -> String {
    let s = nexmark::queries::JobSettings {
        events: EVENTS,
        rate: RATE,
        extra_options: vec![("seed".into(), "5".into())],
        nexmark_dir: dir.display().to_string(),
        submit_time: "t".into(),
        flink_home: dir.display().to_string(),
    };
    format!(
        "{settings}\n{}",
        nexmark::queries::job_script(name, &s).unwrap()
    )
}

/// The final table of `sql` run materialized at `parallelism`.
fn final_table(
    dir: &std::path::Path,
    sql: &str,
    table: &str,
    parallelism: usize,
) -> Vec<Vec<String>> {
    let out = tempfile::tempdir_in(dir).unwrap();
    run_sql_materialized(sql, parallelism, out.path()).unwrap_or_else(|e| panic!("{e}"));
    materialized_rows(out.path(), table)
}

#[test]
fn split_distinct_aggregation_keeps_q15_and_q16_s_results() {
    let dir = tempfile::tempdir().unwrap();
    for (query, table) in [("q15", "nexmark_q15"), ("q16", "nexmark_q16")] {
        let split = nexmark_job(dir.path(), query, SPLIT);
        let plan = explain_sql(&split, 2);
        assert!(plan.contains("SplitDistinctExpand"), "{plan}");
        assert_eq!(plan.matches("GroupAggregate").count(), 2, "{plan}");
        let plain = nexmark_job(dir.path(), query, "");
        for parallelism in [1, 2] {
            let want = final_table(dir.path(), &plain, table, parallelism);
            assert!(!want.is_empty());
            let got = final_table(dir.path(), &split, table, parallelism);
            assert_eq!(got, want, "{query} at p{parallelism}");
        }
    }
}

#[test]
fn split_distinct_aggregation_over_an_updating_input_and_where_it_does_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    // Distinct auctions and the lowest and highest per bid count: the input retracts an
    // auction's old count as it grows, and the halves of the split retract in turn.
    // (With one distinct argument DataFusion's optimizer already makes it a GROUP BY of its
    // own, so two.)
    let query = "CREATE TABLE per_count (bids BIGINT, auctions BIGINT, tens BIGINT, low BIGINT, \
                 high BIGINT, total BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO per_count
         SELECT n, COUNT(DISTINCT auction), COUNT(DISTINCT auction / 10), MIN(auction),
           MAX(auction), SUM(n)
         FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction)
         GROUP BY n;";
    let split = job(dir.path(), SPLIT, query);
    assert!(explain_sql(&split, 2).contains("SplitDistinctExpand"));
    for parallelism in [1, 2] {
        let want = final_table(
            dir.path(),
            &job(dir.path(), "", query),
            "per_count",
            parallelism,
        );
        assert!(want.len() > 10, "{want:?}");
        let got = final_table(dir.path(), &split, "per_count", parallelism);
        assert_eq!(got, want, "p{parallelism}");
    }
    // AVG's halves do not combine by one call: not split, the same result either way.
    let avg = "SELECT auction, COUNT(DISTINCT bidder), AVG(price) FROM bid GROUP BY auction;";
    let plan = explain_sql(&job(dir.path(), SPLIT, avg), 2);
    assert!(!plan.contains("SplitDistinctExpand"), "{plan}");
    let err = run_sql(
        &job(
            dir.path(),
            "SET 'table.optimizer.distinct-agg.split.bucket-num' = '0';",
            avg,
        ),
        1,
    )
    .unwrap_err();
    assert!(
        err.contains("'table.optimizer.distinct-agg.split.bucket-num' = '0' is not a positive"),
        "{err}"
    );
}
