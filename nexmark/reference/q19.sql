-- q19, the ten highest bids of each auction, with their rank: the final state of the Top-N.
-- Bids of equal price may take each other's places (Flink ranks ties in arrival order, DuckDB
-- in any order), so only the columns every correct Top-N agrees on are compared: the auction,
-- the price and the rank. eddy's reference test projects its rows the same way.
SELECT auction, price, rank_number
FROM (
    SELECT *, row_number() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
    FROM bid
)
WHERE rank_number <= 10;
