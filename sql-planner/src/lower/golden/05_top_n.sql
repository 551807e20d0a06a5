-- parallelism: 2
-- ROW_NUMBER filtered by rn <= N is Top-N, partitioned by its key.
CREATE TABLE s (k STRING, v BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE t (k STRING, v BIGINT, rn BIGINT) WITH ('connector' = 'print');
INSERT INTO t
SELECT k, v, rn FROM (
  SELECT k, v, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC) AS rn FROM s)
WHERE rn <= 3;
