-- parallelism: 1
-- Two INSERTs of one statement set read the same columns of one table: the scan runs once
-- and feeds both sinks.
CREATE TABLE s (a BIGINT, b STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE t1 (a BIGINT) WITH ('connector' = 'blackhole');
CREATE TABLE t2 (a BIGINT) WITH ('connector' = 'print');
EXECUTE STATEMENT SET BEGIN
INSERT INTO t1 SELECT a FROM s;
INSERT INTO t2 SELECT a FROM s;
END;
