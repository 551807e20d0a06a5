"""Computes the expected output of each Nexmark query with DuckDB (see regen.sh).

Usage: regen.py EVENTS_DIR REFERENCE_DIR [qN ...]

Each qN.sql in REFERENCE_DIR is a batch translation of Flink's query over the views `person`,
`auction`, `bid` (the CSV files of `eddy nexmark generate`) and `side_input`. Its rows are
written as eddy's CSV sink writes them (timestamps `yyyy-MM-dd HH:mm:ss.SSS`, decimals at their
scale, NULL as an empty field), sorted, to expected/qN.csv; outputs over 256 KiB become
expected/qN.digest (row count, SHA-256 of the sorted rows, the first rows) to keep the
repository small.
"""

import csv
import datetime
import decimal
import hashlib
import io
import json
import pathlib
import sys

import duckdb

DIGEST_OVER = 256 * 1024
HEAD_ROWS = 10

COLUMNS = {
    "person": "id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, "
    "city VARCHAR, state VARCHAR, dateTime TIMESTAMP, extra VARCHAR",
    "auction": "id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, "
    "reserve BIGINT, dateTime TIMESTAMP, expires TIMESTAMP, seller BIGINT, "
    "category BIGINT, extra VARCHAR",
    "bid": "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, "
    "dateTime TIMESTAMP, extra VARCHAR",
}


def text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if isinstance(value, (int, str, decimal.Decimal)):
        return str(value)
    raise SystemExit(f"no text form for {type(value).__name__} {value!r}")


def digest(rows):
    """SHA-256 of the sorted rows: fields joined by U+001F, each row ended by a newline."""
    h = hashlib.sha256()
    for row in rows:
        h.update(("\x1f".join(row) + "\n").encode())
    return h.hexdigest()


def connect(events):
    con = duckdb.connect()
    for stream, columns in COLUMNS.items():
        types = ", ".join(
            f"'{c.split()[0]}': '{c.split()[1]}'" for c in columns.split(", ")
        )
        con.execute(
            f"CREATE VIEW {stream} AS SELECT * FROM read_csv("
            f"'{events}/{stream}/*.csv', header = true, columns = {{{types}}}, "
            f"timestampformat = '%Y-%m-%d %H:%M:%S.%g')"
        )
    con.execute(
        "CREATE VIEW side_input AS SELECT i AS key, CAST(i AS VARCHAR) AS value "
        "FROM range(0, 10000) AS r(i)"
    )
    return con


def main():
    events, reference = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    wanted = set(sys.argv[3:])
    con = connect(events)
    expected = reference / "expected"
    expected.mkdir(exist_ok=True)
    for sql_file in sorted(reference.glob("q*.sql"), key=lambda p: int(p.stem[1:])):
        name = sql_file.stem
        if wanted and name not in wanted:
            continue
        rows = sorted(
            [text(v) for v in row] for row in con.execute(sql_file.read_text()).fetchall()
        )
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        for old in expected.glob(f"{name}.*"):
            old.unlink()
        if len(out.getvalue()) > DIGEST_OVER:
            summary = {"rows": len(rows), "sha256": digest(rows), "head": rows[:HEAD_ROWS]}
            (expected / f"{name}.digest").write_text(json.dumps(summary, indent=1) + "\n")
            kind = "digest"
        else:
            (expected / f"{name}.csv").write_text(out.getvalue())
            kind = "csv"
        print(f"{name}: {len(rows)} rows ({kind})", flush=True)


if __name__ == "__main__":
    main()
