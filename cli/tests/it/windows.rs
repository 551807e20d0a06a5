//! Window table functions end to end: TUMBLE, HOP and CUMULATE aggregations, aggregations of
//! their results and window joins, from SQL text over CSV files, at parallelism 1 and 2
//! (two-phase), with results worked out by hand from Flink's documented semantics; and the
//! plan errors of what is not supported.

use std::fs;
use std::path::Path;

use crate::support::{run_sql, sorted_csv_rows};

/// Bids in two time-ordered files, one per subtask at parallelism 2. Seconds after
/// 2015-07-15 00:00:00: auction 1 at 0.5, 1.5, 2.1, 20.0; auction 2 at 1.0, 3.0, 9.999.
fn write_bids(dir: &Path) {
    let events = dir.join("bids");
    fs::create_dir_all(&events).unwrap();
    fs::write(
        events.join("a.csv"),
        "1,10,100,2015-07-15 00:00:00.500\n\
         1,11,200,2015-07-15 00:00:01.500\n\
         1,13,50,2015-07-15 00:00:02.100\n\
         1,15,500,2015-07-15 00:00:20.000\n",
    )
    .unwrap();
    fs::write(
        events.join("b.csv"),
        "2,16,600,2015-07-15 00:00:01.000\n\
         2,12,300,2015-07-15 00:00:03.000\n\
         2,14,400,2015-07-15 00:00:09.999\n",
    )
    .unwrap();
}

fn bid_table(dir: &Path) -> String {
    format!(
        "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
           WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');",
        dir.join("bids").display()
    )
}

/// Window state written to the state table past one buffered group or row.
const SPILL: &str = "SET 'table.exec.window-agg.buffer-size-limit' = '1';";

/// Runs `query` (a SELECT) into CSV files; its rows, sorted.
fn run(dir: &Path, columns: &str, query: &str, parallelism: usize) -> Vec<Vec<String>> {
    run_with(dir, "", columns, query, parallelism)
}

/// [`run`] after `settings` (`SET` statements); writes to `out-<settings hash>-…`.
fn run_with(
    dir: &Path,
    settings: &str,
    columns: &str,
    query: &str,
    parallelism: usize,
) -> Vec<Vec<String>> {
    let out = dir.join(format!(
        "out-{parallelism}-{}-{}",
        settings.len(),
        query.len()
    ));
    let sql = format!(
        "{settings}
         {}
         CREATE VIEW tagged AS
           SELECT *, CASE WHEN bidder > 12 THEN 'hi' ELSE 'lo' END AS tag FROM bid;
         CREATE TABLE out ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO out {query};",
        bid_table(dir),
        out.display()
    );
    run_sql(&sql, parallelism).unwrap_or_else(|e| panic!("{query}: {e}"));
    sorted_csv_rows(&out)
}

fn rows(text: &[&str]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = text
        .iter()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    rows.sort();
    rows
}

const T: &str = "2015-07-15 00:00:";

fn at(seconds: &str) -> String {
    format!("{T}{seconds}.000")
}

/// Expected rows from (values, start second, end second), sorted.
fn windows(expected: &[(&str, &str, &str)]) -> Vec<Vec<String>> {
    let lines: Vec<String> = expected
        .iter()
        .map(|(v, s, e)| format!("{v},{},{}", at(s), at(e)))
        .collect();
    rows(&lines.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn tumbling_window_aggregates_with_filter_clauses() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let query = "SELECT auction, count(*), sum(price), max(price) FILTER (WHERE bidder > 10),
                        window_start, window_end
                 FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND))
                 GROUP BY auction, window_start, window_end";
    let columns =
        "auction BIGINT, n BIGINT, total BIGINT, mx BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3)";
    let want = windows(&[
        ("1,2,300,200", "00", "02"),
        ("2,1,600,600", "00", "02"),
        ("1,1,50,50", "02", "04"),
        ("2,1,300,300", "02", "04"),
        ("2,1,400,400", "08", "10"),
        ("1,1,500,500", "20", "22"),
    ]);
    for p in [1, 2] {
        assert_eq!(run(dir.path(), columns, query, p), want, "parallelism {p}");
    }
}

