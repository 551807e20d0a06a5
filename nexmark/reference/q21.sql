-- q21, channel ids: Flink's REGEXP_EXTRACT gives NULL when nothing matches (DuckDB's gives
-- ''), so the match is tested first.
WITH extracted AS (
    SELECT *,
           CASE WHEN regexp_matches(url, '(&|^)channel_id=([^&]*)')
                THEN regexp_extract(url, '(&|^)channel_id=([^&]*)', 2) END AS url_channel_id
    FROM bid
)
SELECT
    auction, bidder, price, channel,
    CASE
        WHEN lower(channel) = 'apple' THEN '0'
        WHEN lower(channel) = 'google' THEN '1'
        WHEN lower(channel) = 'facebook' THEN '2'
        WHEN lower(channel) = 'baidu' THEN '3'
        ELSE url_channel_id
    END AS channel_id
FROM extracted
WHERE url_channel_id IS NOT NULL OR lower(channel) IN ('apple', 'google', 'facebook', 'baidu');
