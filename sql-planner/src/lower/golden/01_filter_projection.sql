-- parallelism: 1
-- A filter and a projection become one Calc, chained between the source and the sink.
CREATE TABLE orders (id BIGINT, amount DECIMAL(10, 2), ts TIMESTAMP(3))
WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE big (id BIGINT, amount DECIMAL(10, 2)) WITH ('connector' = 'blackhole');
INSERT INTO big SELECT id, amount FROM orders WHERE amount > 100;
