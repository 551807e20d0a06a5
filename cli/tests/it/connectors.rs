//! Connectors end to end: datagen, filesystem (csv, json, parse errors), print, statement sets.

use std::fs;

use kernel::metrics::JobMetrics;

use crate::support::{eddy, run_sql, sorted_csv_rows, stderr, stdout};

#[test]
fn datagen_sequences_and_bounded_random_columns() {
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE gen (id BIGINT, v INT, name STRING) WITH (
            'connector' = 'datagen', 'rows-per-second' = '1000000',
            'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000',
            'fields.v.min' = '5', 'fields.v.max' = '9', 'fields.name.length' = '4');
         CREATE TABLE out (id BIGINT, v INT, name STRING) WITH (
            'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO out SELECT id, v, name FROM gen;",
        dir.path().display()
    );
    let m = run_sql(&sql, 2).unwrap();
    assert_eq!(JobMetrics::get(&m.sink_rows), 1000);
    let rows = sorted_csv_rows(dir.path());
    let mut ids: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    ids.sort();
    assert_eq!(
        ids,
        (1..=1000).collect::<Vec<_>>(),
        "each sequence value exactly once over 2 subtasks"
    );
    assert!(rows
        .iter()
        .all(|r| (5..=9).contains(&r[1].parse::<i32>().unwrap()) && r[2].len() == 4));
}

#[test]
fn filesystem_csv_and_json_round_trip_with_computed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    fs::write(
        &input,
        "1,apple,2.50,2020-01-01 10:00:00.000\n2,Pear,3.25,2020-01-01 11:30:00.500\n",
    )
    .unwrap();
    let json_out = dir.path().join("json");
    let sql = format!(
        "CREATE TABLE src (id INT, name STRING, price DECIMAL(10, 2), ts TIMESTAMP(3),
             up AS UPPER(name), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
           WITH ('connector' = 'filesystem', 'path' = 'file://{}', 'format' = 'csv');
         CREATE TABLE dst (id INT, up STRING, total DECIMAL(12, 2), ts TIMESTAMP(3))
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
         INSERT INTO dst SELECT id, up, price * 2, ts FROM src WHERE id > 0;",
        input.display(),
        json_out.display()
    );
    run_sql(&sql, 1).unwrap();
    let mut lines: Vec<String> = crate::support::data_files(&json_out)
        .iter()
        .flat_map(|f| {
            fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].contains(r#""up":"APPLE""#)
            && lines[0].contains(r#""ts":"2020-01-01 10:00:00.000""#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""total":"6.50""#) || lines[1].contains(r#""total":6.50"#),
        "{}",
        lines[1]
    );

    // And back: the JSON files read with the same schema.
    let csv_out = dir.path().join("csv");
    let sql = format!(
        "CREATE TABLE j (id INT, up STRING, total DECIMAL(12, 2), ts TIMESTAMP(3))
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
         CREATE TABLE c (id INT, up STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO c SELECT id, up FROM j;",
        json_out.display(),
        csv_out.display()
    );
    run_sql(&sql, 1).unwrap();
    assert_eq!(
        sorted_csv_rows(&csv_out),
        vec![
            vec!["1".to_string(), "APPLE".into()],
            vec!["2".into(), "PEAR".into()]
        ]
    );
}

fn bad_input_script(dir: &std::path::Path, format: &str, ignore: bool) -> String {
    let out = dir.join(format!("out-{format}-{ignore}"));
    format!(
        "CREATE TABLE src (id BIGINT, name STRING) WITH ('connector' = 'filesystem', 'path' = '{}',
           'format' = '{format}', '{format}.ignore-parse-errors' = '{ignore}');
         CREATE TABLE dst (id BIGINT, name STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO dst SELECT * FROM src;",
        dir.join(format!("in.{format}")).display(),
        out.display()
    )
}

#[test]
fn malformed_records_fail_the_job_naming_file_and_line_or_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("in.csv"), "1,a\nnot-a-number,b\n3,c\n").unwrap();
    fs::write(
        dir.path().join("in.json"),
        "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \n{\"id\": 3, \"name\": \"c\"}\n",
    )
    .unwrap();
    for format in ["csv", "json"] {
        let err = run_sql(&bad_input_script(dir.path(), format, false), 1).unwrap_err();
        assert!(
            err.contains(&format!("in.{format}")) && err.contains("line 2"),
            "{format}: {err}"
        );
        let m = run_sql(&bad_input_script(dir.path(), format, true), 1).unwrap();
        assert_eq!(
            JobMetrics::get(&m.sink_rows),
            2,
            "{format}: good records kept"
        );
        assert_eq!(
            JobMetrics::get(&m.skipped_records),
            1,
            "{format}: bad record counted"
        );
        assert!(
            m.notes().iter().any(|n| n.contains("skipped 1 malformed")),
            "{format}"
        );
    }
}

