-- parallelism: 1
-- A HOP window that slides past its size is refused at plan time (rows between two
-- windows would belong to none).
CREATE TABLE bids (auction BIGINT, ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out (auction BIGINT, n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out
SELECT auction, COUNT(*) FROM TABLE(
  HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND, INTERVAL '5' SECOND))
GROUP BY auction, window_start, window_end;
