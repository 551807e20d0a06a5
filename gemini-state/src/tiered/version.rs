//! The set of run files a table reads, newest first, the blob files they reference, and how
//! each file is found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointStore;
use crate::run::{BlobFile, BlobRef, LocalFile, RunFile};
use crate::{StateError, StateResult};

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
    /// The blob files holding the run's large values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<BlobUse>,
}

/// A blob file a run references, and how much of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobUse {
    /// The id references carry.
    pub id: u64,
    /// The file's name, unique across the tables sharing a checkpoint location.
    pub name: String,
    /// The file's size.
    pub bytes: u64,
    /// Bytes of the values this run references in it.
    pub referenced: u64,
}

/// What a table opens lazily: a run file or a blob file.
pub(crate) trait TableFile: Sized {
    fn open(path: &Path) -> StateResult<Self>;
    fn local(&self) -> &LocalFile;
}

impl TableFile for RunFile {
    fn open(path: &Path) -> StateResult<RunFile> {
        RunFile::open(path)
    }
    fn local(&self) -> &LocalFile {
        RunFile::local(self)
    }
}

impl TableFile for BlobFile {
    fn open(path: &Path) -> StateResult<BlobFile> {
        BlobFile::open(path)
    }
    fn local(&self) -> &LocalFile {
        BlobFile::local(self)
    }
}

/// A file of a table: opened on first use, fetched first if it only exists in the
/// checkpoint location (a lazy restore); deleted once retired and no longer read.
#[derive(Debug)]
pub(crate) struct LazyFile<T: TableFile> {
    name: String,
    local: PathBuf,
    /// Where to fetch the file from if it is not local yet.
    remote: Option<CheckpointStore>,
    file: OnceLock<Arc<T>>,
    /// Held while the file is fetched and opened, so that a reader and the compactor
    /// asking at once fetch it once.
    opening: Mutex<()>,
    /// No version names the file any more: its local copy goes when the last reader does.
    retired: AtomicBool,
}

impl<T: TableFile> LazyFile<T> {
    /// A file just written, opened.
    fn written(name: String, file: T) -> LazyFile<T> {
        let local = file.local().path().to_path_buf();
        let cell = OnceLock::new();
        let _ = cell.set(Arc::new(file));
        LazyFile {
            name,
            local,
            remote: None,
            file: cell,
            opening: Mutex::new(()),
            retired: AtomicBool::new(false),
        }
    }

    /// A file named by a manifest, fetched from `remote` to `local` on first use.
    fn restored(name: String, local: PathBuf, remote: CheckpointStore) -> LazyFile<T> {
        LazyFile {
            name,
            local,
            remote: Some(remote),
            file: OnceLock::new(),
            opening: Mutex::new(()),
            retired: AtomicBool::new(false),
        }
    }

    /// Where the file is (or will be, once fetched) on local disk.
    pub(crate) fn local_path(&self) -> &Path {
        &self.local
    }

    /// The open file, fetching and opening it on first use.
    pub(crate) fn get(&self) -> StateResult<&Arc<T>> {
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        let _opening = self.opening.lock();
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        if let Some(remote) = &self.remote {
            if !self.local.exists() {
                remote.download(&self.name, &self.local)?;
            }
        }
        let file = T::open(&self.local)?;
        Ok(self.file.get_or_init(|| Arc::new(file)))
    }

    /// The file is no longer part of the table: delete it once nothing reads it (a reader
    /// may still be opening it).
    fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        if let Some(f) = self.file.get() {
            f.local().mark_obsolete();
        }
    }
}

impl<T: TableFile> Drop for LazyFile<T> {
    fn drop(&mut self) {
        if !self.retired.load(Ordering::Relaxed) {
            return;
        }
        match self.file.get() {
            // The open file deletes itself when its last reader lets go.
            Some(f) => f.local().mark_obsolete(),
            None => {
                let _ = std::fs::remove_file(&self.local);
            }
        }
    }
}

/// One blob file of a table, shared by the runs that reference it.
#[derive(Debug)]
pub(crate) struct Blob {
    pub id: u64,
    /// The file's size.
    pub bytes: u64,
    pub file: LazyFile<BlobFile>,
}

