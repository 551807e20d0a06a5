-- parallelism: 1
-- A construct eddy does not run yet is refused with its name.
CREATE TABLE s (a BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO t SELECT a FROM s UNION ALL SELECT a FROM s;
