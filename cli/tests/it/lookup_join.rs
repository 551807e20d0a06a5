//! Lookup joins (`JOIN t FOR SYSTEM_TIME AS OF s.p ON …`) against a bounded file: matches,
//! LEFT padding, Flink's legacy connector keys, and the uses that are refused.

use std::fs;
use std::path::Path;

use crate::support::{materialized_rows, run_sql, run_sql_materialized};

/// Ten stream rows 1..=10, and a side file mapping 2, 4, 6 (twice) and 8 to names.
fn tables(dir: &Path) -> String {
    let side = dir.join("side.csv");
    fs::write(&side, "2,two\n4,four\n6,six\n6,sechs\n8,eight\n").unwrap();
    format!(
        "CREATE TABLE s (id BIGINT, p AS PROCTIME()) WITH ('connector' = 'datagen', \
         'number-of-rows' = '10', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', \
         'fields.id.end' = '10');
         CREATE TABLE side (k BIGINT, name STRING) WITH ('connector.type' = 'filesystem', \
         'connector.path' = 'file://{}', 'format.type' = 'csv');
         CREATE TABLE ticking (k BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH \
         ('connector' = 'datagen', 'number-of-rows' = '1');
         CREATE TABLE gen (k BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
         CREATE TABLE out (id BIGINT, name STRING) WITH ('connector' = 'blackhole');\n",
        side.display()
    )
}

fn rows(list: &[(&str, &str)]) -> Vec<Vec<String>> {
    list.iter()
        .map(|(a, b)| vec![a.to_string(), b.to_string()])
        .collect()
}

#[test]
fn inner_and_left_lookup_joins_enrich_each_row() {
    for parallelism in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let inner = tables(dir.path())
            + "INSERT INTO out SELECT s.id, t.name FROM s \
               JOIN side FOR SYSTEM_TIME AS OF s.p AS t ON s.id = t.k WHERE t.name <> 'four';";
        run_sql_materialized(&inner, parallelism, &dir.path().join("inner")).unwrap();
        assert_eq!(
            materialized_rows(&dir.path().join("inner"), "out"),
            rows(&[("2", "two"), ("6", "sechs"), ("6", "six"), ("8", "eight")]),
            "p{parallelism}"
        );
        let left = tables(dir.path())
            + "INSERT INTO out SELECT s.id, side.name FROM s \
               LEFT JOIN side FOR SYSTEM_TIME AS OF s.p ON s.id = side.k AND s.id > 4;";
        run_sql_materialized(&left, parallelism, &dir.path().join("left")).unwrap();
        let mut want = rows(&[("6", "sechs"), ("6", "six"), ("8", "eight")]);
        for id in [1, 2, 3, 4, 5, 7, 9, 10] {
            want.push(vec![id.to_string(), String::new()]);
        }
        want.sort();
        assert_eq!(
            materialized_rows(&dir.path().join("left"), "out"),
            want,
            "p{parallelism}"
        );
    }
}

#[test]
fn uses_a_lookup_join_cannot_serve_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "SELECT s.id FROM s JOIN ticking FOR SYSTEM_TIME AS OF s.p AS t ON s.id = t.k;",
            "has a watermark but no PRIMARY KEY",
        ),
        (
            "SELECT s.id FROM s JOIN gen FOR SYSTEM_TIME AS OF s.p AS t ON s.id = t.k;",
            "connector 'datagen' cannot be looked up",
        ),
        (
            "SELECT t.name FROM side FOR SYSTEM_TIME AS OF PROCTIME() AS t;",
            "can only be the right side of a JOIN",
        ),
        (
            "SELECT s.id FROM s FULL JOIN side FOR SYSTEM_TIME AS OF s.p AS t ON s.id = t.k;",
            "a lookup join is INNER or LEFT",
        ),
        (
            "SELECT t.name FROM ticking JOIN side FOR SYSTEM_TIME AS OF ticking.ts AS t \
             ON ticking.k = t.k;",
            "must be FOR SYSTEM_TIME AS OF the left input's processing-time attribute (a \
             PROCTIME() column), not 'ticking.ts'",
        ),
        (
            "SELECT s.id FROM s JOIN side FOR SYSTEM_TIME AS OF s.p AS t ON s.id > t.k;",
            "needs an equality between the stream and a column of table 'side'",
        ),
    ];
    for (query, message) in cases {
        let err = run_sql(&(tables(dir.path()) + query), 1).unwrap_err();
        assert!(err.contains(message), "{query}: {err}");
    }
}
