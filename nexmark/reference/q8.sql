-- q8, monitor new users: people and sellers of the same 10 s tumbling window.
WITH P AS (
    SELECT id, name, (epoch_ms(dateTime) // 10000) * 10000 AS window_start
    FROM person GROUP BY ALL
),
A AS (
    SELECT seller, (epoch_ms(dateTime) // 10000) * 10000 AS window_start
    FROM auction GROUP BY ALL
)
SELECT P.id, P.name, make_timestamp(P.window_start * 1000) AS stime
FROM P JOIN A ON P.id = A.seller AND P.window_start = A.window_start;
