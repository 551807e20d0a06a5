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
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            max_parallelism: crate::keys::default_max_parallelism(1),
            source_idle_timeout: None,
            state_memory_budget: None,
            state_blob_min_bytes: None,
        }
    }
}
