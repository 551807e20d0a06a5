//! Checkpoints: what tasks and the coordinator say to each other, the coordinator itself
//! ([`coordinator`]), the `_metadata` file ([`metadata`]) and how a run resumes from one
//! ([`restore`]).
//!
//! Tasks and the coordinator share a few counters ([`Signals`]) rather than channels into
//! every task: a source task reads the trigger between two polls and injects the barrier; a
//! task reads the completed id between messages and tells its operators. Tasks report their
//! snapshots on one channel to the coordinator, which waits for the state tables' snapshots
//! in its own thread, so that no task waits for the disk.

pub(crate) mod coordinator;
pub mod metadata;
pub(crate) mod restore;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use gemini_state::PendingSnapshot;
use kernel::checkpoint::{CheckpointId, SplitState};

/// Counters the coordinator writes and the tasks read.
#[derive(Debug)]
pub(crate) struct Signals {
    /// The newest checkpoint sources are to inject a barrier for (0: none yet).
    pub trigger: AtomicU64,
    /// The newest checkpoint published.
    pub completed: AtomicU64,
    /// The newest checkpoint aborted.
    pub aborted: AtomicU64,
    /// Per task: a published checkpoint holds the task's state after its end, so what its
    /// sinks finished with may be committed and the task may exit.
    pub final_published: Vec<AtomicBool>,
    /// Barriers are aligned (`EXACTLY_ONCE`).
    pub aligned: bool,
    /// The savepoint the job stops with (0: none): sources read nothing after its barrier,
    /// and once it is published every task tells its operators and ends without flushing.
    pub stop_at: AtomicU64,
}

impl Signals {
    pub fn new(tasks: usize, aligned: bool, last_id: CheckpointId) -> Signals {
        Signals {
            trigger: AtomicU64::new(last_id),
            completed: AtomicU64::new(last_id),
            aborted: AtomicU64::new(0),
            final_published: (0..tasks).map(|_| AtomicBool::new(false)).collect(),
            aligned,
            stop_at: AtomicU64::new(0),
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Acquire)
    }

    pub fn set(counter: &AtomicU64, id: u64) {
        counter.fetch_max(id, Ordering::AcqRel);
    }
}

/// A location's settings (`s3.*` keys) as `CheckpointStore::open` takes them.
pub(crate) fn location_settings(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Copies every state file `meta`'s tables name from `from` into `to` (`what` names the
/// copy in errors): a savepoint is made, and imported into a job directory, this way.
pub(crate) fn copy_state_files(
    meta: &metadata::CheckpointMetadata,
    from: &gemini_state::CheckpointStore,
    to: &gemini_state::CheckpointStore,
    what: &str,
) -> kernel::Result<()> {
    for manifest in meta.manifests() {
        for name in manifest.files() {
            from.copy_file_to(name, to)
                .map_err(|e| kernel::Error::user(format!("copying {name} {what}: {e}")))?;
        }
    }
    Ok(())
}

/// How often a task waiting for input looks at the signals.
pub(crate) const SIGNAL_POLL: Duration = Duration::from_millis(10);

/// What one operator, source or sink subtask saved at a barrier, as the task sends it.
#[derive(Debug)]
pub(crate) struct NodeSnapshot {
    pub uid: String,
    pub name: String,
    pub parallelism: usize,
    pub subtask: usize,
    pub state: Vec<u8>,
    pub tables: Vec<(String, PendingSnapshot)>,
    pub splits: Vec<SplitState>,
    pub event_timers: Vec<i64>,
    pub processing_timers_ms: Vec<u64>,
}

/// What a task tells the coordinator.
#[derive(Debug)]
pub(crate) enum TaskReport {
    /// The task passed barrier `checkpoint_id`; these are its nodes' snapshots.
    Snapshot {
        checkpoint_id: CheckpointId,
        task: usize,
        nodes: Vec<NodeSnapshot>,
    },
    /// The task has ended; its nodes' state after the end stands for it in every
    /// checkpoint it did not take part in.
    Finished {
        task: usize,
        nodes: Vec<NodeSnapshot>,
    },
}

/// Where a task sends its reports; `None` for a job without checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct TaskLink {
    pub task: usize,
    pub signals: std::sync::Arc<Signals>,
    pub reports: crossbeam_channel::Sender<TaskReport>,
}

#[cfg(test)]
mod tests;
