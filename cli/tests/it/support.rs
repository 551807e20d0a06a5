//! Helpers: running scripts in-process and through the binary, reading CSV output.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

use connectors::{ConnectorRegistry, MaterializeConnector, MaterializeTarget};
use kernel::metrics::JobMetrics;
use kernel::operator::CancelFlag;
use nexmark::queries::{job_script, JobSettings};
use runtime::run_job;
use sql_planner::{plan_script, PlanOptions};

/// The Nexmark tables and views of a job script over `events` generated events at `rate`
/// events per second of event time, with extra source `options` (seed, batch size…).
pub fn nexmark_tables(dir: &Path, events: u64, rate: u64, options: &[(&str, &str)]) -> String {
    let settings = JobSettings {
        events,
        rate,
        extra_options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        nexmark_dir: dir.display().to_string(),
        submit_time: "tests".into(),
        flink_home: dir.display().to_string(),
    };
    let script = job_script("q0", &settings).unwrap();
    script[..script.find("CREATE TABLE nexmark_q0").unwrap()].to_string()
}

pub fn registry() -> ConnectorRegistry {
    let mut r = ConnectorRegistry::with_builtins();
    r.register(Arc::new(nexmark::NexmarkConnector));
    r
}

/// Plans and runs `sql` in this process; returns the job's metrics.
pub fn run_sql(sql: &str, parallelism: usize) -> Result<Arc<JobMetrics>, String> {
    run_sql_with(sql, parallelism, None)
}

/// Plans and runs `sql` with every sink materializing its final table into `dir/<table>.csv`.
pub fn run_sql_materialized(
    sql: &str,
    parallelism: usize,
    dir: &Path,
) -> Result<Arc<JobMetrics>, String> {
    run_sql_with(
        sql,
        parallelism,
        Some(MaterializeTarget::Directory(dir.to_path_buf())),
    )
}

/// The rows of the table `run_sql_materialized` wrote for `table`, sorted.
pub fn materialized_rows(dir: &Path, table: &str) -> Vec<Vec<String>> {
    let mut rows = csv_rows(&dir.join(format!("{table}.csv")));
    rows.sort();
    rows
}

/// Planning options for the tests: no settings, the test registry.
fn options(parallelism: usize, materialize: Option<MaterializeTarget>) -> PlanOptions {
    PlanOptions {
        parallelism,
        settings: vec![],
        connectors: Arc::new(registry()),
        sinks_to: materialize.map(|target| {
            Arc::new(MaterializeConnector { target }) as Arc<dyn kernel::connector::Connector>
        }),
    }
}

/// True when `sql` plans to a job whose results are updated (some edge is a changelog).
pub fn is_updating(sql: &str, parallelism: usize) -> bool {
    plan_script(sql, &options(parallelism, None))
        .map(|job| job.graph.nodes.iter().any(|n| n.output.is_updating()))
        .unwrap_or(false)
}

fn run_sql_with(
    sql: &str,
    parallelism: usize,
    materialize: Option<MaterializeTarget>,
) -> Result<Arc<JobMetrics>, String> {
    let job = plan_script(sql, &options(parallelism, materialize)).map_err(|e| e.to_string())?;
    let metrics = Arc::new(JobMetrics::default());
    run_job(
        &job.graph,
        &job.config,
        metrics.clone(),
        CancelFlag::default(),
    )
    .map_err(|e| e.to_string())?;
    Ok(metrics)
}

/// The job graph `sql` plans to, as `eddy explain` prints it.
pub fn explain_sql(sql: &str, parallelism: usize) -> String {
    plan_script(sql, &options(parallelism, None))
        .unwrap_or_else(|e| panic!("{e}"))
        .graph
        .to_string()
}

