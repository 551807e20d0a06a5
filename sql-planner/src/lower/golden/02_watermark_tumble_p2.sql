-- parallelism: 2
-- A TUMBLE window aggregation at parallelism 2 is two-phase: a local aggregate chained to
-- the source, a hash exchange on the key, a global aggregate.
CREATE TABLE bids (auction BIGINT, price BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (auction BIGINT, window_start TIMESTAMP(3), n BIGINT)
WITH ('connector' = 'blackhole');
INSERT INTO out
SELECT auction, window_start, COUNT(*) FROM TABLE(
  TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end;
