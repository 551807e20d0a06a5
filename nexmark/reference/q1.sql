-- q1, currency conversion: Flink types 0.908 * price as DECIMAL(23, 3).
SELECT auction, bidder, CAST(0.908 * price AS DECIMAL(23, 3)) AS price, dateTime, extra
FROM bid;
