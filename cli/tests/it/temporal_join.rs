//! Event-time temporal joins (`JOIN rates FOR SYSTEM_TIME AS OF o.order_time ON …`, `rates`
//! a versioned table): Flink's currency example from CSV files, INNER and LEFT, at
//! parallelism 1 and 2, a window over the result, and the uses that are refused.

use std::fs;
use std::path::Path;

use crate::support::{materialized_rows, run_sql, run_sql_materialized};

/// Orders and the currency rates in force over the morning of 2020-01-01.
fn tables(dir: &Path) -> String {
    let (orders, rates) = (dir.join("orders.csv"), dir.join("rates.csv"));
    fs::write(
        &orders,
        "o6,1,EUR,2020-01-01 08:00:00\n\
         o1,2,EUR,2020-01-01 10:00:00\n\
         o4,3,USD,2020-01-01 10:00:00\n\
         o3,50,Yen,2020-01-01 10:30:00\n\
         o2,1,EUR,2020-01-01 11:00:00\n\
         o5,5,EUR,2020-01-01 12:00:00\n",
    )
    .unwrap();
    fs::write(
        &rates,
        "EUR,114,2020-01-01 09:00:00\n\
         Yen,1,2020-01-01 09:00:00\n\
         EUR,116,2020-01-01 10:45:00\n\
         EUR,119,2020-01-01 11:15:00\n",
    )
    .unwrap();
    format!(
        "CREATE TABLE orders (order_id STRING, price BIGINT, currency STRING,
           order_time TIMESTAMP(3), WATERMARK FOR order_time AS order_time)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE rates (currency STRING, rate BIGINT, update_time TIMESTAMP(3),
           WATERMARK FOR update_time AS update_time - INTERVAL '15' SECOND,
           PRIMARY KEY (currency) NOT ENFORCED)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE out (order_id STRING, total BIGINT) WITH ('connector' = 'blackhole');\n",
        orders.display(),
        rates.display()
    )
}

fn rows(list: &[(&str, &str)]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = list
        .iter()
        .map(|(a, b)| vec![a.to_string(), b.to_string()])
        .collect();
    rows.sort();
    rows
}

#[test]
fn each_order_meets_the_rate_in_force_at_its_time() {
    for parallelism in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let inner = tables(dir.path())
            + "INSERT INTO out SELECT o.order_id, o.price * r.rate FROM orders AS o
               JOIN rates FOR SYSTEM_TIME AS OF o.order_time AS r
               ON o.currency = r.currency;";
        run_sql_materialized(&inner, parallelism, &dir.path().join("inner")).unwrap();
        assert_eq!(
            materialized_rows(&dir.path().join("inner"), "out"),
            rows(&[("o1", "228"), ("o2", "116"), ("o3", "50"), ("o5", "595")]),
            "p{parallelism}"
        );
        // LEFT: an order before any EUR rate, and one in a currency with none, padded.
        let left = tables(dir.path())
            + "INSERT INTO out SELECT o.order_id, o.price * r.rate FROM orders AS o
               LEFT JOIN rates FOR SYSTEM_TIME AS OF o.order_time AS r
               ON o.currency = r.currency;";
        run_sql_materialized(&left, parallelism, &dir.path().join("left")).unwrap();
        assert_eq!(
            materialized_rows(&dir.path().join("left"), "out"),
            rows(&[
                ("o1", "228"),
                ("o2", "116"),
                ("o3", "50"),
                ("o4", ""),
                ("o5", "595"),
                ("o6", "")
            ]),
            "p{parallelism}"
        );
    }
}

#[test]
fn the_result_keeps_the_orders_rowtime_for_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let sql = tables(dir.path())
        + "CREATE TABLE hourly (hour_start TIMESTAMP(3), total BIGINT) WITH ('connector' = 'blackhole');
           CREATE VIEW priced AS SELECT o.order_time, o.price * r.rate AS total FROM orders AS o
             JOIN rates FOR SYSTEM_TIME AS OF o.order_time AS r ON o.currency = r.currency;
           INSERT INTO hourly SELECT window_start, SUM(total)
             FROM TABLE(TUMBLE(TABLE priced, DESCRIPTOR(order_time), INTERVAL '1' HOUR))
             GROUP BY window_start, window_end;";
    run_sql_materialized(&sql, 2, &dir.path().join("out")).unwrap();
    assert_eq!(
        materialized_rows(&dir.path().join("out"), "hourly"),
        rows(&[
            ("2020-01-01 10:00:00.000", "278"),
            ("2020-01-01 11:00:00.000", "116"),
            ("2020-01-01 12:00:00.000", "595")
        ])
    );
}

#[test]
fn temporal_joins_eddy_cannot_run_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "CREATE TABLE plain (currency STRING, p AS PROCTIME()) WITH ('connector' = \
                 'datagen', 'number-of-rows' = '1');\n";
    let cases = [
        (
            "SELECT o.order_id FROM orders AS o JOIN rates FOR SYSTEM_TIME AS OF o.order_time \
             AS r ON o.price = r.rate;",
            "must equate its primary key column 'currency'",
        ),
        (
            "SELECT p.currency FROM plain AS p JOIN rates FOR SYSTEM_TIME AS OF p.p AS r \
             ON p.currency = r.currency;",
            "must be AS OF the left input's rowtime attribute, not 'p.p'",
        ),
        (
            "SELECT o.order_id FROM orders AS o FULL JOIN rates FOR SYSTEM_TIME AS OF \
             o.order_time AS r ON o.currency = r.currency;",
            "a temporal join is INNER or LEFT",
        ),
    ];
    for (query, message) in cases {
        let err = run_sql(&(tables(dir.path()) + extra + query), 1).unwrap_err();
        assert!(err.contains(message), "{query}: {err}");
    }
}
