//! The set of run files a table reads, newest first, and how each is found.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointStore;
use crate::run::RunFile;
use crate::StateResult;

/// What a manifest records of a run file, and what a table knows before opening it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The file's name, unique across the tables sharing a checkpoint location.
    pub name: String,
    /// Compaction tier: 0 for flushed runs, higher for merged ones.
    pub tier: u8,
    pub bytes: u64,
    pub entries: u64,
    pub tombstones: u64,
    pub min_key_group: u16,
    pub max_key_group: u16,
    pub max_written_at: i64,
}

/// One run file of a table: opened on first use, fetched first if it only exists in the
/// checkpoint location (a lazy restore).
#[derive(Debug)]
pub(crate) struct Run {
    pub meta: RunMeta,
    local: PathBuf,
    /// Where to fetch the file from if it is not local yet.
    remote: Option<CheckpointStore>,
    file: OnceLock<Arc<RunFile>>,
    /// Held while the file is fetched and opened, so that a reader and the compactor
    /// asking at once fetch it once.
    opening: Mutex<()>,
    /// No version names the run any more: its local file goes when the last reader does.
    retired: AtomicBool,
}

impl Run {
    /// A run just written to `local`, opened.
    pub(crate) fn written(meta: RunMeta, file: RunFile) -> Run {
        let local = file.path().to_path_buf();
        let cell = OnceLock::new();
        let _ = cell.set(Arc::new(file));
        Run {
            meta,
            local,
            remote: None,
            file: cell,
            opening: Mutex::new(()),
            retired: AtomicBool::new(false),
        }
    }

    /// A run named by a manifest, fetched from `remote` to `local` on first use.
    pub(crate) fn restored(meta: RunMeta, local: PathBuf, remote: CheckpointStore) -> Run {
        Run {
            meta,
            local,
            remote: Some(remote),
            file: OnceLock::new(),
            opening: Mutex::new(()),
            retired: AtomicBool::new(false),
        }
    }

    /// The open file, fetching and opening it on first use.
    pub(crate) fn file(&self) -> StateResult<&Arc<RunFile>> {
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        let _opening = self.opening.lock();
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        if let Some(remote) = &self.remote {
            if !self.local.exists() {
                remote.download(&self.meta.name, &self.local)?;
            }
        }
        let file = RunFile::open(&self.local)?;
        Ok(self.file.get_or_init(|| Arc::new(file)))
    }

    /// Whether the run may hold keys of key groups `[start, end)`.
    pub(crate) fn overlaps(&self, start: u16, end: u16) -> bool {
        self.meta.min_key_group < end && self.meta.max_key_group >= start
    }

    /// The file is no longer part of the table: delete it once nothing reads it (a reader
    /// may still be opening it).
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        if let Some(f) = self.file.get() {
            f.mark_obsolete();
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.retired.load(Ordering::Relaxed) {
            return;
        }
        match self.file.get() {
            // The open file deletes itself when its last reader lets go.
            Some(f) => f.mark_obsolete(),
            None => {
                let _ = std::fs::remove_file(&self.local);
            }
        }
    }
}

/// The runs a table reads, newest first. Replaced whole (copy on write) by flushes and
/// compactions so that readers and the background worker each hold a consistent set.
#[derive(Debug, Default, Clone)]
pub(crate) struct Version {
    pub runs: Vec<Arc<Run>>,
}
