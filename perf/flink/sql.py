"""The job scripts both engines run: the file tables, then a Nexmark query verbatim."""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUERIES = ROOT / "nexmark" / "queries"
# Jobs over the same tables that are not Nexmark queries (OVER windows, Top-N of an aggregate).
EXTRA_QUERIES = ROOT / "perf" / "queries"
TABLES = pathlib.Path(__file__).with_name("tables.sql")


def substitute(text, values):
    def fill(m):
        if m.group(1) not in values:
            print(f"error: no value for ${{{m.group(1)}}}", file=sys.stderr)
            sys.exit(2)
        return values[m.group(1)]

    return re.sub(r"\$\{(\w+)\}", fill, text)


def query_path(query):
    """The file of Nexmark query `query` (or of a job in perf/queries); an unknown name exits
    listing the known ones."""
    for directory in (QUERIES, EXTRA_QUERIES):
        path = directory / f"{query}.sql"
        if path.exists():
            return path
    names = sorted((p.stem for p in QUERIES.glob("q*.sql")), key=lambda n: int(n[1:]))
    names += sorted(p.stem for p in EXTRA_QUERIES.glob("*.sql"))
    print(f"error: unknown query '{query}'; the queries are {', '.join(names)}", file=sys.stderr)
    sys.exit(2)


# The file tables a query writes itself (q10's partitioned log) live under here.
OUTPUT_PATH = re.compile(r"'path' = '(?:file://)?[^']*/data/output/[^']*'")


def output_dir(work_dir):
    """Where the queries' own file sinks write, under `work_dir`: removed after each run."""
    return pathlib.Path(work_dir) / "data" / "output"


def job_script(query, events_dir, work_dir, sink_dir=None):
    """The script of `query` over the files in `events_dir`. With `sink_dir`, the query's
    blackhole sink becomes CSV files there, and a file sink of its own writes there instead
    (for comparing outputs)."""
    path = query_path(query)
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
        text = OUTPUT_PATH.sub(f"'path' = 'file://{sink_dir}'", text)
    return text


def statements(script):
    """The statements of a script: `--` comment lines dropped, split at `;` ending a line."""
    lines = [l for l in script.splitlines() if not l.lstrip().startswith("--")]
    parts = re.split(r";\s*\n", "\n".join(lines) + "\n")
    return [p.strip().rstrip(";") for p in parts if p.strip()]