#[test]
fn hopping_windows_without_keys_and_window_time() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let query = "SELECT count(*), window_start, window_end, window_time
                 FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '4' SECOND))
                 GROUP BY window_start, window_end, window_time";
    let columns = "n BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3), wt TIMESTAMP(3)";
    let window = |n: u32, s: &str, e: &str, t: &str| format!("{n},{s},{},{T}{t}.999", at(e));
    let want = [
        window(3, "2015-07-14 23:59:58.000", "02", "01"),
        window(5, &at("00"), "04", "03"),
        window(2, &at("02"), "06", "05"),
        window(1, &at("06"), "10", "09"),
        window(1, &at("08"), "12", "11"),
        window(1, &at("18"), "22", "21"),
        window(1, &at("20"), "24", "23"),
    ];
    let want = rows(&want.iter().map(String::as_str).collect::<Vec<_>>());
    for p in [1, 2] {
        assert_eq!(run(dir.path(), columns, query, p), want, "parallelism {p}");
    }
}

#[test]
fn cumulating_windows_emit_each_step_and_skip_empty_ones() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let query = "SELECT auction, sum(price), window_start, window_end
                 FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '6' SECOND))
                 GROUP BY auction, window_start, window_end";
    let columns = "auction BIGINT, total BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3)";
    let want = windows(&[
        ("1,300", "00", "02"),
        ("1,350", "00", "04"),
        ("1,350", "00", "06"),
        ("2,600", "00", "02"),
        ("2,900", "00", "04"),
        ("2,900", "00", "06"),
        // [6, 8) holds nothing of auction 2: no row.
        ("2,400", "06", "10"),
        ("2,400", "06", "12"),
        ("1,500", "18", "22"),
        ("1,500", "18", "24"),
    ]);
    for p in [1, 2] {
        assert_eq!(run(dir.path(), columns, query, p), want, "parallelism {p}");
    }
}

#[test]
fn windows_without_keys_or_aggregates_list_the_windows_with_data() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let query = "SELECT window_start, window_end
                 FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
                 GROUP BY window_start, window_end";
    let want = vec![vec![at("00"), at("10")], vec![at("20"), at("30")]];
    for p in [1, 2] {
        let got = run(dir.path(), "ws TIMESTAMP(3), we TIMESTAMP(3)", query, p);
        assert_eq!(got, want, "parallelism {p}");
    }
    // Hopping windows keep their slices in the state table, here with no state columns.
    let hop = "SELECT window_start, window_end
               FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND, INTERVAL '10' SECOND))
               GROUP BY window_start, window_end";
    let columns = "ws TIMESTAMP(3), we TIMESTAMP(3)";
    let windows = run(dir.path(), columns, hop, 1);
    assert!(windows.len() >= 4, "{windows:?}");
    assert_eq!(run_with(dir.path(), SPILL, columns, hop, 2), windows);
}

/// Per auction and 2 s window: the bid count, and the top price of bidders above 11.
const COUNTS: &str = "SELECT auction, count(*) AS n, window_start, window_end
    FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND))
    GROUP BY auction, window_start, window_end";
const TOPS: &str = "SELECT auction, max(price) AS mx, window_start, window_end
    FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND))
    WHERE bidder > 11
    GROUP BY auction, window_start, window_end";

