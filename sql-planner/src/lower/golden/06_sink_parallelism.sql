-- parallelism: 2
-- A sink of one subtask takes every row; one of another parallelism takes them round-robin.
CREATE TABLE s (a BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE one (a BIGINT) WITH ('connector' = 'print', 'sink.parallelism' = '1');
CREATE TABLE three (a BIGINT) WITH ('connector' = 'blackhole', 'sink.parallelism' = '3');
INSERT INTO one SELECT a FROM s;
INSERT INTO three SELECT a FROM s;
