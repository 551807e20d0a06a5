"""Runs Nexmark queries in Apache Flink (PyFlink, local MiniCluster) over eddy's event files.

Run with the Python of the venv that perf/flink/setup.sh made:
    flink_run.py --events DIR --queries q0,q1 --parallelism P [--sink-dir DIR] [--set KEY=VALUE]...
Prints one JSON object per line: first the JVM's start-up time, then one per query with Flink's
net job runtime (`JobExecutionResult.getNetRuntime`, the job run alone), the wall time of
planning + submission + run, and the CPU seconds the JVM spent over that wall time (from
/proc), or the error that stopped it.
"""

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import sql  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
UDF_JAR = pathlib.Path(sys.prefix) / "nexmark-udf.jar"


def jvm_pids():
    """The java processes started by this one (PyFlink's gateway JVM)."""
    me = os.getpid()
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm_end = stat.rindex(")")
        fields = stat[comm_end + 2 :].split()
        if int(fields[1]) == me and "java" in stat[stat.index("(") + 1 : comm_end]:
            pids.append(int(d.name))
    return pids


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def java_cause(text):
    """The innermost Java exception of a py4j error, which says what went wrong."""
    causes = [l.strip() for l in text.splitlines() if l.strip().startswith("Caused by:")]
    line = causes[-1] if causes else text.strip().splitlines()[0]
    return line.removeprefix("Caused by:").strip()[:500]


def emit(obj):
    print(json.dumps(obj), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--parallelism", type=int, required=True)
    ap.add_argument("--sink-dir", help="write CSV outputs to SINK_DIR/qN instead of blackhole")
    ap.add_argument("--final-table", default="",
                    help="queries whose results are updated: with --sink-dir, run them in batch "
                         "mode, whose CSV output is the final table their changelog ends in")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a Flink setting for the timed (streaming) runs, e.g. "
                         "state.backend.type=rocksdb (repeatable)")
    args = ap.parse_args()
    final_table = set(filter(None, args.final_table.split(",")))
    settings = []
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"error: --set '{item}' is not KEY=VALUE")
        settings.append((key.strip(), value.strip()))

    from pyflink.table import EnvironmentSettings, TableEnvironment

    work = pathlib.Path(tempfile.mkdtemp(prefix="eddy-flink-"))

    def environment(batch=False):
        mode = EnvironmentSettings.in_batch_mode() if batch else EnvironmentSettings.in_streaming_mode()
        env = TableEnvironment.create(mode)
        conf = env.get_config()
        conf.set("parallelism.default", str(args.parallelism))
        # A failure stops the run instead of restarting the job forever.
        conf.set("restart-strategy.type", "none")
        if UDF_JAR.exists():  # q14's count_char, built by setup.sh
            conf.set("pipeline.jars", UDF_JAR.resolve().as_uri())
        if args.sink_dir and not batch:
            # The filesystem sink publishes its files at checkpoints.
            conf.set("execution.checkpointing.interval", "1 s")
            # Window state outgrows the JobManager's 5 MB in-memory checkpoints: use files.
            conf.set("execution.checkpointing.storage", "filesystem")
            conf.set("execution.checkpointing.dir", (work / "checkpoints").resolve().as_uri())
        if not batch:
            for key, value in settings:
                conf.set(key, value)
        return env

    started = time.time()
    environment()
    emit({"jvm_start_s": time.time() - started})
    pids = jvm_pids()
    (work / "data").mkdir()
    (work / "data" / "side_input.txt").write_text("".join(f"{i},{i}\n" for i in range(10000)))
    for query in args.queries.split(","):
        sink = pathlib.Path(args.sink_dir) / query if args.sink_dir else None
        script = sql.job_script(query, pathlib.Path(args.events).resolve(), work, sink)
        *ddl, insert = sql.statements(script)
        # A fresh catalog per query, in the same JVM.
        env = environment(batch=sink is not None and query in final_table)
        try:
            for statement in ddl:
                env.execute_sql(statement)
            cpu0, wall0 = cpu_seconds(pids), time.time()
            result = env.execute_sql(insert)
            job = result.get_job_client().get_job_execution_result().result()
            wall, cpu = time.time() - wall0, cpu_seconds(pids) - cpu0
            emit({
                "query": query,
                "net_s": job.get_net_runtime() / 1000.0,
                "wall_s": wall,
                "cpu_s": cpu,
            })
        except Exception as e:  # a failed job is reported, and the next query still runs
            emit({"query": query, "error": java_cause(str(e))})
        shutil.rmtree(sql.output_dir(work), ignore_errors=True)  # q10's log, not needed
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
