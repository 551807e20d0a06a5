-- -------------------------------------------------------------------------------------------------
-- OVER window, RANGE frame (not a Nexmark query; for the side-by-side runner)
-- -------------------------------------------------------------------------------------------------
-- Each bid with its auction's bid count and highest price over the last 10 seconds of event
-- time. Flink's OVER window on the rowtime: append-only; rows of one millisecond are peers,
-- so the result does not depend on their arrival order.
-- -------------------------------------------------------------------------------------------------

CREATE TABLE nexmark_over_range (
    auction  BIGINT,
    price  BIGINT,
    `dateTime`  TIMESTAMP(3),
    bids  BIGINT,
    top_price  BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_over_range
SELECT auction, price, `dateTime`, COUNT(*) OVER w, MAX(price) OVER w
FROM bid
WINDOW w AS (
  PARTITION BY auction ORDER BY `dateTime`
  RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW);
