//! The checkpoint coordinator: triggers checkpoints at the configured interval, collects
//! every task's snapshot, and publishes a checkpoint once all are in, metadata last.
//!
//! It runs on a thread of its own for one attempt of the job. A checkpoint is complete when
//! every task has reported it, or has ended (its state after the end stands for it: as in
//! Flink 2, checkpoints go on while some tasks have finished). The snapshots of state tables
//! are waited for here, not in the tasks. A checkpoint not complete within the timeout, or
//! whose files could not be written, is aborted; more aborted in a row than tolerated fail
//! the job. When every task has ended, a last checkpoint holds the whole job's final state,
//! and only after it is published do sinks commit what they finished with.
//!
//! Asked to stop with a savepoint, it triggers one more checkpoint and no periodic ones
//! after it. Sources read nothing after its barrier; once every task has reported it, its
//! files are copied into a savepoint directory of their own with its metadata last, it is
//! published as a checkpoint of the job too, and the tasks, told so, commit and end. A
//! savepoint that fails leaves the job running, as Flink's stop does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use gemini_state::{CheckpointStore, Manifest};
use kernel::config::CheckpointConfig;
use kernel::metrics::JobMetrics;
use kernel::operator::CancelFlag;
use kernel::{Error, Result};
use parking_lot::Mutex;

use super::metadata::{self, CheckpointMetadata, OperatorState, SubtaskState};
use super::{NodeSnapshot, Signals, TaskReport};

/// One node subtask's snapshot with its tables written.
#[derive(Debug, Clone)]
struct Resolved {
    uid: String,
    name: String,
    parallelism: usize,
    subtask: usize,
    state: SubtaskState,
}

struct Pending {
    started: Instant,
    acks: HashMap<usize, Vec<Resolved>>,
    failed: Option<String>,
}

impl Pending {
    fn new() -> Pending {
        Pending {
            started: Instant::now(),
            acks: HashMap::new(),
            failed: None,
        }
    }
}

/// What the coordinator leaves for the run loop: the newest published checkpoint, and the
/// error that failed the job, if it did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub latest: Option<CheckpointMetadata>,
    pub failure: Option<Error>,
    /// Where the savepoint the job stopped with was written.
    pub savepoint: Option<String>,
}

pub(crate) struct Coordinator {
    pub config: CheckpointConfig,
    /// The job's directory in the checkpoint location.
    pub store: CheckpointStore,
    pub job_id: String,
    pub max_parallelism: usize,
    pub signals: Arc<Signals>,
    pub reports: Receiver<TaskReport>,
    pub tasks: usize,
    pub metrics: Arc<JobMetrics>,
    pub cancel: CancelFlag,
    /// Set when the job has stopped, for whatever reason.
    pub stopped: Arc<AtomicBool>,
    pub outcome: Arc<Mutex<Outcome>>,
    /// Published checkpoints kept, oldest first (those of earlier runs of the job too).
    pub retained: VecDeque<CheckpointMetadata>,
    /// The last checkpoint id used (restored, or of an earlier attempt).
    pub last_id: u64,
    /// Fail the job once this checkpoint is published (a test of recovery).
    pub fail_after: Option<u64>,
}

