-- q19, the ten highest bids of each auction, with their rank: the final state of the Top-N.
SELECT auction, bidder, price, channel, url, dateTime, extra, rank_number
FROM (
    SELECT *, row_number() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
    FROM bid
)
WHERE rank_number <= 10;
