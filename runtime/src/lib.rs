//! The local runtime: runs a [`JobGraph`] in this process, one thread per task.
//!
//! Forward edges between nodes of equal parallelism, where the upstream has one output and the
//! downstream one input, are chained: the downstream operator runs inside the upstream's task
//! as a nested call. Every other edge becomes one bounded channel per (upstream subtask,
//! downstream subtask) pair, made by a `net-shuffle` transport. Sources are polled by their
//! tasks, which is where barriers will be injected; operators with several input channels
//! align barriers; timers belong to the runtime, which fires them; sinks are driven through
//! their two-phase commit ([`sink`]). With `execution.checkpointing.interval` set, a
//! coordinator takes checkpoints ([`checkpoint`]) and a failed job restarts from the newest
//! one as its restart strategy allows ([`restart`]); with a savepoint directory, a stop
//! request ([`CancelFlag::request_stop`]) stops it with a savepoint. This crate knows no SQL and no
//! connector: it runs the factories a graph names.

mod attempt;
mod chain;
pub mod checkpoint;
mod restart;
mod router;
mod sink;
mod task;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use gemini_state::CheckpointStore;
use kernel::config::{CheckpointConfig, CheckpointRetention, JobConfig};
use kernel::graph::{JobGraph, NodeId, Partitioning};
use kernel::metrics::JobMetrics;
use kernel::operator::CancelFlag;
use kernel::{Error, Result};
use net_shuffle::{ChannelSpec, LocalTransport, Transport};
use parking_lot::Mutex;

use attempt::{run_attempt, AttemptError, Checkpointing};
use checkpoint::coordinator::Outcome;
use checkpoint::metadata::CheckpointMetadata;
use checkpoint::restore::Restore;

/// Groups nodes into chains; returns each chain's nodes in order, heads first.
pub fn plan_chains(graph: &JobGraph) -> Vec<Vec<NodeId>> {
    let chained_into = |n: NodeId| -> bool {
        let ins: Vec<_> = graph.inputs(n).collect();
        ins.len() == 1
            && ins[0].partitioning == Partitioning::Forward
            && graph.outputs(ins[0].from).count() == 1
            && graph.nodes[ins[0].from].parallelism == graph.nodes[n].parallelism
    };
    let mut chains = Vec::new();
    for head in 0..graph.nodes.len() {
        if chained_into(head) {
            continue;
        }
        let mut chain = vec![head];
        let mut cur = head;
        loop {
            let outs: Vec<_> = graph.outputs(cur).collect();
            if outs.len() == 1 && chained_into(outs[0].to) {
                cur = outs[0].to;
                chain.push(cur);
            } else {
                break;
            }
        }
        chains.push(chain);
    }
    chains
}

/// The channels of every edge that enters a chain head: for each (upstream subtask,
/// downstream subtask) pair the edge connects, in edge order.
pub(crate) fn channel_specs(
    graph: &JobGraph,
    chain_heads: &HashMap<NodeId, usize>,
) -> Vec<ChannelSpec> {
    let mut specs = Vec::new();
    for (ei, e) in graph.edges.iter().enumerate() {
        if !chain_heads.contains_key(&e.to) {
            continue; // chained
        }
        let (pu, pd) = (
            graph.nodes[e.from].parallelism,
            graph.nodes[e.to].parallelism,
        );
        for u in 0..pu {
            for d in 0..pd {
                let connected = match e.partitioning {
                    Partitioning::Forward => u == d,
                    Partitioning::Single => d == 0,
                    _ => true,
                };
                if connected {
                    specs.push(ChannelSpec {
                        edge: ei,
                        from_subtask: u,
                        to_node: e.to,
                        to_subtask: d,
                    });
                }
            }
        }
    }
    specs
}

/// How a job run ended without failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Bounded input ended and every sink committed.
    Finished,
    /// Cancelled (Ctrl-C, SIGTERM): stopped where it was; nothing that no checkpoint holds
    /// was committed.
    Cancelled,
    /// Stopped with a savepoint (Ctrl-C or SIGTERM with a savepoint directory): sinks
    /// committed everything before it, and `eddy run --from <savepoint>` goes on from it.
    Stopped { savepoint: String },
}

