//! One attempt at running a job graph: tasks wired to their channels, started on threads,
//! restored from a checkpoint if there is one, with the checkpoint coordinator alongside.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use gemini_state::CheckpointStore;
use kernel::config::{CheckpointConfig, CheckpointingMode, JobConfig};
use kernel::graph::{JobGraph, NodeId, NodeKind};
use kernel::metrics::JobMetrics;
use kernel::operator::{CancelFlag, Operator, OperatorContext};
use kernel::{Error, Result};
use net_shuffle::{ChannelSender, Transport};
use parking_lot::Mutex;

use crate::chain::Chain;
use crate::checkpoint::coordinator::{Coordinator, Outcome};
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::restore::Restore;
use crate::checkpoint::{Signals, TaskLink};
use crate::router::{EdgeSenders, Router};
use crate::sink::SinkDriver;
use crate::task::{OperatorTask, SourceTask, TaskCheckpoints};
use crate::{channel_specs, plan_chains};

/// Where an attempt's checkpoints go.
pub(crate) struct Checkpointing<'a> {
    pub config: &'a CheckpointConfig,
    pub store: CheckpointStore,
    pub job_id: String,
    /// Published checkpoints kept so far, oldest first.
    pub retained: VecDeque<CheckpointMetadata>,
    /// Where the coordinator leaves the newest checkpoint and its failure.
    pub outcome: Arc<Mutex<Outcome>>,
    /// Fail the attempt once this checkpoint is published (a test of recovery).
    pub fail_after: Option<u64>,
}

/// Why an attempt did not finish.
pub(crate) enum AttemptError {
    /// The job could not start (an operator that cannot be checkpointed, a source that
    /// cannot resume, a sink that cannot clean up): restarting would not help.
    Setup(Error),
    /// A task failed while running.
    Run(Error),
}

/// Runs `graph` once: until bounded input ends, `cancel` is set, or a task fails. Returns
/// the first failure; the coordinator leaves the newest checkpoint published in its
/// outcome. Every task is made before any starts, so a setup error starts nothing.
pub(crate) fn run_attempt(
    transport: &dyn Transport,
    graph: &JobGraph,
    config: &JobConfig,
    metrics: Arc<JobMetrics>,
    cancel: CancelFlag,
    restore: Option<&Restore>,
    checkpointing: Option<Checkpointing<'_>>,
) -> std::result::Result<(), AttemptError> {
    let (tasks, coordinator) = make_tasks(
        transport,
        graph,
        config,
        &metrics,
        &cancel,
        restore,
        checkpointing,
    )
    .map_err(AttemptError::Setup)?;
    run_tasks(tasks, coordinator, cancel).map_err(AttemptError::Run)
}

/// A task ready to start: its thread's name and what it runs.
type ReadyTask = (String, Box<dyn FnMut() -> Result<()> + Send>);

/// The coordinator of an attempt, with what the run needs to stop it and read its outcome.
struct ReadyCoordinator {
    coordinator: Coordinator,
    stopped: Arc<AtomicBool>,
    outcome: Arc<Mutex<Outcome>>,
}

