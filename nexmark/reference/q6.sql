-- q6, average selling price per seller over its last 10 closed auctions. Flink itself cannot
-- run q6 (FLINK-19059: the OVER window cannot consume the retractions of the Top-1); this is
-- the batch meaning: each auction's winning bid, then a running average per seller in the
-- order of the winning bids' times. Flink's AVG of a BIGINT truncates.
WITH winners AS (
    SELECT A.id, A.seller, B.price, B.dateTime
    FROM auction AS A JOIN bid AS B
      ON A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
    QUALIFY row_number() OVER (PARTITION BY A.id, A.seller ORDER BY B.price DESC) = 1
)
SELECT
    CAST(seller AS VARCHAR) AS seller,
    sum(price) OVER w // count(*) OVER w AS avg_price
FROM winners
WINDOW w AS (PARTITION BY seller ORDER BY dateTime ROWS BETWEEN 10 PRECEDING AND CURRENT ROW);
