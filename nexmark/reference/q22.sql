-- q22, URL directories: Flink's SPLIT_INDEX counts from 0 and gives NULL past the end, as
-- DuckDB's list indexing (from 1) does.
SELECT
    auction, bidder, price, channel,
    string_split(url, '/')[4] AS dir1,
    string_split(url, '/')[5] AS dir2,
    string_split(url, '/')[6] AS dir3
FROM bid;
