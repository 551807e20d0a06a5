//! `eddy run` and `eddy explain`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use connectors::{MaterializeConnector, MaterializeTarget};
use kernel::metrics::JobMetrics;
use runtime::{run_job, JobOutcome};
use sql_planner::{plan_script, PlanOptions, PlannedJob};

use crate::progress::Progress;
use crate::Failure;

#[derive(Args)]
pub struct RunArgs {
    /// The Flink SQL script.
    pub file: PathBuf,
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Resume from a checkpoint: its directory (`…/<job-id>/chk-<n>`), a job's directory
    /// (its newest checkpoint) or a checkpoint directory holding jobs (the newest of all).
    /// As Flink's `execution.state-recovery.path`.
    #[arg(long, value_name = "PATH")]
    pub from: Option<String>,
    /// With --from: drop checkpointed state that no operator of the job claims instead of
    /// refusing to start (`execution.state-recovery.ignore-unclaimed-state`).
    #[arg(long, requires = "from")]
    pub allow_non_restored_state: bool,
    /// Ctrl-C or SIGTERM stops the job with a savepoint written under DIR (sinks commit
    /// everything before it) and prints its path; a second one cancels. As Flink's
    /// `execution.checkpointing.savepoint-dir` with `flink stop`.
    #[arg(long, value_name = "DIR")]
    pub savepoint_dir: Option<String>,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The Flink SQL script.
    pub file: PathBuf,
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// What decides a job's plan besides its SQL.
#[derive(Args, Clone)]
pub struct PlanArgs {
    /// Default parallelism of every operator [default: the number of cores].
    #[arg(long, short = 'p')]
    pub parallelism: Option<usize>,
    /// A setting, as `SET 'key' = 'value'` in the script would (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Where `eddy run` writes its rows.
#[derive(Args, Clone, Default)]
pub struct OutputArgs {
    /// Instead of writing rows to its sink, each INSERT (and SELECT) applies its changelog to
    /// a table and prints the final table when the input ends.
    #[arg(long)]
    pub materialize: bool,
    /// As --materialize, but writes each final table as CSV to DIR/<table>.csv.
    #[arg(long, value_name = "DIR")]
    pub materialize_dir: Option<PathBuf>,
}

impl OutputArgs {
    /// The connector every sink goes to instead of its own, if any.
    fn sinks_to(&self) -> Option<Arc<dyn kernel::connector::Connector>> {
        let target = match (&self.materialize_dir, self.materialize) {
            (Some(dir), _) => MaterializeTarget::Directory(dir.clone()),
            (None, true) => MaterializeTarget::Stdout,
            (None, false) => return None,
        };
        Some(Arc::new(MaterializeConnector { target }))
    }
}

impl PlanArgs {
    pub fn options(&self, output: &OutputArgs) -> Result<PlanOptions, Failure> {
        let mut settings = Vec::new();
        for s in &self.set {
            let Some((k, v)) = s.split_once('=') else {
                return Err(Failure::User(format!("--set '{s}' is not KEY=VALUE")));
            };
            settings.push((k.trim().to_string(), v.trim().to_string()));
        }
        let parallelism = match self.parallelism {
            Some(0) => return Err(Failure::User("--parallelism must be at least 1".into())),
            Some(p) => p,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        Ok(PlanOptions {
            parallelism,
            settings,
            connectors: Arc::new(crate::connectors()),
            sinks_to: output.sinks_to(),
        })
    }
}

pub fn read_script(path: &PathBuf) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::User(format!("cannot read {}: {e}", path.display())))
}

pub fn plan(path: &PathBuf, args: &PlanArgs, output: &OutputArgs) -> Result<PlannedJob, Failure> {
    let sql = read_script(path)?;
    plan_script(&sql, &args.options(output)?).map_err(|e| {
        let mut f: Failure = e.into();
        if let Failure::User(m) = &mut f {
            *m = format!("{}: {m}", path.display());
        }
        f
    })
}

pub fn explain(args: ExplainArgs) -> Result<(), Failure> {
    let job = plan(&args.file, &args.plan, &OutputArgs::default())?;
    let mut text = job.graph.to_string();
    let chains = runtime::plan_chains(&job.graph);
    text.push_str(&format!("tasks: {} chains\n", chains.len()));
    for c in chains {
        let names: Vec<&str> = c
            .iter()
            .map(|&n| job.graph.nodes[n].name.as_str())
            .collect();
        text.push_str(&format!("  {}\n", names.join(" -> ")));
    }
    write_stdout(&text)
}

/// Writes to stdout; a reader that went away (`eddy explain … | head`) is not an error.
pub fn write_stdout(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::Internal(format!("writing output: {e}")))
        }
        _ => Ok(()),
    }
}

