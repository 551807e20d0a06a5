//! The `eddy` binary: commands, exit codes and error messages.

use std::fs;

use crate::support::{eddy, stderr, stdout};

fn script(dir: &tempfile::TempDir, text: &str) -> String {
    let p = dir.path().join("job.sql");
    fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn bad_sql_names_line_and_column_and_exits_2() {
    let d = tempfile::tempdir().unwrap();
    let f = script(
        &d,
        "CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO t\nSELEC 1;",
    );
    let o = eddy(&["run", &f]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.starts_with("error: ") && e.contains("line 3, column 1"),
        "{e}"
    );
}

#[test]
fn unknown_columns_are_located_by_datafusion_spans() {
    let d = tempfile::tempdir().unwrap();
    let f = script(&d, "CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO t SELECT nope FROM t;");
    let o = eddy(&["explain", &f]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("nope") && e.contains("line 2"), "{e}");
}

#[test]
fn unknown_connectors_and_options_list_the_valid_ones() {
    let d = tempfile::tempdir().unwrap();
    let f = script(
        &d,
        "CREATE TABLE t (a BIGINT) WITH ('connector' = 'kafkaa');\nINSERT INTO t SELECT 1;",
    );
    let o = eddy(&["run", &f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown connector 'kafkaa'")
            && stderr(&o).contains("blackhole, datagen"),
        "{}",
        stderr(&o)
    );

    let f = script(&d, "CREATE TABLE t (a BIGINT) WITH ('connector' = 'datagen', 'rows-per-secnd' = '1');\nINSERT INTO t SELECT 1;");
    let o = eddy(&["run", &f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("'rows-per-secnd'") && stderr(&o).contains("number-of-rows"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_files_and_bad_arguments_exit_2() {
    let o = eddy(&["run", "/nonexistent/job.sql"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read /nonexistent/job.sql"));
    let o = eddy(&["nexmark", "run", "--query", "q99", "--events", "10"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown Nexmark query 'q99'"),
        "{}",
        stderr(&o)
    );
    let o = eddy(&["nexmark", "run", "--query", "q0", "--events", "abc"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "clap reports bad values with exit 2"
    );
}

#[test]
fn explain_prints_operators_parallelism_and_chains() {
    let d = tempfile::tempdir().unwrap();
    let f = script(
        &d,
        "CREATE TABLE g (a BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
         CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO t SELECT a + 1 FROM g WHERE a > 0;",
    );
    let o = eddy(&["explain", &f, "-p", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Source: g") && out.contains("Calc") && out.contains("Sink: t"),
        "{out}"
    );
    assert!(
        out.contains("parallelism 3") && out.contains("FORWARD"),
        "{out}"
    );
    assert!(
        out.contains("Source: g -> Calc (filter, project) -> Sink: t"),
        "{out}"
    );
}

#[test]
fn nexmark_run_json_prints_exactly_one_object() {
    let o = eddy(&[
        "nexmark",
        "run",
        "--query",
        "q0",
        "--events",
        "20000",
        "--parallelism",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for key in [
        "query",
        "events",
        "parallelism",
        "wall_s",
        "cpu_s",
        "events_per_s",
        "events_per_cpu_s",
        "sink_rows",
        "peak_rss_bytes",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {out}");
    }
    assert_eq!(v["events"], 20000);
    assert_eq!(v["parallelism"], 2);
    // 46 of every 50 events are bids.
    let bids = v["sink_rows"].as_u64().unwrap();
    assert!((18_300..=18_500).contains(&bids), "{bids}");
}

#[test]
fn nexmark_generate_writes_streams_with_headers_on_request() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("events");
    let o = eddy(&[
        "nexmark",
        "generate",
        "--events",
        "5000",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "3",
        "--header",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bid = fs::read_to_string(out.join("bid/part-0.csv")).unwrap();
    assert!(
        bid.starts_with("auction,bidder,price,channel,url,dateTime,extra\n"),
        "{}",
        &bid[..80]
    );
    let person = fs::read_to_string(out.join("person/part-0.csv")).unwrap();
    assert_eq!(
        person.lines().count(),
        1 + 100,
        "1 in 50 events is a person"
    );
    assert_eq!(
        fs::read_to_string(out.join("auction/part-0.csv"))
            .unwrap()
            .lines()
            .count(),
        1 + 300
    );
    let again = d.path().join("again");
    eddy(&[
        "nexmark",
        "generate",
        "--events",
        "5000",
        "--out",
        again.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    assert_eq!(
        bid.split_once('\n').unwrap().1,
        fs::read_to_string(again.join("bid/part-0.csv")).unwrap(),
        "same seed, same events; without --header only the header is left out"
    );
    // What `generate` writes by default, `eddy run` reads as it is.
    let job = script(
        &d,
        &format!(
            "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, \
             url STRING, dateTime TIMESTAMP(3), extra STRING) WITH ('connector' = \
             'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             CREATE TABLE n (a BIGINT) WITH ('connector' = 'blackhole');\n\
             INSERT INTO n SELECT auction FROM bid;",
            again.join("bid").display()
        ),
    );
    let o = eddy(&["run", &job]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("4600 rows read, 4600 rows written"),
        "{}",
        stderr(&o)
    );
    let json = d.path().join("json");
    let o = eddy(&[
        "nexmark",
        "generate",
        "--events",
        "500",
        "--out",
        json.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(o.status.success());
    let first = fs::read_to_string(json.join("bid/part-0.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert!(
        v["dateTime"]
            .as_str()
            .unwrap()
            .starts_with("2015-07-15 00:00:00"),
        "{v}"
    );
}

#[test]
fn nexmark_suite_writes_json_a_table_and_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("suite");
    let o = eddy(&[
        "nexmark",
        "suite",
        "--queries",
        "q2,q6",
        "--events",
        "20000",
        "--runs",
        "2",
        "-p",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let progress = stderr(&o);
    assert!(
        progress.contains("[1/2] q2") && progress.contains("events/CPU-s"),
        "{progress}"
    );
    assert!(progress.contains("[2/2] q6"), "{progress}");
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json[0]["query"], "q2");
    assert_eq!(json[0]["status"], "ran");
    assert_eq!(json[0]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(json[0]["median"]["events"], 20000);
    assert_eq!(json[0]["median"]["parallelism"], 1);
    assert_eq!(json[1]["query"], "q6");
    assert_eq!(json[1]["status"], "ran");
    let table = fs::read_to_string(out.join("results.md")).unwrap();
    assert!(table.contains("| query | events | cores used |"), "{table}");
    assert!(table.contains("| q2 | 20000 |"), "{table}");
    assert!(table.contains("| q6 | 20000 |"), "{table}");
    assert!(table.contains("![throughput per query](throughput.svg)"));
    let svg = fs::read_to_string(out.join("throughput.svg")).unwrap();
    assert!(
        svg.contains("\nq2\n") && !svg.contains("\nq3\n"),
        "only q2 ran"
    );
    assert!(fs::metadata(out.join("throughput.png")).unwrap().len() > 1000);

    let o = eddy(&["nexmark", "suite", "--queries", "q0,q99"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown query 'q99'") && stderr(&o).contains("q22"));
}

#[test]
fn nexmark_chart_draws_a_json_chart_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("compare.json");
    let chart = serde_json::json!({
        "title": "eddy vs Apache Flink",
        "categories": ["q0", "q1"],
        "panels": [{"y_label": "M events/s", "series": [
            {"name": "eddy", "values": [4.0, 3.5]},
            {"name": "Flink", "values": [1.0, null]}
        ]}]
    });
    fs::write(&spec, chart.to_string()).unwrap();
    let o = eddy(&["nexmark", "chart", spec.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = fs::read_to_string(dir.path().join("compare.svg")).unwrap();
    assert!(svg.contains("eddy vs Apache Flink") && svg.contains("Flink"));
    assert!(dir.path().join("compare.png").exists());

    fs::write(
        &spec,
        r#"{"title": "t", "categories": ["q0"], "panels": []}"#,
    )
    .unwrap();
    let o = eddy(&["nexmark", "chart", spec.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no categories or no panels"),
        "{}",
        stderr(&o)
    );
    let o = eddy(&["nexmark", "chart", "/nonexistent/chart.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read /nonexistent/chart.json"));
}

#[test]
fn a_reader_that_goes_away_ends_eddy_without_a_panic() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args([
            "nexmark", "run", "--query", "q0", "--events", "1000", "-p", "1", "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nothing reads what it prints.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
