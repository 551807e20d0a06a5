-- q5, hot items: HOP windows of 10 s sliding by 2 s, written out. A bid at t belongs to the
-- five windows starting at floor(t / 2 s) * 2 s - k * 2 s, k = 0..4. At the end of bounded
-- input Flink's final watermark fires every window.
WITH hopped AS (
    SELECT auction, (epoch_ms(dateTime) // 2000) * 2000 - k * 2000 AS window_start
    FROM bid, range(0, 5) AS r(k)
),
counts AS (
    SELECT auction, window_start, count(*) AS num FROM hopped GROUP BY auction, window_start
),
maxes AS (
    SELECT window_start, max(num) AS maxn FROM counts GROUP BY window_start
)
SELECT c.auction, c.num
FROM counts AS c JOIN maxes AS m ON c.window_start = m.window_start AND c.num >= m.maxn;