/// Runs Nexmark query `name` with the settings `settings` makes for a temporary directory
/// (where q10 writes), its blackhole sink swapped for CSV files in `<dir>/out` (for a query
/// whose results are updated, the final table, materialized). Returns the directory, the CSV
/// rows sorted (none for q10, whose sink is its own partitioned files), and the sink's row
/// count.
pub fn run_query_to_csv(
    name: &str,
    settings: impl FnOnce(&Path) -> JobSettings,
    parallelism: usize,
) -> (tempfile::TempDir, Vec<Vec<String>>, u64) {
    let (dir, rows, metrics) = run_query_to_csv_after(name, settings, parallelism, "");
    (dir, rows, JobMetrics::get(&metrics.sink_rows))
}

/// As [`run_query_to_csv`], with `prelude` (`SET` statements, say) ahead of the script.
pub fn run_query_to_csv_after(
    name: &str,
    settings: impl FnOnce(&Path) -> JobSettings,
    parallelism: usize,
    prelude: &str,
) -> (tempfile::TempDir, Vec<Vec<String>>, Arc<JobMetrics>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = prelude.to_string() + &job_script(name, &settings(dir.path())).unwrap();
    nexmark::queries::write_side_input(dir.path()).unwrap();
    if is_updating(&script, parallelism) {
        let metrics = run_sql_materialized(&script, parallelism, &out)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let rows = sorted_csv_rows(&out);
        return (dir, rows, metrics);
    }
    let sink = format!(
        "'connector' = 'filesystem', 'path' = '{}', 'format' = 'csv'",
        out.display()
    );
    let script = script.replace("'connector' = 'blackhole'", &sink);
    let metrics = run_sql(&script, parallelism).unwrap_or_else(|e| panic!("{name}: {e}"));
    let rows = if out.exists() {
        sorted_csv_rows(&out)
    } else {
        Vec::new()
    };
    (dir, rows, metrics)
}

/// Runs the `eddy` binary.
pub fn eddy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .output()
        .expect("eddy runs")
}

/// Starts the `eddy` binary, its stderr piped and its stdout dropped.
pub fn spawn_eddy(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("eddy starts")
}

/// Sends SIGTERM to a started `eddy`.
pub fn sigterm(child: &Child) {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every committed data file under `dir` (hidden and `_`-prefixed files excluded).
pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                stack.push(p);
            } else if !name.starts_with('.') && !name.starts_with('_') {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The CSV rows of `file`, as strings.
pub fn csv_rows(file: &Path) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(file)
        .unwrap();
    r.records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// All CSV rows under `dir`, sorted (outputs are compared as multisets).
pub fn sorted_csv_rows(dir: &Path) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = data_files(dir).iter().flat_map(|f| csv_rows(f)).collect();
    rows.sort();
    rows
}

/// Asserts two sorted row sets are equal, showing the first difference.
pub fn assert_same_rows(query: &str, got: &[Vec<String>], want: &[Vec<String>]) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{query}: {} rows from eddy, {} expected; first difference at {:?}: got {:?}, want {:?}",
        got.len(),
        want.len(),
        first,
        first.map(|i| &got[i]),
        first.map(|i| &want[i])
    );
}

/// The rows of q10's partitioned output under `root` (`dt=…/hm=…/part-…`), each with its
/// partition values appended, sorted. Every partition must be committed (`_SUCCESS`).
pub fn partitioned_rows(root: &Path) -> Vec<Vec<String>> {
    let mut got = Vec::new();
    for f in data_files(root) {
        let rel = f.strip_prefix(root).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().to_string())
            .collect();
        assert_eq!(parts.len(), 3, "{rel:?}");
        let dt = parts[0].strip_prefix("dt=").unwrap().to_string();
        let hm = parts[1].strip_prefix("hm=").unwrap().replace("%3A", ":");
        assert!(
            f.parent().unwrap().join("_SUCCESS").exists(),
            "partition {rel:?} is committed"
        );
        for mut row in csv_rows(&f) {
            row.push(dt.clone());
            row.push(hm.clone());
            got.push(row);
        }
    }
    got.sort();
    got
}
