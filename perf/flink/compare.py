"""eddy and Apache Flink side by side on the same Nexmark event files.

    python3 perf/flink/compare.py --queries q0,q1,q2 [--events N] [--parallelism P] [--reps R]
                                  [--eddy PATH] [--out DIR]
                                  [--set KEY=VALUE]... [--flink-set KEY=VALUE]...

`--set` gives both engines a setting for the timed runs (e.g. a checkpoint interval and
directory), `--flink-set` Flink alone (e.g. `state.backend.type=rocksdb`).

Queries are Nexmark's (q0 … q22, nexmark/queries) or jobs over the same tables in
perf/queries (OVER windows, a Top-N of an aggregate).

Writes the events once with `eddy nexmark generate` (one time-ordered CSV file per split, P
splits), then for each repetition runs every query in eddy (`eddy run`, one process per query)
and in Flink (one PyFlink JVM per repetition, a job per query), alternating which engine goes
first. Reports medians per query: events/s and events per CPU-second of each engine, their
ratio, and whether a final run of each, with CSV sinks, produced the same rows; draws them
as throughput.svg/.png with `eddy nexmark chart`. Flink's JVM
start and per-job overhead (wall minus net runtime) are reported apart from its job runtime.
Needs perf/flink/setup.sh run once; nothing else from the network.
"""

import argparse
import csv
import decimal
import hashlib
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import sql  # noqa: E402

ROOT = sql.ROOT
VENV = pathlib.Path(
    os.environ.get("EDDY_FLINK_VENV")
    or pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
    / "eddy"
    / "flink-venv"
)
FLINK_PYTHON = VENV / "bin" / "python"


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def run_eddy(eddy, script_path, parallelism, extra=()):
    """One `eddy run`: wall seconds and CPU seconds of the process."""
    started = time.time()
    proc = subprocess.Popen(
        [str(eddy), "run", str(script_path), "--parallelism", str(parallelism), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - started
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        # Exit 2 is a user error: for a verbatim Nexmark query, a construct eddy refuses.
        return {
            "error": err.splitlines()[-1] if err else f"exit {code}",
            "unsupported": code == 2,
        }
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}


def run_flink(events_dir, queries, parallelism, sink_dir=None, settings=()):
    """One PyFlink JVM running `queries` in turn; its JSON lines."""
    cmd = [
        str(FLINK_PYTHON),
        str(pathlib.Path(__file__).with_name("flink_run.py")),
        "--events", str(events_dir),
        "--queries", ",".join(queries),
        "--parallelism", str(parallelism),
    ]
    for setting in settings:
        cmd += ["--set", setting]
    if sink_dir:
        cmd += ["--sink-dir", str(sink_dir)]
        updating = [q for q in queries if q in UPDATING]
        if updating:
            cmd += ["--final-table", ",".join(updating)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 and not lines:
        tail = out.stderr.strip().splitlines()[-3:]
        fail("Flink did not start: " + " / ".join(tail))
    # The gateway JVM lingers for a few seconds after PyFlink exits; let it go before the
    # next timed run.
    time.sleep(3)
    return lines


TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.(\d{1,3}))?$")


DECIMAL = re.compile(r"^-?\d+(\.\d+)?(E[+-]?\d+)?$")


def canonical(value):
    """Flink's CSV format drops the zeros at the end of a timestamp's fraction (`00:00:00`,
    `00:00:00.12`) and of a decimal, in scientific notation when that is shorter (`13274.96`,
    `9.06638E+7` for DECIMAL(23, 3)); eddy's keeps them. Compare timestamps with milliseconds
    and decimals in plain notation without trailing zeros."""
    m = TIMESTAMP.match(value)
    if m:
        return f"{m.group(1)}.{(m.group(2) or '').ljust(3, '0')}"
    if DECIMAL.match(value) and ("." in value or "E" in value):
        return format(decimal.Decimal(value).normalize(), "f")
    return value


def output_files(directory):
    """The committed files of a sink directory (no hidden in-progress files, no `_SUCCESS`
    markers), each with the partition values its path names (`dt=2015-07-15/hm=00%3A01` →
    [`2015-07-15`, `00:01`]): both engines leave partition columns out of the files."""
    root = pathlib.Path(directory)
    for f in sorted(root.rglob("*")):
        if f.is_file() and not f.name.startswith((".", "_")):
            parts = f.relative_to(root).parent.parts
            yield f, [urllib.parse.unquote(p.split("=", 1)[1]) for p in parts if "=" in p]


def csv_rows(directory):
    """Every row of a sink directory, canonical, partition values last."""
    for f, partition in output_files(directory):
        with open(f, newline="") as fh:
            for row in csv.reader(fh):
                yield [canonical(v) for v in row] + partition


def digest(directory, columns=None):
    """An order-free digest of a sink directory's rows (only `columns` of them, if given):
    their count and the sum of their 128-bit hashes. Equal multisets of rows give equal
    digests; it needs no memory per row."""
    count, total = 0, 0
    for row in csv_rows(directory):
        if columns:
            row = [row[c] for c in columns]
        h = hashlib.blake2b("\x1f".join(row).encode(), digest_size=16).digest()
        total = (total + int.from_bytes(h, "little")) % (1 << 128)
        count += 1
    return count, total


def agreement(eddy_dir, flink_dir, columns=None):
    """Whether two sink directories hold the same rows (compared on `columns`, if given). The
    digests decide; only when they differ are both outputs sorted in memory, to show the first
    difference."""
    (na, da), (nb, db) = digest(eddy_dir, columns), digest(flink_dir, columns)
    if (na, da) == (nb, db):
        out = {"agree": True, "rows": na}
        if columns:
            out["compared"] = "rows, on the columns ties cannot change"
        return out
    pick = (lambda r: [r[c] for c in columns]) if columns else (lambda r: r)
    a = sorted(pick(r) for r in csv_rows(eddy_dir))
    b = sorted(pick(r) for r in csv_rows(flink_dir))
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return {
        "agree": False,
        "eddy_rows": na,
        "flink_rows": nb,
        "first_difference": {
            "eddy": a[first] if first < len(a) else None,
            "flink": b[first] if first < len(b) else None,
        },
    }


# Processing-time windows follow each engine's clock, so their rows differ run to run; what
# must agree is each key's total over all windows (first column the key, second the count).
PROCESSING_TIME = {"q12"}

# Queries whose results are updated as rows arrive: no file sink takes them, so both engines'
# final tables are compared (eddy's materialized, Flink's from a batch-mode run, which is the
# table a correct changelog ends in).
UPDATING = {"q4", "q9", "q15", "q16", "q17", "q18", "q19", "topn_count"}

# Top-N and dedup queries whose ORDER BY ties (events of one millisecond, equal prices): a
# stream keeps the row that came first (or last), Flink's batch mode any of them. Their final
# tables are compared on the columns ties cannot change: q9 all but the winning bid's bidder
# and extra, q18 (auction, bidder, dateTime), q19 (auction, price, rank_number).
TIES = {"q9": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13], "q18": [0, 1, 5], "q19": [0, 2, 7]}


