//! Resuming a run from a checkpoint: finding it, checking that it fits the job, and handing
//! each new subtask its share.
//!
//! The path may name a checkpoint (`…/<job-id>/chk-<n>` or its `_metadata`), a savepoint
//! (`…/savepoint-<id>-<random>`), a job's directory (its newest published checkpoint), or a
//! directory holding jobs or savepoints (the newest of them). The run continues in a
//! checkpoint's job directory, as Flink's CLAIM mode: its checkpoints share the restored
//! one's files and number on from it. A savepoint belongs to the user: the run starts a job
//! directory of its own and copies the savepoint's files into it first. Keyed state moves by key group, so any parallelism up to the max parallelism works;
//! operator state (a sink's pending commits, a source's splits) is dealt round-robin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gemini_state::CheckpointStore;
use kernel::checkpoint::{Committable, SplitState};
use kernel::graph::JobGraph;
use kernel::operator::RestoredState;
use kernel::{Error, Result};

use super::metadata::{self, checkpoint_id_of, CheckpointMetadata, SubtaskState, METADATA_FILE};

/// A checkpoint a run resumes from.
#[derive(Debug, Clone)]
pub(crate) struct Restore {
    pub meta: CheckpointMetadata,
    /// The checkpoint's (or savepoint's) own directory, which holds its `_metadata`.
    pub dir: String,
    /// The job directory it lies in, where the run goes on writing checkpoints (not for a
    /// savepoint).
    pub job_dir: String,
    /// Where a job that takes no checkpoints reads the restored state files (a job that
    /// takes them reads them from its own job directory).
    pub read_from: Option<CheckpointStore>,
}

/// Finds the checkpoint `path` names; `settings` are the location's (`s3.*`) settings.
pub(crate) fn locate(path: &str, settings: &[(&str, &str)]) -> Result<Restore> {
    let local = match path.split_once("://") {
        None => Some(PathBuf::from(path)),
        Some(("file", rest)) => Some(PathBuf::from(rest)),
        Some(_) => None,
    };
    let Some(local) = local else {
        return locate_in_store(path, settings);
    };
    let local = if local.file_name().is_some_and(|n| n == METADATA_FILE) {
        local.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        local
    };
    if !local.exists() {
        return Err(Error::user(format!(
            "cannot restore from {}: no such file or directory",
            local.display()
        )));
    }
    let chk = if local.join(METADATA_FILE).is_file() {
        local
    } else if let Some(chk) = newest_in_job(&local)? {
        chk
    } else {
        // Jobs (each its newest checkpoint) and savepoints: the one published last.
        let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
        for dir in subdirs(&local)? {
            let found = if dir.join(METADATA_FILE).is_file() {
                Some(dir)
            } else {
                newest_in_job(&dir)?
            };
            if let Some(chk) = found {
                let written = std::fs::metadata(chk.join(METADATA_FILE))
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                if best.as_ref().is_none_or(|(b, _)| written > *b) {
                    best = Some((written, chk));
                }
            }
        }
        best.map(|(_, c)| c).ok_or_else(|| {
            Error::user(format!(
                "cannot restore from {}: it holds no published checkpoint or savepoint (a \
                 chk-<n> or savepoint-… directory with a _metadata file)",
                local.display()
            ))
        })?
    };
    let file = chk.join(METADATA_FILE);
    let bytes = std::fs::read(&file)
        .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
    let meta = CheckpointMetadata::decode(&bytes, &file.display().to_string())?;
    let job_dir = chk
        .parent()
        .ok_or_else(|| Error::user(format!("{} lies in no job directory", chk.display())))?;
    Ok(Restore {
        meta,
        dir: chk.display().to_string(),
        job_dir: job_dir.display().to_string(),
        read_from: None,
    })
}