/// Runs the job to completion in this process: until bounded input ends, `cancel` is set, or
/// a task fails and the restart strategy gives up. The first failure is returned; failures
/// it caused elsewhere are not.
pub fn run_job(
    graph: &JobGraph,
    config: &JobConfig,
    metrics: Arc<JobMetrics>,
    cancel: CancelFlag,
) -> Result<JobOutcome> {
    run_job_with(&LocalTransport, graph, config, metrics, cancel)
}

/// [`run_job`] with the channels of `transport`.
pub fn run_job_with(
    transport: &dyn Transport,
    graph: &JobGraph,
    config: &JobConfig,
    metrics: Arc<JobMetrics>,
    cancel: CancelFlag,
) -> Result<JobOutcome> {
    graph.validate()?;
    graph.check_max_parallelism(config.max_parallelism)?;
    let mut restore = match &config.recovery {
        Some(r) => {
            let settings = checkpoint::location_settings(&r.store_settings);
            let mut found = checkpoint::restore::locate(&r.path, &settings)?;
            found.check(graph, config.max_parallelism, r.allow_non_restored_state)?;
            if config.checkpointing.is_none() {
                // A job that takes no checkpoints reads the restored state where it is.
                let files = if found.meta.savepoint {
                    &found.dir
                } else {
                    &found.job_dir
                };
                let store = CheckpointStore::open(files, &settings)
                    .map_err(|e| Error::user(format!("cannot restore from {files}: {e}")))?;
                found.read_from = Some(store);
            }
            Some(found)
        }
        None => None,
    };
    let job = match &config.checkpointing {
        Some(cp) => Some(JobDirectory::open(cp, restore.as_mut())?),
        None => None,
    };
    if let Some(job) = &job {
        // Nothing writes into the job directory yet: what no published checkpoint names
        // (an aborted one's files, a killed run's unpublished ones) can go.
        job.delete_unreferenced(restore.as_ref())?;
    }
    let mut restarts = restart::Restarts::new(config.restart.clone());
    let mut fail_after = config.fail_after_checkpoint;
    loop {
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        let attempt_cancel = cancel.child();
        let checkpointing = match (&config.checkpointing, &job) {
            (Some(cp), Some(job)) => Some(Checkpointing {
                config: cp,
                store: job.store.clone(),
                job_id: job.id.clone(),
                retained: job.retained()?,
                outcome: outcome.clone(),
                fail_after: fail_after.take(),
            }),
            _ => None,
        };
        let result = run_attempt(
            transport,
            graph,
            config,
            metrics.clone(),
            attempt_cancel.clone(),
            restore.as_ref(),
            checkpointing,
        );
        let latest = outcome.lock().latest.take();
        let savepoint = outcome.lock().savepoint.take();
        if let (Some(meta), Some(job)) = (latest, &job) {
            restore = Some(Restore {
                dir: format!(
                    "{}/{}",
                    job.dir,
                    checkpoint::metadata::checkpoint_dir(meta.checkpoint_id)
                ),
                meta,
                job_dir: job.dir.clone(),
                read_from: None,
            });
        }
        let ended = match result {
            // Cancelled from outside, or a stop with nowhere to put its savepoint.
            Ok(()) if attempt_cancel.is_cancelled() => Ok(JobOutcome::Cancelled),
            Ok(()) if savepoint.is_some() => Ok(JobOutcome::Stopped {
                savepoint: savepoint.unwrap_or_default(),
            }),
            Ok(()) => Ok(JobOutcome::Finished),
            Err(AttemptError::Setup(e)) => return Err(e),
            Err(AttemptError::Run(_)) if cancel.is_cancelled() => Ok(JobOutcome::Cancelled),
            Err(AttemptError::Run(e)) => {
                if let Some(delay) = restarts.next_delay() {
                    let from = restore.as_ref().map_or("the beginning".to_string(), |r| {
                        format!("checkpoint {}", r.meta.checkpoint_id)
                    });
                    let text = format!("job failed: {e}; restarting from {from} in {delay:?}");
                    tracing::warn!("{text}");
                    metrics.event(text);
                    JobMetrics::add(&metrics.restarts, 1);
                    std::thread::sleep(delay);
                    if cancel.is_cancelled() {
                        Ok(JobOutcome::Cancelled)
                    } else {
                        restarts.restarted();
                        continue;
                    }
                } else {
                    Err(e)
                }
            }
        };
        if let (Some(job), Some(cp)) = (&job, &config.checkpointing) {
            job.clean_up(cp.retention, &ended);
        }
        return ended;
    }
}