def totals_agreement(eddy_dir, flink_dir):
    """Whether both outputs give every key the same total of its windows' counts."""
    def totals(directory):
        out = {}
        for row in csv_rows(directory):
            out[row[0]] = out.get(row[0], 0) + int(row[1])
        return out
    a, b = totals(eddy_dir), totals(flink_dir)
    if a == b:
        return {"agree": True, "rows": len(a), "compared": "keys, totals"}
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return {
        "agree": False,
        "eddy_rows": sum(a.values()),
        "flink_rows": sum(b.values()),
        "compared": "per-key totals (rows = summed counts)",
        "first_difference": {"key": differ[0], "eddy": a.get(differ[0]),
                             "flink": b.get(differ[0])},
    }


def median(values):
    return statistics.median(values) if values else None


def draw_chart(eddy, out, args, results):
    """throughput.svg and .png beside the table, drawn by `eddy nexmark chart` (plotters), for
    the queries at least one engine ran. False when there is nothing to draw."""
    shown = [r for r in results if "eddy" in r or "flink" in r]
    if not shown:
        return False

    def series(engine, name, key):
        return {"name": name,
                "values": [r[engine][key] / 1e6 if engine in r else None for r in shown]}

    chart = {
        "title": f"eddy vs Apache Flink 2.3, {args.events / 1e6:g} M events, "
                 f"parallelism {args.parallelism}",
        "categories": [r["query"] for r in shown],
        "panels": [
            {"y_label": "M events/s",
             "series": [series("eddy", "eddy", "events_per_s"),
                        series("flink", "Flink (job runtime)", "events_per_s")]},
            {"y_label": "M events per CPU-second",
             "series": [series("eddy", "eddy", "events_per_cpu_s"),
                        series("flink", "Flink", "events_per_cpu_s")]},
        ],
    }
    spec = out / "throughput.json"
    spec.write_text(json.dumps(chart, indent=1) + "\n")
    drawn = subprocess.run([str(eddy), "nexmark", "chart", str(spec)],
                           capture_output=True, text=True)
    if drawn.returncode != 0:
        print(f"warning: no chart: {drawn.stderr.strip()}", file=sys.stderr)
    return drawn.returncode == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", default="q0,q1,q2,q14,q21,q22")
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--parallelism", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rate", type=int, default=10_000_000)
    ap.add_argument("--eddy", default=str(ROOT / "target" / "release" / "eddy"))
    ap.add_argument("--out", default="flink-compare")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting of both engines' timed runs (repeatable)")
    ap.add_argument("--flink-set", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting of Flink's timed runs only (repeatable)")
    args = ap.parse_args()
    eddy_settings = [a for s in args.set for a in ("--set", s)]
    queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    for q in queries:
        sql.query_path(q)
    eddy = pathlib.Path(args.eddy)
    if not eddy.exists():
        fail(f"no eddy binary at {eddy}: cargo build --release --locked --bin eddy")
    if not FLINK_PYTHON.exists():
        fail(f"Apache Flink is not installed ({VENV}): run perf/flink/setup.sh")
    if args.events < 1 or args.parallelism < 1 or args.reps < 1:
        fail("--events, --parallelism and --reps must be at least 1")

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="eddy-compare-"))
    events = work / "events"
    gen = subprocess.run(
        [str(eddy), "nexmark", "generate", "--events", str(args.events), "--rate",
         str(args.rate), "--parallelism", str(args.parallelism),
         "--out", str(events)],
        capture_output=True, text=True,
    )
    if gen.returncode != 0:
        fail(f"eddy nexmark generate failed: {gen.stderr.strip()}")
    print(gen.stderr.strip(), file=sys.stderr)
    # q13's side input, where eddy's script reads it (`${FLINK_HOME}/data`), as Flink's is.
    (work / "data").mkdir()
    (work / "data" / "side_input.txt").write_text("".join(f"{i},{i}\n" for i in range(10000)))

    def eddy_script(q, sink_dir=None):
        path = work / f"{q}{'-check' if sink_dir else ''}.sql"
        path.write_text(sql.job_script(q, events, work, sink_dir))
        return path

    runs = {q: {"eddy": [], "flink": []} for q in queries}
    flink_start, errors = [], {}
    for rep in range(args.reps):
        order = ["eddy", "flink"] if rep % 2 == 0 else ["flink", "eddy"]
        for engine in order:
            if engine == "eddy":
                for q in queries:
                    r = run_eddy(eddy, eddy_script(q), args.parallelism, eddy_settings)
                    shutil.rmtree(sql.output_dir(work), ignore_errors=True)
                    if "error" in r:
                        key = "eddy (not supported yet)" if r["unsupported"] else "eddy"
                        errors.setdefault(q, {})[key] = r["error"]
                    else:
                        runs[q]["eddy"].append(r)
            else:
                lines = run_flink(events, queries, args.parallelism,
                                  settings=args.set + args.flink_set)
                for line in lines:
                    if "jvm_start_s" in line:
                        flink_start.append(line["jvm_start_s"])
                    elif "error" in line:
                        errors.setdefault(line["query"], {})["flink"] = line["error"]
                    else:
                        runs[line["query"]]["flink"].append(line)
            print(f"repetition {rep + 1}/{args.reps}: {engine} done", file=sys.stderr)

    # One more run of each engine with CSV sinks, to compare the outputs.
    checks = {}
    flink_sinks = work / "flink-out"
    run_flink(events, queries, args.parallelism, flink_sinks)
    for q in queries:
        eddy_sink = work / "eddy-out" / q
        if q in UPDATING:
            r = run_eddy(eddy, eddy_script(q), args.parallelism,
                         ["--materialize-dir", str(eddy_sink)])
        else:
            r = run_eddy(eddy, eddy_script(q, eddy_sink), args.parallelism)
        if "error" in r or not (flink_sinks / q).exists():
            checks[q] = {"agree": None, "why": r.get("error", "no Flink output")}
        elif q in PROCESSING_TIME:
            checks[q] = totals_agreement(eddy_sink, flink_sinks / q)
        else:
            checks[q] = agreement(eddy_sink, flink_sinks / q, TIES.get(q))

    results = []
    for q in queries:
        e, f = runs[q]["eddy"], runs[q]["flink"]
        row = {"query": q, "events": args.events, "parallelism": args.parallelism,
               "errors": errors.get(q, {}), "outputs": checks[q]}
        if e:
            row["eddy"] = {
                "wall_s": median([r["wall_s"] for r in e]),
                "cpu_s": median([r["cpu_s"] for r in e]),
                "events_per_s": median([args.events / r["wall_s"] for r in e]),
                "events_per_cpu_s": median([args.events / r["cpu_s"] for r in e]),
                "runs": e,
            }
        if f:
            row["flink"] = {
                "net_s": median([r["net_s"] for r in f]),
                "overhead_s": median([r["wall_s"] - r["net_s"] for r in f]),
                "cpu_s": median([r["cpu_s"] for r in f]),
                "events_per_s": median([args.events / r["net_s"] for r in f]),
                "events_per_cpu_s": median([args.events / r["cpu_s"] for r in f]),
                "runs": f,
            }
        if e and f:
            row["ratio_events_per_s"] = row["eddy"]["events_per_s"] / row["flink"]["events_per_s"]
            row["ratio_events_per_cpu_s"] = (
                row["eddy"]["events_per_cpu_s"] / row["flink"]["events_per_cpu_s"]
            )
        results.append(row)
    summary = {
        "flink_jvm_start_s": median(flink_start),
        "settings": args.set,
        "flink_settings": args.flink_set,
        "queries": results,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")

    def m(v):
        return f"{v / 1e6:.2f} M" if v is not None else "–"

    flink_state = next(
        (v.split("=", 1)[1] for v in args.flink_set if v.startswith("state.backend.type=")),
        "heap",
    )
    settings = " ".join(f"`{s}`" for s in args.set) or "none"
    flink_settings = " ".join(f"`{s}`" for s in args.flink_set) or "none"
    lines = [
        f"# eddy vs Apache Flink 2.3, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Settings of both engines' timed runs: {settings}; of Flink's alone: {flink_settings}.",
        "",
        f"{args.events} events (`eddy nexmark generate`, CSV, {args.parallelism} file(s) per "
        f"stream), parallelism {args.parallelism}, median of {args.reps} repetitions. Flink: "
        f"PyFlink local MiniCluster, {flink_state} state; events/s from its net job runtime; its JVM "
        f"start ({(summary['flink_jvm_start_s'] or 0):.1f} s) and per-job planning and "
        f"submission (column *Flink overhead*) are not in it. eddy: the whole `eddy run` "
        f"process. CPU-s: the engine's process, user + sys.",
        "",
        "| query | eddy events/s | eddy events/CPU-s | Flink events/s | Flink events/CPU-s "
        "| ratio (events/s) | ratio (events/CPU-s) | Flink overhead s | outputs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        e, f, c = r.get("eddy", {}), r.get("flink", {}), r["outputs"]
        if c.get("agree") is True:
            agree = f"agree ({c['rows']} {c.get('compared', 'rows')})"
        elif c.get("agree") is False:
            agree = f"**differ** ({c['eddy_rows']} vs {c['flink_rows']} rows)"
        else:
            agree = f"not compared: {c.get('why', '')[:80]}"
        ratio = lambda k: f"{r[k]:.1f}×" if k in r else "–"  # noqa: E731
        lines.append(
            f"| {r['query']} | {m(e.get('events_per_s'))} | {m(e.get('events_per_cpu_s'))} "
            f"| {m(f.get('events_per_s'))} | {m(f.get('events_per_cpu_s'))} "
            f"| {ratio('ratio_events_per_s')} | {ratio('ratio_events_per_cpu_s')} "
            f"| {f.get('overhead_s', 0):.1f} | {agree} |"
        )
        for engine, message in r["errors"].items():
            lines.append(f"|  | {engine} failed: {message[:200].replace('|', '/')} ||||||||")
    if draw_chart(eddy, out, args, results):
        lines += ["", "![eddy vs Flink per query](throughput.svg)"]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    disagree = [r["query"] for r in results if r["outputs"].get("agree") is False]
    failed = [f"{r['query']} ({e})" for r in results for e in r["errors"] if e in ("eddy", "flink")]
    if disagree:
        print(f"error: outputs differ for {', '.join(disagree)}; both engines' outputs are "
              f"kept in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)  # events and outputs: gigabytes at 10 M events
    if failed:
        print(f"error: failed runs: {', '.join(failed)}", file=sys.stderr)
    if disagree or failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