#[test]
fn an_unclosed_quote_is_reported_with_the_lines_it_took() {
    let dir = tempfile::tempdir().unwrap();
    // The quote opened on line 2 is never closed: csv reads the rest of the file as one
    // field of one record, which is malformed. The note says how many lines went with it.
    let mut text = "1,a\n\"2,open\n".to_string();
    for i in 3..=10 {
        text.push_str(&format!("{i},x\n"));
    }
    fs::write(dir.path().join("in.csv"), text).unwrap();
    let m = run_sql(&bad_input_script(dir.path(), "csv", true), 1).unwrap();
    assert_eq!(JobMetrics::get(&m.sink_rows), 1);
    assert_eq!(JobMetrics::get(&m.skipped_records), 1);
    let note = m.notes().join("\n");
    assert!(
        note.contains("skipped 1 malformed record (9 lines)")
            && note.contains("the record at line 2 ran on for 9 lines"),
        "{note}"
    );
}

#[test]
fn a_success_file_marks_a_table_without_partitions_once_its_input_ended() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sql = format!(
        "CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10',
            'rows-per-second' = '1000000');
         CREATE TABLE out (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}',
            'format' = 'csv', 'sink.partition-commit.policy.kind' = 'success-file',
            'sink.partition-commit.success-file.name' = '_DONE');
         INSERT INTO out SELECT id FROM gen;",
        out.display()
    );
    run_sql(&sql, 2).unwrap();
    assert!(out.join("_DONE").exists());
    assert_eq!(sorted_csv_rows(&out).len(), 10);
    let bad = sql.replace("'success-file'", "'metastore'");
    let err = run_sql(&bad, 1).unwrap_err();
    assert!(err.contains("'metastore' is not supported"), "{err}");
}

#[test]
fn print_sink_writes_flink_row_format_and_statement_sets_run_as_one_job() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("job.sql");
    fs::write(
        &script,
        "CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3',
            'fields.id.kind' = 'sequence', 'fields.id.start' = '7', 'fields.id.end' = '9');
         CREATE TABLE p1 (id BIGINT, s STRING) WITH ('connector' = 'print', 'print-identifier' = 'one');
         CREATE TABLE p2 (id BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'two');
         EXECUTE STATEMENT SET BEGIN
           INSERT INTO p1 SELECT id, CAST(NULL AS STRING) FROM gen WHERE id <> 8;
           INSERT INTO p2 SELECT id * 10 FROM gen;
         END;",
    )
    .unwrap();
    let o = eddy(&["run", script.to_str().unwrap(), "--parallelism", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "one> +I[7, null]",
            "one> +I[9, null]",
            "two> +I[70]",
            "two> +I[80]",
            "two> +I[90]"
        ]
    );
}

#[test]
fn expressions_never_fail_on_rows_the_filter_drops() {
    let dir = tempfile::tempdir().unwrap();
    let sql = format!(
        "CREATE TABLE g (a BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '100',
            'fields.a.kind' = 'sequence', 'fields.a.start' = '0', 'fields.a.end' = '99');
         CREATE TABLE o (a BIGINT, q BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO o SELECT a, 1000 / (a - 7) FROM g WHERE a <> 7;",
        dir.path().display()
    );
    let m = run_sql(&sql, 1).unwrap();
    assert_eq!(JobMetrics::get(&m.sink_rows), 99);
    let sql_all = sql.replace("WHERE a <> 7", "WHERE a >= 0");
    let err = run_sql(&sql_all, 1).unwrap_err();
    assert!(err.to_lowercase().contains("divide by zero"), "{err}");
}