#[test]
fn window_joins_meet_rows_of_the_same_window_and_key() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let columns = "auction BIGINT, n BIGINT, mx BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3)";
    let join = |kind: &str| {
        format!(
            "SELECT C.auction, C.n, T.mx, C.window_start, C.window_end
             FROM ({COUNTS}) C {kind} JOIN ({TOPS}) T
             ON C.auction = T.auction AND C.window_start = T.window_start
                AND C.window_end = T.window_end"
        )
    };
    // Auction 1's first window has no bidder above 11: no top price, no inner row.
    let inner = [
        ("2,1,600", "00", "02"),
        ("1,1,50", "02", "04"),
        ("2,1,300", "02", "04"),
        ("2,1,400", "08", "10"),
        ("1,1,500", "20", "22"),
    ];
    let mut left = inner.to_vec();
    left.push(("1,2,", "00", "02"));
    for p in [1, 2] {
        let got = run(dir.path(), columns, &join(""), p);
        assert_eq!(got, windows(&inner), "inner, parallelism {p}");
        let got = run(dir.path(), columns, &join("LEFT"), p);
        assert_eq!(got, windows(&left), "left, parallelism {p}");
        // Every row through the state table (a join keyed by a column: its key groups).
        let got = run_with(dir.path(), SPILL, columns, &join("LEFT"), p);
        assert_eq!(got, windows(&left), "left, stored, parallelism {p}");
    }
}

#[test]
fn q5_in_miniature_aggregates_window_results_again_and_joins_them() {
    // Nexmark q5's shape: bids per auction per 4 s window sliding by 2 s, the top count of
    // each window (an aggregation over the windows of the first), and the auctions that
    // reach it (a window join with a non-equality condition).
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let counts = "SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
        FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '4' SECOND))
        GROUP BY auction, window_start, window_end";
    let query = format!(
        "SELECT A.auction, A.num, M.starttime, M.endtime
         FROM ({counts}) A
         JOIN (SELECT max(num) AS maxn, starttime, endtime FROM ({counts}) GROUP BY starttime, endtime) M
         ON A.starttime = M.starttime AND A.endtime = M.endtime AND A.num >= M.maxn"
    );
    let columns = "auction BIGINT, num BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3)";
    // Counts: [-2, 2) a1 2, a2 1; [0, 4) a1 3, a2 2; [2, 6) a1 1, a2 1; then one bid each.
    let first = format!("1,2,2015-07-14 23:59:58.000,{}", at("02"));
    let mut want = windows(&[
        ("1,3", "00", "04"),
        ("1,1", "02", "06"),
        ("2,1", "02", "06"),
        ("2,1", "06", "10"),
        ("2,1", "08", "12"),
        ("1,1", "18", "22"),
        ("1,1", "20", "24"),
    ]);
    want.extend(rows(&[first.as_str()]));
    want.sort();
    for p in [1, 2] {
        assert_eq!(run(dir.path(), columns, &query, p), want, "parallelism {p}");
        // Joined from the state table (a join hashed by the window end: its key groups).
        let got = run_with(dir.path(), SPILL, columns, &query, p);
        assert_eq!(got, want, "stored, parallelism {p}");
    }
}

#[test]
fn session_windows_in_both_syntaxes_merge_rows_closer_than_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let columns = "auction BIGINT, n BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3)";
    // Nexmark q11's form: a legacy group window with its auxiliary functions.
    let legacy = "SELECT B.auction, count(*),
                         SESSION_START(B.`dateTime`, INTERVAL '5' SECOND),
                         SESSION_END(B.`dateTime`, INTERVAL '5' SECOND)
                  FROM bid B
                  GROUP BY B.auction, SESSION(B.`dateTime`, INTERVAL '5' SECOND)";
    // Auction 2's bid at 9.999 is 6.999 s after the one at 3.0: a session of its own.
    let want = rows(&[
        &format!("1,3,{T}00.500,{T}07.100"),
        &format!("1,1,{T}20.000,{T}25.000"),
        &format!("2,2,{T}01.000,{T}08.000"),
        &format!("2,1,{T}09.999,{T}14.999"),
    ]);
    // The table function form; a gap of exactly 6.999 s makes auction 2's windows touch, and
    // touching windows merge (Flink's TimeWindow.intersects).
    let tvf = "SELECT auction, count(*), window_start, window_end
               FROM TABLE(SESSION(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '6.999' SECOND))
               GROUP BY auction, window_start, window_end";
    let want_tvf = rows(&[
        &format!("1,3,{T}00.500,{T}09.099"),
        &format!("1,1,{T}20.000,{T}26.999"),
        &format!("2,3,{T}01.000,{T}16.998"),
    ]);
    for p in [1, 2] {
        assert_eq!(
            run(dir.path(), columns, legacy, p),
            want,
            "legacy, parallelism {p}"
        );
        assert_eq!(
            run(dir.path(), columns, tvf, p),
            want_tvf,
            "TVF, parallelism {p}"
        );
        // Every row through the state table, the sessions merging there.
        assert_eq!(
            run_with(dir.path(), SPILL, columns, tvf, p),
            want_tvf,
            "TVF, stored, parallelism {p}"
        );
    }
}

