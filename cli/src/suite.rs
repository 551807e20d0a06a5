//! `eddy nexmark suite`: Nexmark queries one after another, each in a fresh `eddy nexmark run`
//! process (so CPU time and peak memory are the query's own), written up as `results.json` and
//! a Markdown table.

use std::path::PathBuf;
use std::process::Command;

use clap::Args;
use nexmark::queries::QUERIES;
use perf::suite::{markdown_table, median_run, Outcome, SuiteEntry};
use perf::RunRecord;

use crate::nexmark_run::Workload;
use crate::Failure;

#[derive(Args)]
pub struct SuiteArgs {
    /// Queries to run, comma-separated (q0,q5,q22), or `all` (q0 … q22, the original suite; q23 by name).
    #[arg(long, default_value = "all")]
    pub queries: String,
    #[command(flatten)]
    pub workload: Workload,
    /// Runs of each query; the run with the median events per CPU-second is reported.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Directory for results.json and results.md [default: nexmark-suite-<UTC time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The queries named by `--queries`, in the order given; unknown names are an error that lists
/// the known ones.
fn selected(spec: &str) -> Result<Vec<String>, Failure> {
    let known: Vec<&str> = QUERIES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != "q23")
        .collect();
    if spec.trim() == "all" {
        return Ok(known.iter().map(|q| q.to_string()).collect());
    }
    let mut out = Vec::new();
    for q in spec.split(',').map(str::trim).filter(|q| !q.is_empty()) {
        if !QUERIES.iter().any(|(n, _)| *n == q) {
            return Err(Failure::User(format!(
                "unknown query '{q}'; the queries are {} (or all)",
                known.join(", ")
            )));
        }
        out.push(q.to_string());
    }
    if out.is_empty() {
        return Err(Failure::User("--queries names no query".into()));
    }
    Ok(out)
}

/// One `eddy nexmark run` of `query` in a child process.
fn run_once(args: &SuiteArgs, query: &str) -> Result<RunRecord, Outcome> {
    let exe = std::env::current_exe().map_err(|e| Outcome::Failed {
        message: format!("cannot find the eddy executable: {e}"),
    })?;
    let w = &args.workload;
    let mut cmd = Command::new(exe);
    cmd.args(["nexmark", "run", "--json", "--query", query])
        .args(["--events", &w.events.to_string()])
        .args(["--rate", &w.rate.to_string()])
        .args(["--seed", &w.seed.to_string()]);
    if let Some(p) = w.parallelism {
        cmd.args(["--parallelism", &p.to_string()]);
    }
    let out = cmd.output().map_err(|e| Outcome::Failed {
        message: format!("cannot start eddy: {e}"),
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let message = stderr.trim().trim_start_matches("error: ").to_string();
    match out.status.code() {
        Some(0) => serde_json::from_slice(&out.stdout).map_err(|e| Outcome::Failed {
            message: format!(
                "unreadable result ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            ),
        }),
        // Exit 2 is a user error; for a verbatim Nexmark query that means a construct eddy
        // refuses at planning.
        Some(2) => Err(Outcome::Unsupported { message }),
        _ => Err(Outcome::Failed {
            message: format!("{} ({})", message, out.status),
        }),
    }
}

fn run_query(args: &SuiteArgs, query: &str) -> Outcome {
    let mut runs = Vec::new();
    for _ in 0..args.runs {
        match run_once(args, query) {
            Ok(r) => runs.push(r),
            Err(outcome) => return outcome,
        }
    }
    match median_run(&runs) {
        Some(median) => Outcome::Ran { median, runs },
        None => Outcome::Failed {
            message: "no runs".into(),
        },
    }
}

fn progress_line(entry: &SuiteEntry) -> String {
    match &entry.outcome {
        Outcome::Ran { median: r, .. } => format!(
            "{:.2} M events/CPU-s, {:.2} M events/s, {:.2} s wall",
            r.events_per_cpu_s / 1e6,
            r.events_per_s / 1e6,
            r.wall_s
        ),
        Outcome::Unsupported { message } => {
            format!(
                "not supported yet: {}",
                message.lines().next().unwrap_or("")
            )
        }
        Outcome::Failed { message } => format!("FAILED: {message}"),
    }
}

/// "parallelism N", or what it defaults to.
fn parallelism_text(args: &SuiteArgs) -> String {
    args.workload.parallelism.map_or_else(
        || "parallelism = the number of cores".to_string(),
        |p| format!("parallelism {p}"),
    )
}

fn chart_title(args: &SuiteArgs) -> String {
    format!(
        "eddy Nexmark throughput, {} M events, {}",
        args.workload.events as f64 / 1e6,
        parallelism_text(args)
    )
}

pub fn run(args: SuiteArgs) -> Result<(), Failure> {
    let queries = selected(&args.queries)?;
    args.workload.validate()?;
    if args.runs == 0 {
        return Err(Failure::User("--runs must be at least 1".into()));
    }
    let started = chrono::Utc::now();
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!("nexmark-suite-{}", started.format("%Y%m%d-%H%M%S")))
    });
    std::fs::create_dir_all(&out)
        .map_err(|e| Failure::User(format!("cannot create {}: {e}", out.display())))?;
    let mut entries = Vec::new();
    for (i, query) in queries.iter().enumerate() {
        let width = queries.len().to_string().len();
        eprint!("[{:>width$}/{}] {query:<4} ", i + 1, queries.len());
        let entry = SuiteEntry {
            query: query.clone(),
            outcome: run_query(&args, query),
        };
        eprintln!("{}", progress_line(&entry));
        entries.push(entry);
    }
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Failure::User(format!("cannot write {}: {e}", path.display())))
    };
    let json =
        serde_json::to_string_pretty(&entries).map_err(|e| Failure::Internal(e.to_string()))?;
    write("results.json", json + "\n")?;
    // The chart shows the queries that ran; the table also lists the others and why.
    let picture = match perf::suite::throughput_chart(&entries, &chart_title(&args)) {
        Some(chart) => {
            perf::chart::render(&chart, &out.join("throughput")).map_err(Failure::Internal)?;
            "\n![throughput per query](throughput.svg)\n"
        }
        None => "",
    };
    write(
        "results.md",
        format!(
            "# Nexmark suite, {}\n\n{} events per query, first-event.rate {}, seed {}, \
             {}, median of {} run(s) by events per CPU-second.\n\n{}{picture}",
            started.format("%Y-%m-%d %H:%M UTC"),
            args.workload.events,
            args.workload.rate,
            args.workload.seed,
            parallelism_text(&args),
            args.runs,
            markdown_table(&entries)
        ),
    )?;
    eprintln!("results in {}", out.display());
    let failed: Vec<&str> = entries
        .iter()
        .filter(|e| matches!(e.outcome, Outcome::Failed { .. }))
        .map(|e| e.query.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Internal(format!(
            "{} failed: {}",
            failed.len(),
            failed.join(", ")
        )))
    }
}
