"""The job scripts both engines run: the file tables, then a Nexmark query verbatim."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUERIES = ROOT / "nexmark" / "queries"
TABLES = pathlib.Path(__file__).with_name("tables.sql")


def substitute(text, values):
    def fill(m):
        if m.group(1) not in values:
            raise SystemExit(f"no value for ${{{m.group(1)}}}")
        return values[m.group(1)]

    return re.sub(r"\$\{(\w+)\}", fill, text)


def job_script(query, events_dir, work_dir, sink_dir=None):
    """The script of `query` over the files in `events_dir`. With `sink_dir`, the query's
    blackhole sink becomes CSV files there (for comparing outputs)."""
    path = QUERIES / f"{query}.sql"
    if not path.exists():
        names = sorted(p.stem for p in QUERIES.glob("q*.sql"))
        raise SystemExit(f"unknown query '{query}'; the queries are {', '.join(names)}")
    values = {
        "EVENTS_DIR": str(events_dir),
        "NEXMARK_DIR": str(work_dir),
        "FLINK_HOME": str(work_dir),
        "SUBMIT_TIME": "compare",
    }
    text = substitute(TABLES.read_text(), values) + "\n" + substitute(path.read_text(), values)
    if sink_dir is not None:
        text = text.replace(
            "'connector' = 'blackhole'",
            f"'connector' = 'filesystem', 'path' = '{sink_dir}', 'format' = 'csv'",
        )
    return text


def statements(script):
    """The statements of a script: `--` comment lines dropped, split at `;` ending a line."""
    lines = [l for l in script.splitlines() if not l.lstrip().startswith("--")]
    parts = re.split(r";\s*\n", "\n".join(lines) + "\n")
    return [p.strip().rstrip(";") for p in parts if p.strip()]
