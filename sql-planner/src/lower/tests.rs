//! Lowering tests: each statement in `golden/` is planned and its job graph, as `eddy
//! explain` prints it, compared with the `.explain` file beside it. A case starts with
//! `-- parallelism: N` (default 1). `EDDY_BLESS=1 cargo nextest run -E 'test(golden)'`
//! rewrites the expected files after a deliberate change; review their diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use connectors::ConnectorRegistry;

use crate::{plan_script, PlanOptions};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lower/golden")
}

fn options(parallelism: usize) -> PlanOptions {
    PlanOptions {
        parallelism,
        settings: vec![],
        connectors: Arc::new(ConnectorRegistry::with_builtins()),
        sinks_to: None,
    }
}

/// The plan of `sql` as `eddy explain` prints its graph, or the planning error.
fn explain(sql: &str, parallelism: usize) -> String {
    match plan_script(sql, &options(parallelism)) {
        Ok(job) => job.graph.to_string(),
        Err(e) => format!("error: {e}\n"),
    }
}

#[test]
fn golden_plans_match_their_explain_text() {
    let bless = std::env::var_os("EDDY_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "the golden cases are missing");
    let mut failed = Vec::new();
    for case in &cases {
        let sql = std::fs::read_to_string(case).unwrap();
        let parallelism = sql
            .lines()
            .find_map(|l| l.strip_prefix("-- parallelism: "))
            .map_or(1, |p| p.trim().parse().unwrap());
        let got = explain(&sql, parallelism);
        let expected_path = case.with_extension("explain");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failed.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                case.display()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn a_parallelism_above_the_max_parallelism_is_refused_at_plan_time() {
    let sql = "SET 'pipeline.max-parallelism' = '4';
        CREATE TABLE s (a BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
        CREATE TABLE t (a BIGINT, n BIGINT) WITH ('connector' = 'blackhole');
        INSERT INTO t SELECT a, COUNT(*) FROM s GROUP BY a;";
    let err = explain(sql, 8);
    assert!(
        err.starts_with("error: ") && err.contains("parallelism 8") && err.contains("is 4"),
        "{err}"
    );
    assert!(!explain(sql, 4).starts_with("error"));
    let bad = sql.replace("'4'", "'0'");
    assert!(explain(&bad, 1).contains("'pipeline.max-parallelism' = '0'"));
}

#[test]
fn the_max_parallelism_follows_flinks_default_rule_unless_set() {
    let sql = "CREATE TABLE s (a BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
        CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole');
        INSERT INTO t SELECT a FROM s;";
    let max = |p, set: &str| {
        let job = plan_script(&format!("{set}{sql}"), &options(p)).unwrap();
        job.config.max_parallelism
    };
    assert_eq!(max(2, ""), 128);
    assert_eq!(max(100, ""), 256);
    assert_eq!(max(2, "SET 'pipeline.max-parallelism' = '4096';"), 4096);
}

#[test]
fn a_sink_that_writes_where_the_job_reads_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.csv"), "1\n").unwrap();
    let job = |sink_path: &Path| {
        format!(
            "CREATE TABLE s (a BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             CREATE TABLE t (a BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
             INSERT INTO t SELECT a FROM s;",
            data.display(),
            sink_path.display()
        )
    };
    for same in [
        data.clone(),
        data.join("."),
        data.join("out"),
        dir.path().to_path_buf(),
    ] {
        let err = explain(&job(&same), 1);
        assert!(err.contains("would read its own output"), "{same:?}: {err}");
    }
    let elsewhere = dir.path().join("elsewhere");
    assert!(!explain(&job(&elsewhere), 1).starts_with("error"));
}
