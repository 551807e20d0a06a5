-- -------------------------------------------------------------------------------------------------
-- Top-N of an aggregate (not a Nexmark query; for the side-by-side runner)
-- -------------------------------------------------------------------------------------------------
-- The ten auctions with the most bids, as the counts grow: a Top-N over an updating input
-- (Flink's retractable or updatable Top-N). Ties are broken by the auction id, so the final
-- table is one.
-- -------------------------------------------------------------------------------------------------

CREATE TABLE nexmark_topn_count (
    auction  BIGINT,
    bids  BIGINT,
    rank_number  BIGINT
) WITH (
  'connector' = 'blackhole'
);

INSERT INTO nexmark_topn_count
SELECT * FROM
(SELECT auction, bids, ROW_NUMBER() OVER (ORDER BY bids DESC, auction) AS rank_number
 FROM (SELECT auction, COUNT(*) AS bids FROM bid GROUP BY auction))
WHERE rank_number <= 10;