fn chk_id(dir: &Path) -> u64 {
    dir.file_name()
        .and_then(|n| n.to_str())
        .and_then(checkpoint_id_of)
        .unwrap_or(0)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The newest `chk-<n>` of a job directory that has its metadata.
fn newest_in_job(job: &Path) -> Result<Option<PathBuf>> {
    Ok(subdirs(job)?
        .into_iter()
        .filter(|d| {
            d.file_name()
                .and_then(|n| n.to_str())
                .and_then(checkpoint_id_of)
                .is_some()
        })
        .filter(|d| d.join(METADATA_FILE).is_file())
        .max_by_key(|d| chk_id(d)))
}

/// [`locate`] in a bucket: `path` is a checkpoint or a job directory.
fn locate_in_store(path: &str, settings: &[(&str, &str)]) -> Result<Restore> {
    let open = |url: &str| {
        CheckpointStore::open(url, settings)
            .map_err(|e| Error::user(format!("cannot restore from {url}: {e}")))
    };
    let trimmed = path
        .trim_end_matches('/')
        .trim_end_matches(METADATA_FILE)
        .trim_end_matches('/');
    let (parent, last) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    if let Some(id) = checkpoint_id_of(last) {
        let store = open(parent)?;
        let meta = metadata::read(&store, id)?.ok_or_else(|| {
            Error::user(format!("cannot restore from {path}: it has no _metadata"))
        })?;
        return Ok(Restore {
            meta,
            dir: trimmed.to_string(),
            job_dir: parent.to_string(),
            read_from: None,
        });
    }
    let store = open(trimmed)?;
    // A savepoint's own directory.
    let own = store
        .get_object(METADATA_FILE)
        .map_err(|e| Error::user(format!("cannot restore from {path}: {e}")))?;
    if let Some(bytes) = own {
        let where_ = store.object_location(METADATA_FILE);
        return Ok(Restore {
            meta: CheckpointMetadata::decode(&bytes, &where_)?,
            dir: trimmed.to_string(),
            job_dir: parent.to_string(),
            read_from: None,
        });
    }
    let id = *metadata::published(&store)?.last().ok_or_else(|| {
        Error::user(format!(
            "cannot restore from {path}: it holds no published checkpoint"
        ))
    })?;
    // Listed as published a moment ago; deleted since only if another run released it.
    let meta = metadata::read(&store, id)?.ok_or_else(|| {
        Error::user(format!(
            "cannot restore from {path}: checkpoint {id} was deleted meanwhile"
        ))
    })?;
    Ok(Restore {
        meta,
        dir: format!("{trimmed}/{}", metadata::checkpoint_dir(id)),
        job_dir: trimmed.to_string(),
        read_from: None,
    })
}

impl Restore {
    /// Checks that the checkpoint's state maps onto `graph`: every operator it holds state
    /// for is in the job (unless `allow_non_restored` drops the rest), and the key groups
    /// are the same (the nodes' parallelism is checked against them with the graph).
    pub fn check(
        &self,
        graph: &JobGraph,
        max_parallelism: usize,
        allow_non_restored: bool,
    ) -> Result<()> {
        if self.meta.max_parallelism != max_parallelism {
            return Err(Error::user(format!(
                "checkpoint {} was taken with max parallelism {} and this job has {}: set \
                 'pipeline.max-parallelism' = '{}' to restore it (key groups cannot change)",
                self.meta.checkpoint_id,
                self.meta.max_parallelism,
                max_parallelism,
                self.meta.max_parallelism
            )));
        }
        let unclaimed: Vec<String> = self
            .meta
            .operators
            .iter()
            .filter(|(uid, op)| {
                !graph.nodes.iter().any(|n| &n.uid == *uid) && op.subtasks.iter().any(has_state)
            })
            .map(|(uid, op)| format!("'{}' (uid {uid})", op.name))
            .collect();
        if !unclaimed.is_empty() && !allow_non_restored {
            return Err(Error::user(format!(
                "checkpoint {} holds state of {} that no operator of this job claims: the \
                 query or its plan changed. Run with --allow-non-restored-state (or SET \
                 'execution.state-recovery.ignore-unclaimed-state' = 'true') to drop it",
                self.meta.checkpoint_id,
                unclaimed.join(", ")
            )));
        }
        Ok(())
    }

    fn subtasks(&self, uid: &str) -> &[SubtaskState] {
        self.meta
            .operators
            .get(uid)
            .map_or(&[][..], |o| o.subtasks.as_slice())
    }

    /// The old subtasks whose operator state new subtask `subtask` of `parallelism` takes.
    fn dealt(
        &self,
        uid: &str,
        subtask: usize,
        parallelism: usize,
    ) -> impl Iterator<Item = &SubtaskState> {
        self.subtasks(uid)
            .iter()
            .enumerate()
            .filter(move |(i, _)| i % parallelism == subtask)
            .map(|(_, s)| s)
    }

    /// What an operator subtask restores, and its timers (event time; processing time as
    /// milliseconds from now). At the parallelism of the checkpoint a subtask gets its own
    /// timers; after a rescale it gets every old subtask's (a timer with no state behind it
    /// fires and finds nothing).
    pub fn operator(
        &self,
        uid: &str,
        subtask: usize,
        parallelism: usize,
    ) -> (RestoredState, Vec<i64>, Vec<u64>) {
        let old = self.subtasks(uid);
        let mut restored = RestoredState {
            states: self
                .dealt(uid, subtask, parallelism)
                .map(|s| s.state.clone())
                .collect(),
            all_states: old.iter().map(|s| s.state.clone()).collect(),
            tables: BTreeMap::new(),
        };
        for s in old {
            for (name, m) in &s.tables {
                restored
                    .tables
                    .entry(name.clone())
                    .or_default()
                    .push(m.clone());
            }
        }
        let timer_sources: Vec<&SubtaskState> = if old.len() == parallelism {
            old.get(subtask).into_iter().collect()
        } else {
            old.iter().collect()
        };
        let mut event: Vec<i64> = timer_sources
            .iter()
            .flat_map(|s| s.event_timers.iter().copied())
            .collect();
        event.sort_unstable();
        event.dedup();
        let processing = timer_sources
            .iter()
            .flat_map(|s| s.processing_timers_ms.iter().copied())
            .collect();
        (restored, event, processing)
    }

    /// The splits source subtask `subtask` of `parallelism` resumes, dealt round-robin in
    /// split order; `None` if the checkpoint has no state for the source.
    pub fn splits(&self, uid: &str, subtask: usize, parallelism: usize) -> Option<Vec<SplitState>> {
        let op = self.meta.operators.get(uid)?;
        let mut all: Vec<&SplitState> = op.subtasks.iter().flat_map(|s| s.splits.iter()).collect();
        all.sort_by(|a, b| a.split.cmp(&b.split));
        Some(
            all.into_iter()
                .enumerate()
                .filter(|(i, _)| i % parallelism == subtask)
                .map(|(_, s)| s.clone())
                .collect(),
        )
    }

    /// Every committable the sink node's subtasks had pending, for the factory's clean-up.
    pub fn sink_committables(&self, uid: &str) -> Result<Vec<Committable>> {
        let mut all = Vec::new();
        for s in self.subtasks(uid) {
            for list in crate::sink::decode_sink_state(&s.state)?.0.into_values() {
                all.extend(list);
            }
        }
        Ok(all)
    }
}

fn has_state(s: &SubtaskState) -> bool {
    !s.state.is_empty()
        || !s.tables.is_empty()
        || !s.splits.is_empty()
        || !s.event_timers.is_empty()
}
