//! Job-wide counters, shared by every task and readable while the job runs (progress bars).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct JobMetrics {
    /// Rows produced by all sources.
    pub source_rows: AtomicU64,
    /// Rows written by all sinks.
    pub sink_rows: AtomicU64,
    /// Rows dropped because they arrived behind the watermark.
    pub late_rows: AtomicU64,
    /// Malformed input records skipped because the format was told to ignore parse errors.
    pub skipped_records: AtomicU64,
    /// Checkpoints published, and those aborted (failed or timed out).
    pub checkpoints_completed: AtomicU64,
    pub checkpoints_failed: AtomicU64,
    /// Times the job restarted from a checkpoint after a failure.
    pub restarts: AtomicU64,
    /// Milliseconds from trigger to publication, summed over published checkpoints.
    pub checkpoint_ms_total: AtomicU64,
    /// Bytes of state files (runs and blobs) checkpoints added (each names its predecessor's
    /// files and adds what changed), summed; the most one checkpoint added; and the most
    /// bytes of state files one checkpoint named (its whole state).
    pub checkpoint_added_bytes: AtomicU64,
    pub checkpoint_peak_added_bytes: AtomicU64,
    pub checkpoint_peak_bytes: AtomicU64,
    /// Human-readable remarks for the end-of-job report (e.g. where records were skipped).
    notes: Mutex<Vec<String>>,
    /// What happens while the job runs that its user should hear of at once (a restart and
    /// its cause, an aborted checkpoint); the CLI prints them as they come.
    events: Mutex<Vec<String>>,
    /// Keyed state held by each stateful operator subtask, by (node, subtask).
    state: Mutex<BTreeMap<(usize, usize), StateReport>>,
}

/// What one stateful operator subtask holds: now, and at most so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateReport {
    /// The operator's name in the job graph.
    pub operator: String,
    pub entries: u64,
    pub bytes: u64,
    pub peak_entries: u64,
    pub peak_bytes: u64,
}

impl JobMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn note(&self, text: impl Into<String>) {
        self.notes.lock().push(text.into());
    }

    /// Reports `text` while the job runs (see `events`).
    pub fn event(&self, text: impl Into<String>) {
        self.events.lock().push(text.into());
    }

    /// The events reported since the last call.
    pub fn take_events(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock())
    }

    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().clone()
    }

    /// Records the state size of subtask `subtask` of node `node` (called as it changes).
    pub fn report_state(
        &self,
        node: usize,
        subtask: usize,
        operator: &str,
        entries: u64,
        bytes: u64,
    ) {
        let mut state = self.state.lock();
        let r = state.entry((node, subtask)).or_insert_with(|| StateReport {
            operator: operator.to_string(),
            ..StateReport::default()
        });
        r.entries = entries;
        r.bytes = bytes;
        r.peak_entries = r.peak_entries.max(entries);
        r.peak_bytes = r.peak_bytes.max(bytes);
    }

    /// The state of every stateful operator subtask, by (node, subtask).
    pub fn state(&self) -> BTreeMap<(usize, usize), StateReport> {
        self.state.lock().clone()
    }

    /// The sum over operator subtasks of their peak state bytes: an upper bound of the job's.
    pub fn peak_state_bytes(&self) -> u64 {
        self.state.lock().values().map(|r| r.peak_bytes).sum()
    }
}
