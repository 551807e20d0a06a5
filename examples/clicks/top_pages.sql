-- The two most clicked pages, kept up to date as clicks arrive: an unbounded GROUP BY under a
-- Top-N. Its result is updated (rows are retracted and replaced), so print shows Flink's row
-- kinds (+I, -U, +U, -D); `eddy run --materialize` prints the final table instead.
-- Run from the repository's root:  eddy run examples/clicks/top_pages.sql --materialize
CREATE TABLE clicks (
    `user` STRING,
    url STRING,
    ts TIMESTAMP(3)
) WITH (
    'connector' = 'filesystem',
    'path' = 'examples/clicks/data',
    'format' = 'csv'
);

CREATE TABLE top_pages (url STRING, clicks BIGINT, `rank` BIGINT)
WITH ('connector' = 'print');

INSERT INTO top_pages
SELECT url, clicks, rn FROM (
    SELECT url, clicks, ROW_NUMBER() OVER (ORDER BY clicks DESC, url) AS rn
    FROM (SELECT url, COUNT(*) AS clicks FROM clicks GROUP BY url)
)
WHERE rn <= 2;
