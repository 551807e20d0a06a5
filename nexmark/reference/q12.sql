-- q12, processing-time windows: which window a bid lands in depends on the wall clock, so the
-- reference is an invariant instead of rows: summed over all windows, each bidder's counts
-- equal the bidder's number of bids.
SELECT bidder, count(*) AS bid_count FROM bid GROUP BY bidder;
