-- parallelism: 2
-- An unbounded GROUP BY sends an updating result; print takes it.
CREATE TABLE s (k STRING, v BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE t (k STRING, total BIGINT, n BIGINT) WITH ('connector' = 'print');
INSERT INTO t SELECT k, SUM(v), COUNT(DISTINCT v) FROM s GROUP BY k;