impl Coordinator {
    pub fn run(mut self) {
        let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
        let mut finished: HashMap<usize, Vec<Resolved>> = HashMap::new();
        let mut next_id = self.last_id;
        let mut last_trigger = Instant::now();
        let mut last_done = Instant::now() - self.config.min_pause;
        let mut failures_in_a_row = 0u32;
        // The savepoint being stopped with.
        let mut savepoint: Option<u64> = None;
        loop {
            if self.stopped.load(Ordering::Acquire) {
                break;
            }
            if savepoint.is_none() && self.cancel.stop_requested() {
                if self.config.savepoint_dir.is_none() {
                    // Nowhere to put a savepoint: a stop is a cancel.
                    self.cancel.cancel();
                } else if finished.len() < self.tasks {
                    next_id += 1;
                    savepoint = Some(next_id);
                    tracing::info!("stopping with savepoint {next_id}");
                    // Sources learn where to stop before they see the trigger.
                    self.signals.stop_at.store(next_id, Ordering::SeqCst);
                    pending.insert(next_id, Pending::new());
                    Signals::set(&self.signals.trigger, next_id);
                }
            }
            let report = match self.reports.recv_timeout(super::SIGNAL_POLL) {
                Ok(r) => Some(r),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match report {
                Some(TaskReport::Snapshot {
                    checkpoint_id,
                    task,
                    nodes,
                }) => {
                    if let Some(p) = pending.get_mut(&checkpoint_id) {
                        match resolve(nodes) {
                            Ok(r) => {
                                p.acks.insert(task, r);
                            }
                            Err(e) => p.failed = Some(e.to_string()),
                        }
                    }
                }
                Some(TaskReport::Finished { task, nodes }) => match resolve(nodes) {
                    Ok(r) => {
                        finished.insert(task, r);
                    }
                    Err(e) => return self.fail(e),
                },
                None => {}
            }

            // Complete, in order, what every task has reported or ended before.
            let ids: Vec<u64> = pending.keys().copied().collect();
            for id in ids {
                let p = &pending[&id];
                let failed = match &p.failed {
                    Some(why) => Some(why.clone()),
                    None if p.started.elapsed() > self.config.timeout => {
                        Some(format!("not complete after {:?}", self.config.timeout))
                    }
                    None => None,
                };
                if let Some(why) = failed {
                    pending.remove(&id);
                    if savepoint == Some(id) {
                        savepoint = None;
                        self.savepoint_failed(id, &why);
                    } else if self.abort(id, &why, &mut failures_in_a_row).is_err() {
                        return;
                    }
                    continue;
                }
                if !(0..self.tasks).all(|t| p.acks.contains_key(&t) || finished.contains_key(&t)) {
                    break;
                }
                let p = pending.remove(&id).expect("present");
                if savepoint == Some(id) {
                    if let Err(e) = self.publish_savepoint(id, p.acks, &finished, p.started) {
                        savepoint = None;
                        self.savepoint_failed(id, &e.to_string());
                    }
                    continue;
                }
                match self.publish(id, p.acks, &finished, false, p.started) {
                    Ok(()) => {
                        failures_in_a_row = 0;
                        last_done = Instant::now();
                    }
                    Err(e) => {
                        if self
                            .abort(id, &e.to_string(), &mut failures_in_a_row)
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }

            if finished.len() == self.tasks {
                // Everything has ended: one last checkpoint holds the final state, then
                // sinks commit and tasks exit.
                next_id += 1;
                let now = Instant::now();
                if let Err(e) = self.publish(next_id, HashMap::new(), &finished, true, now) {
                    return self.fail(e);
                }
                for f in &self.signals.final_published {
                    f.store(true, Ordering::Release);
                }
                break;
            }

            let Some(interval) = self.config.interval else {
                continue; // savepoints only
            };
            if savepoint.is_some() {
                continue; // no checkpoint after the savepoint being stopped with
            }
            let due = last_trigger + interval;
            let paused = last_done + self.config.min_pause;
            let now = Instant::now();
            if pending.len() < self.config.max_concurrent && now >= due && now >= paused {
                next_id += 1;
                last_trigger = now;
                pending.insert(next_id, Pending::new());
                Signals::set(&self.signals.trigger, next_id);
            }
        }
    }

    /// Writes savepoint `id` into a directory of its own under the savepoint directory,
    /// then publishes it as a checkpoint of the job, which tells the tasks to commit and end.
    fn publish_savepoint(
        &mut self,
        id: u64,
        acks: HashMap<usize, Vec<Resolved>>,
        finished: &HashMap<usize, Vec<Resolved>>,
        started: Instant,
    ) -> Result<()> {
        let (meta, stood_in) = self.assemble(id, acks, finished, false);
        let dir = self.config.savepoint_dir.as_deref().unwrap_or_default();
        // Flink's name: the job id's first six digits and a random part.
        let random = new_job_id();
        let location = format!(
            "{}/savepoint-{}-{}",
            dir.trim_end_matches('/'),
            &self.job_id[..6.min(self.job_id.len())],
            &random[..12]
        );
        let settings = super::location_settings(&self.config.store_settings);
        let store = CheckpointStore::open(&location, &settings)
            .map_err(|e| Error::user(format!("savepoint directory {location}: {e}")))?;
        let path = metadata::publish_savepoint(&self.store, &store, &meta)?;
        tracing::info!(
            "savepoint {id} written to {path} in {:?}",
            started.elapsed()
        );
        self.outcome.lock().savepoint = Some(path);
        self.complete(meta, stood_in, started)
    }

    /// A savepoint that could not be taken: the job goes on, as Flink's does.
    fn savepoint_failed(&mut self, id: u64, why: &str) {
        let text = format!(
            "the savepoint to stop with failed ({why}); the job goes on (Ctrl-C or SIGTERM \
             again cancels it)"
        );
        tracing::warn!("{text}");
        self.metrics.event(text);
        JobMetrics::add(&self.metrics.checkpoints_failed, 1);
        self.signals.stop_at.store(0, Ordering::SeqCst);
        Signals::set(&self.signals.aborted, id);
        self.cancel.withdraw_stop();
    }

    /// Writes checkpoint `id` of `acks`, with the final state of ended tasks standing in
    /// for those that did not report it.
    fn publish(
        &mut self,
        id: u64,
        acks: HashMap<usize, Vec<Resolved>>,
        finished: &HashMap<usize, Vec<Resolved>>,
        all_finished: bool,
        started: Instant,
    ) -> Result<()> {
        let (meta, stood_in) = self.assemble(id, acks, finished, all_finished);
        self.complete(meta, stood_in, started)
    }

    /// The metadata of checkpoint `id`, and the tasks whose final state stood in for them.
    fn assemble(
        &self,
        id: u64,
        mut acks: HashMap<usize, Vec<Resolved>>,
        finished: &HashMap<usize, Vec<Resolved>>,
        all_finished: bool,
    ) -> (CheckpointMetadata, Vec<usize>) {
        let mut stood_in = Vec::new();
        for t in 0..self.tasks {
            if let std::collections::hash_map::Entry::Vacant(slot) = acks.entry(t) {
                slot.insert(finished[&t].clone());
                stood_in.push(t);
            }
        }
        let mut operators: BTreeMap<String, OperatorState> = BTreeMap::new();
        for nodes in acks.into_values() {
            for n in nodes {
                let op = operators.entry(n.uid).or_insert_with(|| OperatorState {
                    name: n.name.clone(),
                    parallelism: n.parallelism,
                    subtasks: vec![SubtaskState::default(); n.parallelism],
                });
                if let Some(slot) = op.subtasks.get_mut(n.subtask) {
                    *slot = n.state;
                }
            }
        }
        let meta = CheckpointMetadata {
            job_id: self.job_id.clone(),
            checkpoint_id: id,
            finished: all_finished,
            savepoint: false,
            max_parallelism: self.max_parallelism,
            operators,
        };
        (meta, stood_in)
    }

    /// Publishes `meta` in the job's directory and tells the tasks.
    fn complete(
        &mut self,
        meta: CheckpointMetadata,
        stood_in: Vec<usize>,
        started: Instant,
    ) -> Result<()> {
        let id = meta.checkpoint_id;
        let path = metadata::publish(&self.store, &meta)?;
        let took = started.elapsed();
        tracing::info!("checkpoint {id} published at {path} in {took:?}");
        self.record_size(&meta, took);
        Signals::set(&self.signals.completed, id);
        for t in stood_in {
            self.signals.final_published[t].store(true, Ordering::Release);
        }
        JobMetrics::add(&self.metrics.checkpoints_completed, 1);
        self.outcome.lock().latest = Some(meta.clone());
        self.retained.push_back(meta);
        self.release_old();
        if self.fail_after == Some(id) {
            self.fail(Error::user(format!(
                "a failure injected after checkpoint {id} (eddy.test.fail-after-checkpoint)"
            )));
        }
        Ok(())
    }

    /// Records how long checkpoint `meta` took, and the bytes of the state files (runs and
    /// blobs) it names and of those the previous one did not (what it wrote: checkpoints are
    /// incremental).
    fn record_size(&self, meta: &CheckpointMetadata, took: Duration) {
        // Run files and the blob files they reference, each once.
        let runs = |m: &CheckpointMetadata| -> HashMap<String, u64> {
            let mut files = HashMap::new();
            for run in m.manifests().flat_map(|man| man.runs.iter()) {
                files.insert(run.name.clone(), run.bytes);
                for blob in &run.blobs {
                    files.insert(blob.name.clone(), blob.bytes);
                }
            }
            files
        };
        let now = runs(meta);
        let before = self.retained.back().map(runs).unwrap_or_default();
        let full: u64 = now.values().sum();
        let added: u64 = now
            .iter()
            .filter(|(name, _)| !before.contains_key(*name))
            .map(|(_, b)| b)
            .sum();
        let m = &self.metrics;
        JobMetrics::add(&m.checkpoint_ms_total, took.as_millis() as u64);
        JobMetrics::add(&m.checkpoint_added_bytes, added);
        m.checkpoint_peak_added_bytes
            .fetch_max(added, Ordering::Relaxed);
        m.checkpoint_peak_bytes.fetch_max(full, Ordering::Relaxed);
    }

    /// Drops the checkpoints beyond the number retained, with the files only they name.
    fn release_old(&mut self) {
        while self.retained.len() > self.config.num_retained {
            let old = self.retained.pop_front().expect("non-empty");
            let kept: Vec<Manifest> = self
                .retained
                .iter()
                .flat_map(|m| m.manifests().cloned())
                .collect();
            for m in old.manifests() {
                self.store.release(m, &kept);
            }
            let dir = metadata::checkpoint_dir(old.checkpoint_id);
            if let Err(e) = self.store.delete_dir(&dir) {
                tracing::warn!("could not delete checkpoint {dir}: {e}");
            }
        }
    }

    /// Aborts checkpoint `id`; past the tolerated number in a row, fails the job.
    fn abort(&mut self, id: u64, why: &str, failures_in_a_row: &mut u32) -> Result<()> {
        tracing::warn!("checkpoint {id} aborted: {why}");
        self.metrics
            .event(format!("checkpoint {id} aborted: {why}"));
        Signals::set(&self.signals.aborted, id);
        JobMetrics::add(&self.metrics.checkpoints_failed, 1);
        *failures_in_a_row += 1;
        if *failures_in_a_row > self.config.tolerable_failures {
            self.fail(Error::user(format!(
                "checkpoint {id} failed ({why}), and the job tolerates {} failed checkpoints \
                 in a row (execution.checkpointing.tolerable-failed-checkpoints)",
                self.config.tolerable_failures
            )));
            return Err(Error::internal("failed"));
        }
        Ok(())
    }

    fn fail(&self, e: Error) {
        let mut outcome = self.outcome.lock();
        outcome.failure.get_or_insert(e);
        drop(outcome);
        self.cancel.cancel();
    }
}

/// Waits for the nodes' table snapshots.
fn resolve(nodes: Vec<NodeSnapshot>) -> Result<Vec<Resolved>> {
    nodes
        .into_iter()
        .map(|n| {
            let mut tables = BTreeMap::new();
            for (name, pending) in n.tables {
                let manifest = pending
                    .wait()
                    .map_err(|e| Error::user(format!("writing state of '{}': {e}", n.name)))?;
                tables.insert(name, manifest);
            }
            Ok(Resolved {
                uid: n.uid,
                name: n.name,
                parallelism: n.parallelism,
                subtask: n.subtask,
                state: SubtaskState {
                    state: n.state,
                    splits: n.splits,
                    tables,
                    event_timers: n.event_timers,
                    processing_timers_ms: n.processing_timers_ms,
                },
            })
        })
        .collect()
}

/// A new job id: 32 hex digits, as Flink's.
pub(crate) fn new_job_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    format!("{:016x}{:016x}", h.finish(), nanos as u64)
}

/// How long a task may wait for the coordinator before it looks again.
pub(crate) const WAIT_STEP: Duration = Duration::from_millis(5);
