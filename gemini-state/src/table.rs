//! The `StateTable` trait: the only way an operator reads or writes keyed state.

use std::path::{Path, PathBuf};

use crate::{CheckpointStore, KeyGroup, KeyGroupRange, Manifest, PendingSnapshot};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("key group {key_group} is outside this table's range {range:?}")]
    ForeignKeyGroup {
        key_group: KeyGroup,
        range: KeyGroupRange,
    },
    #[error("state snapshot {0} is corrupt: {1}")]
    CorruptSnapshot(u64, String),
    #[error("state file {path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint location {location}: {what}")]
    Store { location: String, what: String },
}

impl StateError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> StateError {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn store(location: &str, what: impl std::fmt::Display) -> StateError {
        StateError::Store {
            location: location.to_string(),
            what: what.to_string(),
        }
    }

    pub(crate) fn corrupt(path: &Path, what: &str) -> StateError {
        StateError::Corrupt {
            path: path.to_path_buf(),
            what: what.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, StateError>;

/// Per-table settings.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Entries not written for this long (in the table's time, see [`StateTable::advance_time`])
    /// are dropped, like Flink's `table.exec.state.ttl`. `None` keeps entries until deleted.
    pub ttl_ms: Option<i64>,
    /// Bytes tier 0 may hold before it flushes to run files (per table and subtask).
    pub memory_budget: usize,
    /// Directory for run files; `None`: a fresh one under the system temp directory, made on
    /// the first flush and removed with the table.
    pub dir: Option<PathBuf>,
    /// The checkpoint location snapshots are copied to; `None`: snapshots only write run
    /// files locally.
    pub checkpoints: Option<CheckpointStore>,
    /// Checkpoints kept in the location (Flink's `state.checkpoints.num-retained`); the
    /// table releases older ones as it writes new ones. `0`: the table releases nothing and
    /// its owner calls [`CheckpointStore::release`] once a checkpoint of the whole job is
    /// complete (a table's own snapshot being written does not make a job's checkpoint).
    pub retained_checkpoints: usize,
    /// Names the table's files; unique per operator subtask. `None`: a process-unique name.
    pub name: Option<String>,
    /// Runs of one tier merged at a time.
    pub compaction_fanout: usize,
    /// The compaction work budget in bytes written per second (`None`: unthrottled).
    pub compaction_bytes_per_sec: Option<u64>,
    /// Values at least this long are kept in blob files next to the run files, so that
    /// compactions pass them by instead of copying them again at every tier (`None`: every
    /// value stays in its run). The default, 1 KiB, is where separation starts to pay: on YCSB
    /// A over 10x the memory, 1 KiB values ran 1.3x faster with half the write amplification,
    /// 256-byte values 0.8x (BENCHMARKS.md).
    pub blob_min_bytes: Option<usize>,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            ttl_ms: None,
            memory_budget: 1 << 30,
            dir: None,
            checkpoints: None,
            retained_checkpoints: 1,
            name: None,
            compaction_fanout: 4,
            compaction_bytes_per_sec: None,
            blob_min_bytes: Some(1024),
        }
    }
}

/// How much a table holds: live entries and the bytes of their keys and values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSize {
    pub entries: u64,
    pub bytes: u64,
}

/// Two holdings together (an operator's table and its in-memory buffer, say).
impl std::ops::Add for StateSize {
    type Output = StateSize;

    fn add(self, other: StateSize) -> StateSize {
        StateSize {
            entries: self.entries + other.entries,
            bytes: self.bytes + other.bytes,
        }
    }
}

/// Keyed state of one operator subtask, over the key groups it owns.
///
/// Keys are memcomparable byte strings, ordered first by key group, then bytewise. Every call
/// takes many keys so that implementations can amortise lookups (sorted probes, one lock, one
/// I/O per block) and operators stay vectorized.
pub trait StateTable: Send {
    /// The key groups this table holds.
    fn key_groups(&self) -> KeyGroupRange;

    /// Looks up `keys[i]` in `key_groups[i]`; `out` is cleared and gets one slot per key.
    /// (Reads take `&mut self`: a version found on disk is cached in memory.)
    fn get_many(
        &mut self,
        key_groups: &[KeyGroup],
        keys: &[&[u8]],
        out: &mut Vec<Option<Vec<u8>>>,
    ) -> Result<()>;

    /// Like [`StateTable::get_many`] without copying: `visit(i, value)` per key, in order.
    fn read_many(
        &mut self,
        key_groups: &[KeyGroup],
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<()>;

    /// Writes `values[i]` under `keys[i]`, replacing what was there.
    fn put_many(&mut self, key_groups: &[KeyGroup], keys: &[&[u8]], values: &[&[u8]])
        -> Result<()>;

    /// Deletes the given keys; missing keys are ignored.
    fn delete_many(&mut self, key_groups: &[KeyGroup], keys: &[&[u8]]) -> Result<()>;

    /// Calls `visit(key, value)` for every key in `key_group` starting with `prefix`, in key
    /// order, until `visit` returns false.
    fn scan_prefix(
        &self,
        key_group: KeyGroup,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;

    /// Calls `visit` for keys in `[start, end)` of `key_group`, in key order.
    fn scan_range(
        &self,
        key_group: KeyGroup,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()>;

    /// Deletes keys in `[start, end)` of `key_group`; returns how many.
    fn delete_range(&mut self, key_group: KeyGroup, start: &[u8], end: &[u8]) -> Result<u64>;

    /// Deletes keys in `[start, end)` in every key group of the table; returns how many.
    /// Operators that prefix keys with event time use this for watermark-driven cleanup.
    fn delete_range_all_groups(&mut self, start: &[u8], end: &[u8]) -> Result<u64>;

    /// Moves the table's clock (processing or event time, as the operator chooses) and drops
    /// entries whose TTL has passed; returns how many were dropped.
    fn advance_time(&mut self, now_ms: i64) -> Result<u64>;

    /// Number of live entries.
    fn len(&self) -> usize;

    /// Entries stored and the bytes of their keys and values, kept current by every write
    /// (entries past their TTL count until `advance_time` drops them). Cheap: for metrics.
    fn size(&self) -> StateSize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Freezes the current contents for checkpoint `checkpoint_id` (cheap: no copying) and
    /// writes them to the checkpoint location in the background.
    fn snapshot(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot>;

    /// Replaces the contents with the snapshots of `manifests` (several on a rescale),
    /// keeping only this table's key groups.
    fn restore(&mut self, manifests: &[Manifest]) -> Result<()>;
}
