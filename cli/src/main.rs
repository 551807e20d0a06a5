//! `eddy`: run Flink SQL jobs and the Nexmark benchmark.
//!
//! Exit codes: 0 success, 2 user error (bad SQL, bad option, missing file, bad record),
//! 1 internal error.

mod chart;
mod generate;
mod job;
mod nexmark_run;
mod progress;
mod suite;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use connectors::ConnectorRegistry;
use kernel::operator::CancelFlag;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "eddy",
    version,
    about = "A streaming SQL engine: Flink SQL, vectorized on Arrow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Flink SQL script until its bounded input ends, or until Ctrl-C.
    Run(job::RunArgs),
    /// Print the physical job graph of a script: operators, parallelism, edges, schemas.
    Explain(job::ExplainArgs),
    /// The Nexmark benchmark.
    #[command(subcommand)]
    Nexmark(NexmarkCommand),
}

#[derive(Subcommand)]
enum NexmarkCommand {
    /// Run one Nexmark query from its Flink SQL text and report its throughput.
    Run(nexmark_run::NexmarkRunArgs),
    /// Write the person, auction and bid streams as files other engines can read.
    Generate(generate::GenerateArgs),
    /// Run many queries, each in a fresh process; write results.json and a Markdown table.
    Suite(suite::SuiteArgs),
    /// Draw a per-query throughput chart (SVG and PNG) from its JSON description.
    Chart(chart::ChartArgs),
}

/// Why a command failed, which decides the exit code.
pub enum Failure {
    /// The user can fix it: exit 2.
    User(String),
    /// A bug or an environment problem: exit 1.
    Internal(String),
    /// Cancelled by Ctrl-C or SIGTERM before it finished: exit 130.
    Cancelled(String),
}

impl From<kernel::Error> for Failure {
    fn from(e: kernel::Error) -> Self {
        if e.is_user_error() {
            Failure::User(e.to_string())
        } else {
            Failure::Internal(e.to_string())
        }
    }
}

impl From<sql_planner::PlanError> for Failure {
    fn from(e: sql_planner::PlanError) -> Self {
        if e.internal {
            Failure::Internal(e.to_string())
        } else {
            Failure::User(e.to_string())
        }
    }
}

/// Every connector this binary knows.
pub fn connectors() -> ConnectorRegistry {
    let mut r = ConnectorRegistry::with_builtins();
    r.register(std::sync::Arc::new(nexmark::NexmarkConnector));
    r
}

/// Cancels running jobs on Ctrl-C or SIGTERM, as Flink's cancel: tasks stop where they
/// are; nothing that no checkpoint holds is committed and no window fires early. With
/// `savepoints`, the first signal stops the job with a savepoint instead (Flink's stop) and
/// a second one cancels it.
pub fn cancel_on_ctrl_c(savepoints: bool) -> CancelFlag {
    let flag = CancelFlag::default();
    let f = flag.clone();
    // A second handler cannot be installed; one per process is all we need.
    let signals = std::sync::atomic::AtomicUsize::new(0);
    let _ = ctrlc::set_handler(move || {
        let first = signals.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        if savepoints && first {
            eprintln!(
                "\nstopping with a savepoint: interrupted (Ctrl-C or SIGTERM; again cancels)"
            );
            f.request_stop();
        } else {
            eprintln!("\ncancelling: interrupted (Ctrl-C or SIGTERM)");
            f.cancel();
        }
    });
    flag
}

fn main() -> ExitCode {
    // A reader that goes away (`eddy run job.sql | head`) ends eddy quietly, as it does any
    // command-line tool, instead of a panic in the next print.
    // SAFETY: restoring a signal's default disposition before any thread starts.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => job::run(a),
        Command::Explain(a) => job::explain(a),
        Command::Nexmark(NexmarkCommand::Run(a)) => nexmark_run::run(a),
        Command::Nexmark(NexmarkCommand::Generate(a)) => generate::run(a),
        Command::Nexmark(NexmarkCommand::Suite(a)) => suite::run(a),
        Command::Nexmark(NexmarkCommand::Chart(a)) => chart::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::User(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Internal(msg)) => {
            eprintln!("internal error: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Cancelled(msg)) => {
            eprintln!("cancelled: {msg}");
            ExitCode::from(130)
        }
    }
}