#[test]
fn legacy_tumble_and_hop_windows_run_as_their_table_functions() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let tumble = "SELECT auction, count(*), sum(price),
                         TUMBLE_START(`dateTime`, INTERVAL '2' SECOND),
                         TUMBLE_END(`dateTime`, INTERVAL '2' SECOND)
                  FROM bid GROUP BY TUMBLE(`dateTime`, INTERVAL '2' SECOND), auction";
    let want = windows(&[
        ("1,2,300", "00", "02"),
        ("2,1,600", "00", "02"),
        ("1,1,50", "02", "04"),
        ("2,1,300", "02", "04"),
        ("2,1,400", "08", "10"),
        ("1,1,500", "20", "22"),
    ]);
    let columns = "auction BIGINT, n BIGINT, total BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3)";
    // Legacy HOP takes the slide, then the size, as the table function does.
    let hop = "SELECT count(*), HOP_START(`dateTime`, INTERVAL '2' SECOND, INTERVAL '4' SECOND),
                      HOP_END(`dateTime`, INTERVAL '2' SECOND, INTERVAL '4' SECOND)
               FROM bid GROUP BY HOP(`dateTime`, INTERVAL '2' SECOND, INTERVAL '4' SECOND)";
    let mut want_hop = windows(&[
        ("5", "00", "04"),
        ("2", "02", "06"),
        ("1", "06", "10"),
        ("1", "08", "12"),
        ("1", "18", "22"),
        ("1", "20", "24"),
    ]);
    want_hop.extend(rows(&[&format!("3,2015-07-14 23:59:58.000,{}", at("02"))]));
    want_hop.sort();
    for p in [1, 2] {
        assert_eq!(run(dir.path(), columns, tumble, p), want, "parallelism {p}");
        let got = run(
            dir.path(),
            "n BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3)",
            hop,
            p,
        );
        assert_eq!(got, want_hop, "parallelism {p}");
    }
}

#[test]
fn q7_in_miniature_joins_window_maxima_back_to_their_bids() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    // Window [0, 10 s) has maximum 600 (the bid at 1.0), [20 s, 30 s) has 500 (at 20.0); the
    // bid at 1.0 is also within 10 s before [0, 10)'s end. A regular join, as Flink plans it.
    let query = "SELECT B.auction, B.price, B.`dateTime`
        FROM bid B JOIN (
          SELECT MAX(price) AS maxprice, window_end AS `dateTime`
          FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
          GROUP BY window_start, window_end) B1
        ON B.price = B1.maxprice
        WHERE B.`dateTime` BETWEEN B1.`dateTime` - INTERVAL '10' SECOND AND B1.`dateTime`";
    let want = rows(&[
        &format!("2,600,{}", at("01")),
        &format!("1,500,{}", at("20")),
    ]);
    for p in [1, 2] {
        let got = run(
            dir.path(),
            "auction BIGINT, price BIGINT, t TIMESTAMP(3)",
            query,
            p,
        );
        assert_eq!(got, want, "parallelism {p}");
    }
    // The bids side forgets bids 10 s older than what the windows can still bring.
    let plan = crate::support::explain_sql(
        &format!("{}\nCREATE TABLE out (a BIGINT, p BIGINT, t TIMESTAMP(3)) WITH ('connector' = 'blackhole');\nINSERT INTO out {query};", bid_table(dir.path())),
        1,
    );
    assert!(
        plan.contains("dateTime expires below watermark -9998 ms"),
        "{plan}"
    );
}

