-- parallelism: 2
-- A regular inner join hashes both sides on the join key.
CREATE TABLE a (id BIGINT, x STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE b (id BIGINT, y STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE t (id BIGINT, x STRING, y STRING) WITH ('connector' = 'blackhole');
INSERT INTO t SELECT a.id, x, y FROM a JOIN b ON a.id = b.id;
