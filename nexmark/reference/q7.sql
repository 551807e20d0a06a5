-- q7, highest bid: the maximum price of each 10 s tumbling window, joined back to the bids of
-- that window (BETWEEN includes a bid exactly at the window end). Columns are inserted by
-- position, so the sink's `bidder` column holds the price and `price` the bidder, as in Flink.
WITH windows AS (
    SELECT max(price) AS maxprice,
           make_timestamp(((epoch_ms(dateTime) // 10000) * 10000 + 10000) * 1000) AS window_end
    FROM bid
    GROUP BY epoch_ms(dateTime) // 10000
)
SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra
FROM bid AS B JOIN windows AS W ON B.price = W.maxprice
WHERE B.dateTime BETWEEN W.window_end - INTERVAL 10 SECOND AND W.window_end;