/// Makes every task of the attempt (and its coordinator) without starting any.
fn make_tasks(
    transport: &dyn Transport,
    graph: &JobGraph,
    config: &JobConfig,
    metrics: &Arc<JobMetrics>,
    cancel: &CancelFlag,
    restore: Option<&Restore>,
    checkpointing: Option<Checkpointing<'_>>,
) -> Result<(Vec<ReadyTask>, Option<ReadyCoordinator>)> {
    let chains = plan_chains(graph);
    let chain_of_head: HashMap<NodeId, usize> =
        chains.iter().enumerate().map(|(i, c)| (c[0], i)).collect();

    // Sinks clean up what a killed run left before any subtask writes.
    for node in &graph.nodes {
        if let NodeKind::Sink(f) = &node.kind {
            let restored = match restore {
                Some(r) => r.sink_committables(&node.uid)?,
                None => Vec::new(),
            };
            f.prepare(&restored)?;
        }
    }

    let specs = channel_specs(graph, &chain_of_head);
    let endpoints = transport.connect(&specs, config.channel_capacity)?;
    // senders[edge][upstream subtask][downstream subtask]
    type SenderGrid = Vec<Vec<Option<Box<dyn ChannelSender>>>>;
    let mut senders: HashMap<usize, SenderGrid> = HashMap::new();
    // The head operator's input that each channel of a gate feeds, in the gate's order.
    let mut gate_inputs: HashMap<(NodeId, usize), Vec<usize>> = HashMap::new();
    for (spec, sender) in specs.iter().zip(endpoints.senders) {
        let e = &graph.edges[spec.edge];
        let grid = senders.entry(spec.edge).or_insert_with(|| {
            let (pu, pd) = (
                graph.nodes[e.from].parallelism,
                graph.nodes[e.to].parallelism,
            );
            (0..pu).map(|_| (0..pd).map(|_| None).collect()).collect()
        });
        grid[spec.from_subtask][spec.to_subtask] = Some(sender);
        gate_inputs
            .entry((spec.to_node, spec.to_subtask))
            .or_default()
            .push(e.input);
    }
    let mut gates = endpoints.gates;

    let tasks: usize = chains.iter().map(|c| graph.nodes[c[0]].parallelism).sum();
    let store = checkpointing.as_ref().map(|c| c.store.clone());
    let restored_files = restore.and_then(|r| r.read_from.clone());
    let last_id = restore.map_or(0, |r| r.meta.checkpoint_id);
    let (report_tx, report_rx) = crossbeam_channel::unbounded();
    let signals = checkpointing.as_ref().map(|c| {
        let aligned = c.config.mode == CheckpointingMode::ExactlyOnce;
        Arc::new(Signals::new(tasks, aligned, last_id))
    });

    let mut ready: Vec<ReadyTask> = Vec::new();
    let mut task_index = 0;
    for chain_nodes in &chains {
        let head = chain_nodes[0];
        let tail = *chain_nodes.last().expect("chains are non-empty");
        let p = graph.nodes[head].parallelism;
        let out_edges: Vec<usize> = graph
            .edges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.from == tail)
            .map(|(i, _)| i)
            .collect();
        for s in 0..p {
            let ctx = |n: NodeId| {
                OperatorContext::new(s, p, config.max_parallelism, metrics.clone())
                    .for_node(n, &graph.nodes[n].name)
                    .with_state_memory_budget(config.state_memory_budget)
                    .with_state_blob_min_bytes(config.state_blob_min_bytes)
            };
            let ctx = |n: NodeId| match (&store, &restored_files) {
                (None, Some(files)) => {
                    ctx(n).reading_restored_state(&graph.nodes[n].uid, Some(files.clone()))
                }
                _ => ctx(n).with_checkpoints(&graph.nodes[n].uid, store.clone()),
            };
            let mut ops: Vec<Box<dyn Operator>> = Vec::new();
            let mut ctxs = Vec::new();
            let mut source = None;
            for &n in chain_nodes {
                let node = &graph.nodes[n];
                match &node.kind {
                    NodeKind::Source(f) => {
                        let splits = restore.and_then(|r| r.splits(&node.uid, s, p));
                        let mut created = match splits {
                            Some(splits) => f.restore(s, p, splits)?,
                            None => f.create(s, p)?,
                        };
                        if checkpointing.is_some() {
                            // Asked now, a source that cannot resume is refused before the
                            // job starts rather than at its first checkpoint.
                            created.snapshot(0).map_err(|e| {
                                Error::user(format!(
                                    "checkpointing is on (execution.checkpointing.interval), \
                                     but {e}"
                                ))
                            })?;
                        }
                        source = Some(created);
                    }
                    NodeKind::Operator(f) => {
                        ops.push(f.create(s, p)?);
                        ctxs.push(ctx(n));
                    }
                    NodeKind::Sink(f) => {
                        ops.push(Box::new(SinkDriver::new(f.create(s, p)?)));
                        ctxs.push(ctx(n));
                    }
                }
            }
            let edges = out_edges
                .iter()
                .map(|&ei| {
                    let grid = senders
                        .get_mut(&ei)
                        .ok_or_else(|| Error::internal("an unchained edge has no channels"))?;
                    let row = std::mem::take(&mut grid[s]);
                    Ok(EdgeSenders::new(
                        graph.edges[ei].partitioning.clone(),
                        row,
                        config.max_parallelism,
                        s,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let router = Router { edges };
            let mut chain = Chain::new(ops, ctxs);
            if checkpointing.is_some() {
                chain.check_checkpointable()?;
            }
            if let Some(r) = restore {
                chain.restore(r)?;
            }
            let task_checkpoints = signals.as_ref().map(|signals| {
                TaskCheckpoints::new(TaskLink {
                    task: task_index,
                    signals: signals.clone(),
                    reports: report_tx.clone(),
                })
            });
            task_index += 1;
            let name = format!("{} ({}/{})", graph.nodes[head].name, s + 1, p);
            let run: Box<dyn FnMut() -> Result<()> + Send> = match source {
                Some(source) => {
                    let mut t = SourceTask {
                        source,
                        ctx: ctx(head),
                        chain,
                        router,
                        cancel: cancel.clone(),
                        idle_timeout: config.source_idle_timeout,
                        checkpoints: task_checkpoints,
                    };
                    Box::new(move || t.run())
                }
                None => {
                    let gate = gates.remove(&(head, s)).ok_or_else(|| {
                        Error::internal(format!("task {name} has no input channels"))
                    })?;
                    let inputs = gate_inputs.remove(&(head, s)).unwrap_or_default();
                    let mut t = OperatorTask::new(
                        gate,
                        inputs,
                        chain,
                        router,
                        cancel.clone(),
                        task_checkpoints,
                    );
                    Box::new(move || t.run())
                }
            };
            ready.push((name, run));
        }
    }
    drop(senders);
    drop(gates);
    drop(report_tx);

    let stopped = Arc::new(AtomicBool::new(false));
    let coordinator = match (checkpointing, signals) {
        (Some(c), Some(signals)) => Some(ReadyCoordinator {
            outcome: c.outcome.clone(),
            stopped: stopped.clone(),
            coordinator: Coordinator {
                config: c.config.clone(),
                store: c.store,
                job_id: c.job_id,
                max_parallelism: config.max_parallelism,
                signals,
                reports: report_rx,
                tasks,
                metrics: metrics.clone(),
                cancel: cancel.clone(),
                stopped,
                outcome: c.outcome,
                retained: c.retained,
                last_id,
                fail_after: c.fail_after,
            },
        }),
        _ => None,
    };
    Ok((ready, coordinator))
}

/// Starts the tasks and the coordinator and waits for all of them.
fn run_tasks(
    tasks: Vec<ReadyTask>,
    coordinator: Option<ReadyCoordinator>,
    cancel: CancelFlag,
) -> Result<()> {
    let first_error: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
    let mut handles = Vec::new();
    for (name, mut run) in tasks {
        let errors = first_error.clone();
        let cancel_on_error = cancel.clone();
        let handle = thread::Builder::new().name(name.clone()).spawn(move || {
            if let Err(e) = run() {
                // Record before the task's channels drop, so this is the root cause.
                let mut slot = errors.lock();
                if slot.is_none() {
                    *slot = Some(e);
                }
                cancel_on_error.cancel();
            }
            drop(run);
        });
        match handle {
            Ok(h) => handles.push((name, h)),
            Err(e) => {
                cancel.cancel();
                first_error
                    .lock()
                    .get_or_insert(Error::io(format!("starting task {name}"), e));
                break;
            }
        }
    }
    let (outcome, stopped) = match &coordinator {
        Some(c) => (Some(c.outcome.clone()), Some(c.stopped.clone())),
        None => (None, None),
    };
    let coordinator = match coordinator {
        Some(c) => {
            let run = c.coordinator;
            let handle = thread::Builder::new()
                .name("checkpoint coordinator".into())
                .spawn(move || run.run());
            match handle {
                Ok(h) => Some(h),
                Err(e) => {
                    cancel.cancel();
                    first_error
                        .lock()
                        .get_or_insert(Error::io("starting the checkpoint coordinator", e));
                    None
                }
            }
        }
        None => None,
    };

    let mut panic = None;
    for (name, h) in handles {
        if let Err(p) = h.join() {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            cancel.cancel();
            panic.get_or_insert(Error::internal(format!("task {name} panicked: {what}")));
        }
    }
    if let Some(stopped) = stopped {
        stopped.store(true, Ordering::Release);
    }
    if let Some(h) = coordinator {
        if h.join().is_err() {
            panic.get_or_insert(Error::internal("the checkpoint coordinator panicked"));
        }
    }
    if let Some(e) = first_error.lock().take() {
        return Err(e);
    }
    if let Some(e) = outcome.and_then(|o| o.lock().failure.take()) {
        return Err(e);
    }
    match panic {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
