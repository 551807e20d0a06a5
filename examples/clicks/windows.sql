-- Clicks per user in 10-second tumbling windows of event time.
-- Run from the repository's root:  eddy run examples/clicks/windows.sql
-- data/clicks.csv has no header row: user, url, ts.
CREATE TABLE clicks (
    `user` STRING,
    url STRING,
    ts TIMESTAMP(3),
    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH (
    'connector' = 'filesystem',
    'path' = 'examples/clicks/data',
    'format' = 'csv'
);

CREATE TABLE clicks_per_window (
    `user` STRING,
    window_start TIMESTAMP(3),
    window_end TIMESTAMP(3),
    clicks BIGINT
) WITH ('connector' = 'print');

INSERT INTO clicks_per_window
SELECT `user`, window_start, window_end, COUNT(*)
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY `user`, window_start, window_end;