#[test]
fn processing_time_windows_count_every_row_by_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    // Over the view as q12 writes it.
    let queries = [
        "SELECT auction, count(*), window_start, window_end
         FROM TABLE(TUMBLE(TABLE B, DESCRIPTOR(pt), INTERVAL '1' HOUR))
         GROUP BY auction, window_start, window_end",
        "SELECT auction, count(*), TUMBLE_START(pt, INTERVAL '1' HOUR),
                TUMBLE_END(pt, INTERVAL '1' HOUR)
         FROM B GROUP BY auction, TUMBLE(pt, INTERVAL '1' HOUR)",
        "SELECT auction, count(*), window_start, window_end
         FROM TABLE(SESSION(TABLE B, DESCRIPTOR(pt), INTERVAL '1' HOUR))
         GROUP BY auction, window_start, window_end",
    ];
    let now = chrono::Utc::now().naive_utc();
    for (i, query) in queries.iter().enumerate() {
        for p in [1, 2] {
            let out = dir.path().join(format!("out-{i}-{p}"));
            let sql = format!(
                "{}
                 CREATE VIEW B AS SELECT *, PROCTIME() AS pt FROM bid;
                 CREATE TABLE out (auction BIGINT, n BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3))
                   WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
                 INSERT INTO out {query};",
                bid_table(dir.path()),
                out.display()
            );
            run_sql(&sql, p).unwrap_or_else(|e| panic!("{query}: {e}"));
            let got = sorted_csv_rows(&out);
            // Event time plays no part: the bid at 20 s is not late, whatever the watermark.
            let mut counts = std::collections::BTreeMap::new();
            for r in &got {
                *counts.entry(r[0].clone()).or_insert(0) += r[1].parse::<i64>().unwrap();
                let start =
                    chrono::NaiveDateTime::parse_from_str(&r[2], "%Y-%m-%d %H:%M:%S%.f").unwrap();
                assert!(
                    (start - now).num_hours().abs() <= 1,
                    "query {i}: windows of the wall clock, not of the rows: {r:?}"
                );
            }
            let want = [("1".to_string(), 4), ("2".to_string(), 3)].into();
            assert_eq!(counts, want, "query {i}, parallelism {p}: {got:?}");
        }
    }
}

#[test]
fn unsupported_window_uses_are_refused_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let table = bid_table(dir.path());
    let cases = [
        (
            "SELECT count(*) FROM bid a JOIN bid b ON a.auction = b.auction GROUP BY SESSION(a.`dateTime`, INTERVAL '5' SECOND)",
            "GROUP BY SESSION(…) over a join is not supported yet",
        ),
        (
            "SELECT TUMBLE_START(`dateTime`, INTERVAL '5' SECOND) FROM bid GROUP BY SESSION(`dateTime`, INTERVAL '5' SECOND)",
            "TUMBLE_START in a query grouped by SESSION",
        ),
        (
            "SELECT auction, count(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND)) GROUP BY auction, window_start",
            "must GROUP BY window_start and window_end",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '5' SECOND))",
            "must be followed by GROUP BY window_start",
        ),
        (
            "SELECT count(*) FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '5' SECOND)) GROUP BY window_start, window_end",
            "must be a multiple of its step",
        ),
        (
            "SELECT count(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(price), INTERVAL '5' SECOND)) GROUP BY window_start, window_end",
            "the time column 'price' must be a timestamp",
        ),
        (
            "SELECT count(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '1' MONTH)) GROUP BY window_start, window_end",
            "must be a day-time interval",
        ),
        (
            "SELECT a.price FROM bid a WHERE a.auction IN (SELECT b.auction FROM bid b WHERE b.price > 10)",
            "a semi or anti join (LeftSemi, from EXISTS or IN with a subquery) is not supported yet",
        ),
        (
            "SELECT C.n FROM (SELECT count(*) AS n, window_start, window_end FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND)) GROUP BY window_start, window_end) C JOIN (SELECT count(*) AS n, window_start, window_end FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '4' SECOND)) GROUP BY window_start, window_end) D ON C.window_start = D.window_start AND C.window_end = D.window_end",
            "needs the same windows on both sides",
        ),
    ];
    for (query, message) in cases {
        let err = run_sql(&format!("{table}\n{query};"), 1).unwrap_err();
        assert!(err.contains(message), "{query}: {err}");
        assert!(err.contains("line 4"), "{query}: {err}");
    }
}

