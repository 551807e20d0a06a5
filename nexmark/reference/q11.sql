-- q11, user sessions: per bidder, session windows with a 10 s gap. Flink merges the windows
-- [t, t + 10 s) of one key when they overlap or touch (TimeWindow.intersects: start <= other
-- end and end >= other start), so a new session starts where the gap to the bidder's previous
-- bid is more than 10 s; the session ends 10 s after its last bid.
WITH marked AS (
    SELECT bidder, epoch_ms(dateTime) AS t,
           CASE WHEN epoch_ms(dateTime) - lag(epoch_ms(dateTime))
                     OVER (PARTITION BY bidder ORDER BY dateTime) <= 10000
                THEN 0 ELSE 1 END AS starts_session
    FROM bid
),
sessions AS (
    SELECT bidder, t,
           sum(starts_session) OVER (PARTITION BY bidder ORDER BY t ROWS UNBOUNDED PRECEDING)
               AS session
    FROM marked
)
SELECT bidder, count(*) AS bid_count,
       make_timestamp(min(t) * 1000) AS starttime,
       make_timestamp((max(t) + 10000) * 1000) AS endtime
FROM sessions
GROUP BY bidder, session;
