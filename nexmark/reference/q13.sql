-- q13, bounded side input join: the side input holds (i, 'i') for i in 0..10000 and never
-- changes, so the processing-time lookup finds the same row whenever it runs.
SELECT B.auction, B.bidder, B.price, B.dateTime, S.value
FROM bid AS B JOIN side_input AS S ON B.auction % 10000 = S.key;