/// Plans a job over the bids of `dir` with `set` (`SET` statements) ahead of it.
fn plan_bids_after(
    dir: &Path,
    set: &str,
) -> Result<sql_planner::PlannedJob, sql_planner::PlanError> {
    let sql = format!(
        "{set}\n{}\nCREATE TABLE out (n BIGINT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out SELECT price FROM bid;",
        bid_table(dir)
    );
    let opts = sql_planner::PlanOptions {
        parallelism: 1,
        settings: vec![],
        connectors: std::sync::Arc::new(crate::support::registry()),
        sinks_to: None,
    };
    sql_planner::plan_script(&sql, &opts)
}

#[test]
fn the_source_idle_timeout_is_read_from_the_script() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let plan = |set: &str| plan_bids_after(dir.path(), set).map(|j| j.config.source_idle_timeout);
    assert_eq!(plan("").unwrap(), None, "Flink's default: never idle");
    assert_eq!(
        plan("SET 'table.exec.source.idle-timeout' = '5 s';").unwrap(),
        Some(std::time::Duration::from_secs(5))
    );
    assert_eq!(
        plan("SET 'table.exec.source.idle-timeout' = '0';").unwrap(),
        None
    );
    let err = plan("SET 'table.exec.source.idle-timeout' = 'soon';").unwrap_err();
    assert!(err.to_string().contains("is not a duration"), "{err}");
}

#[test]
fn the_state_memory_budget_is_read_as_a_memory_size() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let plan = |set: &str| plan_bids_after(dir.path(), set).map(|j| j.config.state_memory_budget);
    let key = "state.backend.gemini.memory-budget";
    assert_eq!(plan("").unwrap(), None, "gemini-state's default");
    for (v, bytes) in [
        ("64 mb", 64 << 20),
        ("1g", 1 << 30),
        ("512KB", 512 << 10),
        ("4096", 4096),
    ] {
        assert_eq!(
            plan(&format!("SET '{key}' = '{v}';")).unwrap(),
            Some(bytes),
            "{v}"
        );
    }
    for v in ["lots", "0", "12 parsecs", "-1 mb"] {
        let err = plan(&format!("SET '{key}' = '{v}';")).unwrap_err();
        assert!(
            err.to_string().contains("is not a memory size"),
            "{v}: {err}"
        );
    }
}

#[test]
fn the_blob_threshold_is_read_as_a_memory_size_and_zero_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    let plan = |set: &str| plan_bids_after(dir.path(), set).map(|j| j.config.state_blob_min_bytes);
    let key = "state.backend.gemini.blob-min-size";
    assert_eq!(plan("").unwrap(), None, "gemini-state's default");
    assert_eq!(plan(&format!("SET '{key}' = '4 kb';")).unwrap(), Some(4096));
    assert_eq!(plan(&format!("SET '{key}' = '0';")).unwrap(), Some(0));
    let err = plan(&format!("SET '{key}' = 'big';")).unwrap_err();
    assert!(err.to_string().contains("is not a memory size"), "{err}");
}

