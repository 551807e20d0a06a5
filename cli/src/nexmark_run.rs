//! `eddy nexmark run`: one query from Flink's verbatim SQL, with its throughput.

use clap::Args;
use kernel::metrics::JobMetrics;
use nexmark::queries::{job_script, JobSettings};
use perf::{process_usage, RunRecord};
use sql_planner::plan_script;

use crate::job::{OutputArgs, PlanArgs};
use crate::Failure;

/// What a Nexmark run generates and how wide it runs: shared by `nexmark run` and
/// `nexmark suite`.
#[derive(Args)]
pub struct Workload {
    /// Number of events to generate.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// `first-event.rate`: event-time density in events per second (not a wall-clock limit).
    #[arg(long, default_value_t = 10_000_000)]
    pub rate: u64,
    /// Parallelism of every operator [default: the number of cores].
    #[arg(long, short = 'p')]
    pub parallelism: Option<usize>,
    /// Seed of the generator: the same seed gives the same events.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl Workload {
    pub fn validate(&self) -> Result<(), Failure> {
        if self.events == 0 || self.rate == 0 || self.parallelism == Some(0) {
            return Err(Failure::User(
                "--events, --rate and --parallelism must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct NexmarkRunArgs {
    /// The query: q0 … q23.
    #[arg(long, short = 'q')]
    pub query: String,
    #[command(flatten)]
    pub workload: Workload,
    /// Print exactly one JSON object with the results instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Keep what file-writing queries (q10) wrote, instead of deleting it after the run.
    #[arg(long)]
    pub keep_output: bool,
    /// A setting, as `SET 'key' = 'value'` ahead of the query would (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(args: NexmarkRunArgs) -> Result<(), Failure> {
    args.workload.validate()?;
    let w = &args.workload;
    let submit_time = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let dir = std::env::temp_dir().join(format!("eddy-nexmark-{}", std::process::id()));
    let settings = JobSettings {
        events: w.events,
        rate: w.rate,
        extra_options: vec![("seed".into(), w.seed.to_string())],
        nexmark_dir: dir.display().to_string(),
        submit_time,
        flink_home: dir.display().to_string(),
    };
    let script = job_script(&args.query, &settings)?;
    if script.contains("side_input") {
        nexmark::queries::write_side_input(&dir)?;
    }
    let plan_args = PlanArgs {
        parallelism: w.parallelism,
        set: args.set.clone(),
    };
    let options = plan_args.options(&OutputArgs::default())?;
    let parallelism = options.parallelism;
    let job =
        plan_script(&script, &options).map_err(|e| Failure::from(e).with_prefix(&args.query))?;
    let before = process_usage();
    let result = crate::job::execute(&job, Some(w.events), &args.query);
    let after = process_usage();
    if !args.keep_output {
        let _ = std::fs::remove_dir_all(&dir);
    } else if dir.exists() {
        eprintln!("output kept in {}", dir.display());
    }
    let (metrics, wall, _) = result?;
    let mut record = RunRecord::new(
        &args.query,
        w.events,
        parallelism,
        wall,
        after.cpu_seconds - before.cpu_seconds,
        JobMetrics::get(&metrics.sink_rows),
        after.peak_rss_bytes,
    );
    record.peak_state_bytes = metrics.peak_state_bytes();
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&record).map_err(|e| Failure::Internal(e.to_string()))?
        );
    } else {
        println!("query            {}", record.query);
        println!("events           {}", record.events);
        println!("parallelism      {}", record.parallelism);
        println!("wall seconds     {:.3}", record.wall_s);
        println!("CPU seconds      {:.3}", record.cpu_s);
        println!("events/s         {:.0}", record.events_per_s);
        println!("events/CPU-s     {:.0}", record.events_per_cpu_s);
        println!("sink rows        {}", record.sink_rows);
        println!(
            "peak RSS         {:.1} MiB",
            record.peak_rss_bytes as f64 / (1024.0 * 1024.0)
        );
        for line in crate::job::state_lines(&metrics) {
            println!("state            {line}");
        }
        let done = JobMetrics::get(&metrics.checkpoints_completed);
        if let Some(avg_ms) = JobMetrics::get(&metrics.checkpoint_ms_total).checked_div(done) {
            let kib = |b: &std::sync::atomic::AtomicU64| JobMetrics::get(b) as f64 / 1024.0;
            println!(
                "checkpoints      {done} ({} failed), {avg_ms} ms on average, {:.1} KiB of state files written in all, at most {:.1} KiB by one, the largest {:.1} KiB in all",
                JobMetrics::get(&metrics.checkpoints_failed),
                kib(&metrics.checkpoint_added_bytes),
                kib(&metrics.checkpoint_peak_added_bytes),
                kib(&metrics.checkpoint_peak_bytes),
            );
        }
    }
    Ok(())
}

impl Failure {
    fn with_prefix(self, what: &str) -> Failure {
        match self {
            Failure::User(m) => Failure::User(format!("{what}: {m}")),
            Failure::Internal(m) => Failure::Internal(format!("{what}: {m}")),
            Failure::Cancelled(m) => Failure::Cancelled(format!("{what}: {m}")),
        }
    }
}
