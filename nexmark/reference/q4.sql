-- q4, average closing price per category: the final state of an updating aggregate over an
-- updating aggregate. Flink's AVG of a BIGINT is a BIGINT: the sum divided by the count,
-- truncated.
SELECT category AS id, sum(final) // count(*) AS final
FROM (
    SELECT max(B.price) AS final, A.category
    FROM auction AS A JOIN bid AS B
      ON A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
    GROUP BY A.id, A.category
)
GROUP BY category;
