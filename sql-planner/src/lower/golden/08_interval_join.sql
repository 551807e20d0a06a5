-- parallelism: 2
-- An interval join of two event-time streams keeps rows until the watermark passes them.
CREATE TABLE a (id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE b (id BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
WITH ('connector' = 'datagen', 'number-of-rows' = '20');
CREATE TABLE t (id BIGINT, a_ts TIMESTAMP(3), b_ts TIMESTAMP(3)) WITH ('connector' = 'blackhole');
INSERT INTO t SELECT a.id, a.ts, b.ts FROM a, b
WHERE a.id = b.id AND b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts;