/// Per stateful operator, the peak of its keyed state, summed over its subtasks, e.g.
/// "GlobalWindowAggregate (node 4, 2 subtasks): peak 1234 entries, 0.5 MiB".
pub fn state_lines(metrics: &JobMetrics) -> Vec<String> {
    let mut nodes: BTreeMap<usize, (String, usize, u64, u64)> = BTreeMap::new();
    for ((node, _), r) in metrics.state() {
        let n = nodes.entry(node).or_insert((r.operator.clone(), 0, 0, 0));
        n.1 += 1;
        n.2 += r.peak_entries;
        n.3 += r.peak_bytes;
    }
    nodes
        .into_iter()
        .map(|(node, (name, subtasks, entries, bytes))| {
            format!(
                "{name} (node {node}, {subtasks} subtask{}): peak {entries} entries, {:.1} MiB",
                if subtasks == 1 { "" } else { "s" },
                bytes as f64 / (1024.0 * 1024.0)
            )
        })
        .collect()
}

/// Runs a planned job with progress; returns the metrics, the wall time and how it ended.
pub fn execute(
    job: &PlannedJob,
    total: Option<u64>,
    label: &str,
) -> Result<(Arc<JobMetrics>, f64, JobOutcome), Failure> {
    let metrics = Arc::new(JobMetrics::default());
    let savepoints = job
        .config
        .checkpointing
        .as_ref()
        .is_some_and(|c| c.savepoint_dir.is_some());
    let cancel = crate::cancel_on_ctrl_c(savepoints);
    let progress = Progress::start(metrics.clone(), total, label);
    let started = Instant::now();
    let result = run_job(&job.graph, &job.config, metrics.clone(), cancel);
    let wall = started.elapsed().as_secs_f64();
    progress.finish();
    let outcome = result?;
    Ok((metrics, wall, outcome))
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    let mut plan_args = args.plan.clone();
    if let Some(dir) = &args.savepoint_dir {
        plan_args
            .set
            .push(format!("execution.checkpointing.savepoint-dir={dir}"));
    }
    if let Some(from) = &args.from {
        plan_args
            .set
            .push(format!("execution.state-recovery.path={from}"));
        if args.allow_non_restored_state {
            plan_args
                .set
                .push("execution.state-recovery.ignore-unclaimed-state=true".into());
        }
    }
    let job = plan(&args.file, &plan_args, &args.output)?;
    let (metrics, wall, outcome) = execute(&job, None, "running")?;
    for note in metrics.notes() {
        eprintln!("note: {note}");
    }
    for line in state_lines(&metrics) {
        eprintln!("state: {line}");
    }
    let mut summary = format!(
        "{} rows read, {} rows written",
        JobMetrics::get(&metrics.source_rows),
        JobMetrics::get(&metrics.sink_rows)
    );
    if job.config.checkpointing.is_some() {
        let done = JobMetrics::get(&metrics.checkpoints_completed);
        let avg_ms = JobMetrics::get(&metrics.checkpoint_ms_total) / done.max(1);
        let kib = |b: &std::sync::atomic::AtomicU64| JobMetrics::get(b) as f64 / 1024.0;
        summary.push_str(&format!(
            ", {done} checkpoints ({} failed, {avg_ms} ms on average, {:.1} KiB of state \
             files written in all, at most {:.1} KiB by one, the largest {:.1} KiB in all), \
             {} restarts",
            JobMetrics::get(&metrics.checkpoints_failed),
            kib(&metrics.checkpoint_added_bytes),
            kib(&metrics.checkpoint_peak_added_bytes),
            kib(&metrics.checkpoint_peak_bytes),
            JobMetrics::get(&metrics.restarts)
        ));
    }
    match outcome {
        JobOutcome::Finished => {
            eprintln!("finished in {wall:.2} s: {summary}");
            Ok(())
        }
        JobOutcome::Stopped { savepoint } => {
            eprintln!("stopped with a savepoint after {wall:.2} s: {summary}");
            eprintln!("savepoint: {savepoint}");
            Ok(())
        }
        JobOutcome::Cancelled => Err(Failure::Cancelled(format!(
            "after {wall:.2} s: {summary}; only what checkpoints committed is in the sinks"
        ))),
    }
}
