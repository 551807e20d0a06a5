//! The settings of one job run, as the planner reads them from `SET` statements and the
//! runtime applies them.

use std::time::Duration;

/// Messages in flight per channel by default; batches are sized for cache (about 8 Ki
/// rows), so a bound of a few messages bounds rows too.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 8;

/// Settings of one job run.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Messages in flight per channel.
    pub channel_capacity: usize,
    /// Number of key groups (Flink's `pipeline.max-parallelism`); see [`crate::keys`].
    pub max_parallelism: usize,
    /// A source subtask that has emitted no rows for this long is idle: operators downstream
    /// stop waiting for its watermark until it emits again (Flink's
    /// `table.exec.source.idle-timeout`). `None`, the default, never declares a source idle.
    pub source_idle_timeout: Option<Duration>,
    /// `state.backend.gemini.memory-budget`: bytes of memory each state table of each
    /// subtask keeps before it writes run files. `None` keeps gemini-state's default.
    pub state_memory_budget: Option<usize>,
    /// `state.backend.gemini.blob-min-size`: values at least this long are kept in blob
    /// files; `Some(0)` keeps every value in the run files; `None` keeps gemini-state's
    /// default.
    pub state_blob_min_bytes: Option<usize>,
    /// `None`: no checkpoints (neither `execution.checkpointing.interval` nor a savepoint
    /// directory is set).
    pub checkpointing: Option<CheckpointConfig>,
    /// How the job restarts after a failure.
    pub restart: RestartStrategy,
    /// Where the run resumes from; `None` starts afresh.
    pub recovery: Option<RecoverySettings>,
    /// For tests of recovery (`eddy.test.fail-after-checkpoint`): the job's first attempt
    /// fails right after it publishes this checkpoint, as a crashed task would.
    pub fail_after_checkpoint: Option<u64>,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            max_parallelism: crate::keys::default_max_parallelism(1),
            source_idle_timeout: None,
            state_memory_budget: None,
            state_blob_min_bytes: None,
            checkpointing: None,
            restart: RestartStrategy::None,
            recovery: None,
            fail_after_checkpoint: None,
        }
    }
}

/// How barriers are aligned (Flink's `execution.checkpointing.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointingMode {
    /// A task with several inputs stops reading an input that delivered barrier `n` until
    /// all have: every row is in exactly one checkpoint.
    ExactlyOnce,
    /// No alignment: rows arriving after barrier `n` on one input may be in checkpoint `n`
    /// and replayed after a restore.
    AtLeastOnce,
}

/// What happens to a job's checkpoints when it is cancelled (Flink's
/// `execution.checkpointing.externalized-checkpoint-retention`). A job killed outright keeps
/// them whatever this says; a job that finishes deletes them unless retained on
/// cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointRetention {
    RetainOnCancellation,
    DeleteOnCancellation,
    /// Flink's default: checkpoints are not kept past the job's end.
    NoExternalizedCheckpoints,
}

/// Checkpointing of one job run (Flink's `execution.checkpointing.*` keys).
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// `None`: no periodic checkpoints, only the savepoint taken when the job is stopped
    /// (a savepoint directory is set, `execution.checkpointing.interval` is not).
    pub interval: Option<Duration>,
    pub mode: CheckpointingMode,
    /// A checkpoint not complete after this long is aborted (default 10 min).
    pub timeout: Duration,
    /// Least time between the end of one checkpoint and the start of the next.
    pub min_pause: Duration,
    pub max_concurrent: usize,
    /// Failed checkpoints in a row the job tolerates before it fails (default 0).
    pub tolerable_failures: u32,
    /// Where checkpoints go: a directory, `file://…` or `s3://…`; each job writes under
    /// `<dir>/<job-id>/`.
    pub dir: String,
    /// Settings of the location (`s3.*` keys), as given.
    pub store_settings: Vec<(String, String)>,
    /// Completed checkpoints kept (default 1).
    pub num_retained: usize,
    /// Where `eddy run --savepoint-dir` (or `execution.checkpointing.savepoint-dir`) puts
    /// the savepoint taken when the job is stopped.
    pub savepoint_dir: Option<String>,
    pub retention: CheckpointRetention,
}

/// How a failed job restarts (Flink's `restart-strategy.*` keys).
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    None,
    FixedDelay {
        attempts: u32,
        delay: Duration,
    },
    ExponentialDelay {
        initial_backoff: Duration,
        max_backoff: Duration,
        multiplier: f64,
        reset_threshold: Duration,
        jitter: f64,
        /// Flink 1.19+: `restart-strategy.exponential-delay.attempts-before-reset-backoff`.
        attempts: u32,
    },
    FailureRate {
        max_failures: u32,
        interval: Duration,
        delay: Duration,
    },
}

/// Where a run resumes from (`eddy run --from`, Flink's `execution.state-recovery.path`).
#[derive(Debug, Clone)]
pub struct RecoverySettings {
    /// A checkpoint or savepoint directory, or a directory holding them.
    pub path: String,
    /// State that maps to no operator of the job is dropped instead of refused
    /// (`execution.state-recovery.ignore-unclaimed-state`).
    pub allow_non_restored_state: bool,
    /// Settings of its location (`s3.*` keys), as given.
    pub store_settings: Vec<(String, String)>,
}
