//! Tier 2: the checkpoint location. Run files are copied there once (hard-linked when on
//! the same file system) and shared by every checkpoint that names them; a manifest per
//! checkpoint and table lists them. Manifests are written atomically (temp file, fsync,
//! rename, fsync of the directory), so a crash leaves either the old set or the new one.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tiered::RunMeta;
use crate::{KeyGroupRange, StateError, StateResult};

/// What one table held at a checkpoint: its run files, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub checkpoint_id: u64,
    /// The table's name (unique per operator subtask; it prefixes its file names).
    pub table: String,
    pub key_group_start: u16,
    pub key_group_end: u16,
    pub runs: Vec<RunMeta>,
}

impl Manifest {
    pub fn key_groups(&self) -> KeyGroupRange {
        KeyGroupRange {
            start: self.key_group_start,
            end: self.key_group_end,
        }
    }
}

/// A checkpoint location on a local or mounted file system.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    root: PathBuf,
}

impl CheckpointStore {
    pub fn new(root: impl Into<PathBuf>) -> StateResult<CheckpointStore> {
        let root = root.into();
        for d in [root.join("files"), root.join("manifests")] {
            std::fs::create_dir_all(&d).map_err(|e| StateError::io(&d, e))?;
        }
        Ok(CheckpointStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a shared file lives in the store.
    pub fn file_path(&self, name: &str) -> PathBuf {
        self.root.join("files").join(name)
    }

    pub fn manifest_path(&self, table: &str, checkpoint_id: u64) -> PathBuf {
        self.root
            .join("manifests")
            .join(format!("{table}-{checkpoint_id:012}.json"))
    }

    /// Puts the file at `local` into the store under `name`, unless an earlier checkpoint
    /// already did (run files are immutable, so the name says it all).
    pub(crate) fn upload(&self, local: &Path, name: &str) -> StateResult<()> {
        let dest = self.file_path(name);
        if dest.exists() {
            return Ok(());
        }
        if std::fs::hard_link(local, &dest).is_ok() {
            return Ok(());
        }
        let tmp = dest.with_extension("upload");
        std::fs::copy(local, &tmp).map_err(|e| StateError::io(local, e))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| StateError::io(&tmp, e))?;
        std::fs::rename(&tmp, &dest).map_err(|e| StateError::io(&dest, e))
    }

    /// Writes `manifest` atomically; returns its path.
    pub(crate) fn write_manifest(&self, manifest: &Manifest) -> StateResult<PathBuf> {
        let path = self.manifest_path(&manifest.table, manifest.checkpoint_id);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(manifest).expect("manifests serialize");
        let mut f = File::create(&tmp).map_err(|e| StateError::io(&tmp, e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| StateError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| StateError::io(&path, e))?;
        let dir = self.root.join("manifests");
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StateError::io(&dir, e))?;
        Ok(path)
    }

    pub fn read_manifest(path: &Path) -> StateResult<Manifest> {
        let bytes = std::fs::read(path).map_err(|e| StateError::io(path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StateError::corrupt(path, &format!("manifest does not parse: {e}")))
    }

    /// Deletes the manifest of `released` and the files only it named among `retained`.
    pub(crate) fn release(&self, released: &Manifest, retained: &[Manifest]) {
        let keep: HashSet<&str> = retained
            .iter()
            .flat_map(|m| m.runs.iter().map(|r| r.name.as_str()))
            .collect();
        for r in &released.runs {
            if !keep.contains(r.name.as_str()) {
                let _ = std::fs::remove_file(self.file_path(&r.name));
            }
        }
        let _ = std::fs::remove_file(self.manifest_path(&released.table, released.checkpoint_id));
    }

    /// How many retained manifests name each file (the reference counts).
    pub fn reference_counts(manifests: &[Manifest]) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for m in manifests {
            for r in &m.runs {
                *counts.entry(r.name.clone()).or_default() += 1;
            }
        }
        counts
    }
}