impl Blob {
    pub(crate) fn written(id: u64, name: String, bytes: u64, file: BlobFile) -> Blob {
        Blob {
            id,
            bytes,
            file: LazyFile::written(name, file),
        }
    }

    pub(crate) fn restored(u: &BlobUse, local: PathBuf, remote: CheckpointStore) -> Blob {
        Blob {
            id: u.id,
            bytes: u.bytes,
            file: LazyFile::restored(u.name.clone(), local, remote),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.file.name
    }

    /// No run of the table's version references the file any more.
    pub(crate) fn retire(&self) {
        self.file.retire();
    }

    /// The value `r` points at, into `buf`.
    pub(crate) fn read(&self, r: BlobRef, buf: &mut Vec<u8>) -> StateResult<()> {
        self.file.get()?.read(r, buf)
    }
}

/// One run file of a table and the blob files it references.
#[derive(Debug)]
pub(crate) struct Run {
    pub meta: RunMeta,
    file: LazyFile<RunFile>,
    /// In the order of `meta.blobs`.
    pub blobs: Vec<Arc<Blob>>,
}

impl Run {
    /// A run just written, opened.
    pub(crate) fn written(meta: RunMeta, file: RunFile, blobs: Vec<Arc<Blob>>) -> Run {
        Run {
            file: LazyFile::written(meta.name.clone(), file),
            meta,
            blobs,
        }
    }

    /// A run named by a manifest, fetched from `remote` to `local` on first use.
    pub(crate) fn restored(
        meta: RunMeta,
        local: PathBuf,
        remote: CheckpointStore,
        blobs: Vec<Arc<Blob>>,
    ) -> Run {
        Run {
            file: LazyFile::restored(meta.name.clone(), local, remote),
            meta,
            blobs,
        }
    }

    /// The open file, fetching and opening it on first use.
    pub(crate) fn file(&self) -> StateResult<&Arc<RunFile>> {
        self.file.get()
    }

    /// Where the file is (or will be, once fetched) on local disk.
    pub(crate) fn local_path(&self) -> &Path {
        self.file.local_path()
    }

    /// Whether the run may hold keys of key groups `[start, end)`.
    pub(crate) fn overlaps(&self, start: u16, end: u16) -> bool {
        self.meta.min_key_group < end && self.meta.max_key_group >= start
    }

    /// The file is no longer part of the table: delete it once nothing reads it. Its blob
    /// files are retired separately, once no run references them.
    pub(crate) fn retire(&self) {
        self.file.retire();
    }

    /// The value a `Kind::Blob` entry of this run references, into `buf`.
    pub(crate) fn read_blob(&self, reference: &[u8], buf: &mut Vec<u8>) -> StateResult<()> {
        let malformed = || {
            StateError::corrupt(
                self.local_path(),
                "a blob reference is malformed or names a blob file the run does not list",
            )
        };
        let r = BlobRef::decode(reference).ok_or_else(malformed)?;
        let blob = self
            .blobs
            .iter()
            .find(|b| b.id == r.blob)
            .ok_or_else(malformed)?;
        blob.read(r, buf)
    }
}

/// The runs a table reads, newest first. Replaced whole (copy on write) by flushes and
/// compactions so that readers and the background worker each hold a consistent set.
#[derive(Debug, Default, Clone)]
pub(crate) struct Version {
    pub runs: Vec<Arc<Run>>,
}

impl Version {
    /// Every blob file the runs reference, with the bytes of values they reference in it
    /// (shadowed versions count until a compaction drops them).
    pub(crate) fn blobs(&self) -> HashMap<u64, (&Arc<Blob>, u64)> {
        let mut blobs: HashMap<u64, (&Arc<Blob>, u64)> = HashMap::new();
        for run in &self.runs {
            for (blob, used) in run.blobs.iter().zip(&run.meta.blobs) {
                blobs.entry(blob.id).or_insert((blob, 0)).1 += used.referenced;
            }
        }
        blobs
    }

    /// Retires every run and blob file (the table is dropped or restored over).
    pub(crate) fn retire_all(&self) {
        for run in &self.runs {
            run.retire();
            for blob in &run.blobs {
                blob.retire();
            }
        }
    }
}
