//! Job-wide counters, shared by every task and readable while the job runs (progress bars).

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
    /// Human-readable remarks for the end-of-job report (e.g. where records were skipped).
    notes: Mutex<Vec<String>>,
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

    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().clone()
    }
}
