-- -------------------------------------------------------------------------------------------------
-- OVER window, ROWS frame (not a Nexmark query; for the side-by-side runner)
-- -------------------------------------------------------------------------------------------------
-- Each bid with the sum and the lowest of its bidder's last six prices. Flink's OVER window on
-- the rowtime: append-only. Bids of one bidder in one millisecond take their arrival order, so
-- at high event rates the result can differ between runs (and engines) on those rows.
-- -------------------------------------------------------------------------------------------------

CREATE TABLE nexmark_over_rows (
    bidder  BIGINT,
    price  BIGINT,
    `dateTime`  TIMESTAMP(3),
    last6  BIGINT,
    low6  BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_over_rows
SELECT bidder, price, `dateTime`,
  SUM(price) OVER (PARTITION BY bidder ORDER BY `dateTime` ROWS BETWEEN 5 PRECEDING AND CURRENT ROW),
  MIN(price) OVER (PARTITION BY bidder ORDER BY `dateTime` ROWS BETWEEN 5 PRECEDING AND CURRENT ROW)
FROM bid;