#[test]
fn windows_written_to_the_state_table_at_every_group_give_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    // Two key columns, one a string: keys travel through the state table as arrow rows.
    let query = "SELECT auction, tag, count(*), max(price), window_start, window_end
                 FROM TABLE(HOP(TABLE tagged, DESCRIPTOR(`dateTime`),
                                INTERVAL '2' SECOND, INTERVAL '4' SECOND))
                 GROUP BY auction, tag, window_start, window_end";
    let columns =
        "auction BIGINT, tag STRING, n BIGINT, mx BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3)";
    let buffered = run(dir.path(), columns, query, 1);
    // By hand: 7 rows in 2 windows each, less 2 where auction 1's two 'lo' rows share theirs.
    assert_eq!(buffered.len(), 12, "{buffered:?}");
    let spill = SPILL;
    for p in [1, 2] {
        assert_eq!(
            run_with(dir.path(), spill, columns, query, p),
            buffered,
            "parallelism {p}"
        );
    }
    // The runtime reports the operators' state: some was stored, none is left at the end.
    let sql = format!("{spill} {} SELECT count(*) FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '4' SECOND)) GROUP BY auction, window_start, window_end;", bid_table(dir.path()));
    let state = run_sql(&sql, 2).unwrap().state();
    assert!(state.values().any(|r| r.peak_entries > 0), "{state:?}");
    assert!(
        state.values().all(|r| r.entries == 0),
        "state left: {state:?}"
    );
    let bad = format!(
        "SET 'table.exec.window-agg.buffer-size-limit' = 'lots'; {} SELECT * FROM bid;",
        bid_table(dir.path())
    );
    let err = run_sql(&bad, 1).unwrap_err();
    assert!(err.contains("is not a positive whole number"), "{err}");
}

#[test]
fn current_watermark_is_what_the_operator_has_seen_and_filters_late_rows() {
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path());
    // a.csv grows to 8192 rows, the file source's batch: its rows all come before any
    // watermark (NULL); b.csv's in the next batch, after the one a.csv made, 00:20 − 4 s.
    let mut a = String::new();
    for i in 0..8188 {
        a.push_str(&format!("3,1,1,2015-07-15 00:00:00.{:03}\n", i % 1000));
    }
    let a_csv = dir.path().join("bids/a.csv");
    a.push_str(&fs::read_to_string(&a_csv).unwrap());
    fs::write(&a_csv, a).unwrap();
    let query = "SELECT auction, price, CURRENT_WATERMARK(`dateTime`) FROM bid WHERE auction < 3";
    let columns = "auction BIGINT, price BIGINT, wm TIMESTAMP(3)";
    let wm = at("16");
    let want = rows(&[
        "1,100,",
        "1,200,",
        "1,50,",
        "1,500,",
        &format!("2,600,{wm}"),
        &format!("2,300,{wm}"),
        &format!("2,400,{wm}"),
    ]);
    assert_eq!(run(dir.path(), columns, query, 1), want);
    // Flink's idiom for dropping late rows: all of b.csv's are behind the watermark.
    let query = "SELECT auction, price FROM bid
                 WHERE auction < 3 AND (CURRENT_WATERMARK(`dateTime`) IS NULL
                                        OR `dateTime` > CURRENT_WATERMARK(`dateTime`))";
    let want = rows(&["1,100", "1,200", "1,50", "1,500"]);
    assert_eq!(
        run(dir.path(), "auction BIGINT, price BIGINT", query, 1),
        want
    );
    // Only a rowtime attribute has a watermark.
    let sql = format!(
        "{} SELECT CURRENT_WATERMARK(price) FROM bid;",
        bid_table(dir.path())
    );
    let err = run_sql(&sql, 1).unwrap_err();
    assert!(err.contains("CURRENT_WATERMARK"), "{err}");
    let sql = format!(
        "{} SELECT CURRENT_WATERMARK(`dateTime` + INTERVAL '1' SECOND) FROM bid;",
        bid_table(dir.path())
    );
    let err = run_sql(&sql, 1).unwrap_err();
    assert!(err.contains("must be the rowtime attribute"), "{err}");
}
