-- Orders over 100, with the hour each was placed in.
-- Run from the repository's root:  eddy run examples/orders/job.sql
-- data/orders.csv has no header row: id, amount, ts (yyyy-MM-dd HH:mm:ss.SSS), as Flink's csv
-- format writes and reads them.
CREATE TABLE orders (
    id BIGINT,
    amount DECIMAL(10, 2),
    ts TIMESTAMP(3),
    hour_of_day AS HOUR(ts),
    WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
) WITH (
    'connector' = 'filesystem',
    'path' = 'examples/orders/data',
    'format' = 'csv'
);

CREATE TABLE big_orders (id BIGINT, amount DECIMAL(10, 2), hour_of_day BIGINT)
WITH ('connector' = 'print');

INSERT INTO big_orders
SELECT id, amount, hour_of_day FROM orders WHERE amount > 100;