/// A job's directory in the checkpoint location: `<dir>/<job-id>/`, or the directory of the
/// checkpoint the run resumed from.
struct JobDirectory {
    id: String,
    dir: String,
    store: CheckpointStore,
}

impl JobDirectory {
    /// The directory of a checkpoint's job (CLAIM mode), or a new one. A savepoint's files
    /// are copied into the new one, and `restore` then reads them there.
    fn open(cp: &CheckpointConfig, restore: Option<&mut Restore>) -> Result<JobDirectory> {
        let settings = checkpoint::location_settings(&cp.store_settings);
        let (id, dir) = match &restore {
            Some(r) if !r.meta.savepoint => (r.meta.job_id.clone(), r.job_dir.clone()),
            _ => {
                let id = checkpoint::coordinator::new_job_id();
                let dir = format!("{}/{id}", cp.dir.trim_end_matches('/'));
                (id, dir)
            }
        };
        let store = CheckpointStore::open(&dir, &settings)
            .map_err(|e| Error::user(format!("checkpoint directory {dir}: {e}")))?;
        if let Some(r) = restore.filter(|r| r.meta.savepoint) {
            let savepoint = CheckpointStore::open(&r.dir, &settings)
                .map_err(|e| Error::user(format!("savepoint {}: {e}", r.dir)))?;
            let what = format!("out of savepoint {}", r.dir);
            checkpoint::copy_state_files(&r.meta, &savepoint, &store, &what)?;
            r.job_dir = dir.clone();
        }
        Ok(JobDirectory { id, dir, store })
    }

    /// The published checkpoints of the job, oldest first.
    fn retained(&self) -> Result<VecDeque<CheckpointMetadata>> {
        let mut all = VecDeque::new();
        for id in checkpoint::metadata::published(&self.store)? {
            if let Some(m) = checkpoint::metadata::read(&self.store, id)? {
                all.push_back(m);
            }
        }
        Ok(all)
    }

    /// Deletes the state files and table manifests that no published checkpoint of the
    /// job names, nor the one being restored (a savepoint's files were copied in).
    fn delete_unreferenced(&self, restore: Option<&Restore>) -> Result<()> {
        let retained = self.retained()?;
        let manifests: Vec<gemini_state::Manifest> = retained
            .iter()
            .chain(restore.map(|r| &r.meta))
            .flat_map(|m| m.manifests().cloned())
            .collect();
        let gone = self
            .store
            .delete_unreferenced(&manifests)
            .map_err(|e| Error::user(format!("cleaning checkpoint directory {}: {e}", self.dir)))?;
        if gone > 0 {
            tracing::info!("deleted {gone} unreferenced files from {}", self.dir);
        }
        Ok(())
    }

    /// Deletes the job's checkpoints when its retention says so (Flink's rules: kept on
    /// cancellation only with RETAIN_ON_CANCELLATION; kept after a failure unless not
    /// externalized; a killed process deletes nothing).
    fn clean_up(&self, retention: CheckpointRetention, ended: &Result<JobOutcome>) {
        let delete = match (retention, ended) {
            (CheckpointRetention::RetainOnCancellation, _) => false,
            (CheckpointRetention::DeleteOnCancellation, Err(_)) => false,
            (CheckpointRetention::NoExternalizedCheckpoints, _) => true,
            (CheckpointRetention::DeleteOnCancellation, Ok(_)) => true,
        };
        if delete {
            if let Err(e) = self.store.delete_dir("") {
                tracing::warn!("could not delete checkpoints in {}: {e}", self.dir);
            }
        }
    }
}

#[cfg(test)]
mod tests;
