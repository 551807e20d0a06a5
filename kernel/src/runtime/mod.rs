//! The local runtime: runs a [`JobGraph`] in this process, one thread per task.
//!
//! Forward edges between nodes of equal parallelism, where the upstream has one output and the
//! downstream one input, are chained: the downstream operator runs inside the upstream's task
//! as a nested call. Every other edge becomes one bounded channel per (upstream subtask,
//! downstream subtask) pair.

mod chain;
mod router;
mod task;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;

use net_shuffle::local::{self, Sender};
use parking_lot::Mutex;

use crate::graph::{JobGraph, NodeId, NodeKind, Partitioning};
use crate::metrics::JobMetrics;
use crate::operator::{CancelFlag, OperatorContext};
use crate::types::Message;
use crate::{Error, Result};
use chain::Chain;
use router::{EdgeSenders, Router};
use task::{InputChannel, OperatorTask, SourceTask};

/// Settings of one job run.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Messages in flight per channel.
    pub channel_capacity: usize,
    /// Number of key groups.
    pub max_parallelism: usize,
    /// A source subtask that has emitted no rows for this long is idle: operators downstream
    /// stop waiting for its watermark until it emits again (Flink's
    /// `table.exec.source.idle-timeout`). `None`, the default, never declares a source idle.
    pub source_idle_timeout: Option<std::time::Duration>,
    /// `state.backend.gemini.memory-budget`: bytes of memory each state table of each
    /// subtask keeps before it writes run files. `None` keeps gemini-state's default.
    pub state_memory_budget: Option<usize>,
    /// `state.backend.gemini.blob-min-size`: values at least this long are kept in blob
    /// files; `Some(0)` keeps every value in the run files; `None` keeps gemini-state's
    /// default.
    pub state_blob_min_bytes: Option<usize>,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            channel_capacity: local::DEFAULT_CAPACITY,
            max_parallelism: gemini_state::DEFAULT_MAX_PARALLELISM,
            source_idle_timeout: None,
            state_memory_budget: None,
            state_blob_min_bytes: None,
        }
    }
}

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

/// Runs the job to completion: until bounded input ends, `cancel` is set, or a task fails.
/// The first failure is returned; failures it caused elsewhere are not.
pub fn run_job(
    graph: &JobGraph,
    config: &JobConfig,
    metrics: Arc<JobMetrics>,
    cancel: CancelFlag,
) -> Result<()> {
    graph.validate()?;
    let chains = plan_chains(graph);
    let chain_of_head: HashMap<NodeId, usize> =
        chains.iter().enumerate().map(|(i, c)| (c[0], i)).collect();

    // Channels for every edge that enters a chain head.
    type SenderGrid = Vec<Vec<Option<Sender<Message>>>>; // [upstream subtask][downstream subtask]
    let mut senders: HashMap<usize, SenderGrid> = HashMap::new();
    let mut inputs: HashMap<(NodeId, usize), Vec<InputChannel>> = HashMap::new();
    for (ei, e) in graph.edges.iter().enumerate() {
        if !chain_of_head.contains_key(&e.to) {
            continue; // chained
        }
        let (pu, pd) = (
            graph.nodes[e.from].parallelism,
            graph.nodes[e.to].parallelism,
        );
        let mut grid: SenderGrid = (0..pu).map(|_| (0..pd).map(|_| None).collect()).collect();
        for (u, row) in grid.iter_mut().enumerate() {
            for (d, slot) in row.iter_mut().enumerate() {
                let connected = match e.partitioning {
                    Partitioning::Forward => u == d,
                    Partitioning::Single => d == 0,
                    _ => true,
                };
                if connected {
                    let (tx, rx) = local::channel(config.channel_capacity);
                    *slot = Some(tx);
                    inputs
                        .entry((e.to, d))
                        .or_default()
                        .push(InputChannel::new(rx, e.input));
                }
            }
        }
        senders.insert(ei, grid);
    }

    let first_error: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
    let mut handles = Vec::new();
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
            let mut ops = Vec::new();
            let mut ctxs = Vec::new();
            let mut source = None;
            for &n in chain_nodes {
                match &graph.nodes[n].kind {
                    NodeKind::Source(f) => source = Some(f.create(s, p)?),
                    NodeKind::Operator(f) => {
                        ops.push(f.create(s, p)?);
                        ctxs.push(ctx(n));
                    }
                }
            }
            let edges = out_edges
                .iter()
                .map(|&ei| {
                    let grid = senders
                        .get_mut(&ei)
                        .expect("channels exist for every unchained edge");
                    let row = std::mem::take(&mut grid[s]);
                    EdgeSenders::new(
                        graph.edges[ei].partitioning.clone(),
                        row,
                        config.max_parallelism,
                        s,
                    )
                })
                .collect();
            let router = Router { edges };
            let chain = Chain::new(ops, ctxs);
            let name = format!("{} ({}/{})", graph.nodes[head].name, s + 1, p);
            let errors = first_error.clone();
            let cancel_on_error = cancel.clone();
            let mut run: Box<dyn FnMut() -> Result<()> + Send> = match source {
                Some(source) => {
                    let mut t = SourceTask {
                        source,
                        ctx: ctx(head),
                        chain,
                        router,
                        cancel: cancel.clone(),
                        idle_timeout: config.source_idle_timeout,
                    };
                    Box::new(move || t.run())
                }
                None => {
                    let chans = inputs.remove(&(head, s)).unwrap_or_default();
                    let mut t = OperatorTask::new(chans, chain, router);
                    Box::new(move || t.run())
                }
            };
            let handle = thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    if let Err(e) = run() {
                        // Record before the task's channels drop, so this is the root cause.
                        let mut slot = errors.lock();
                        if slot.is_none() {
                            *slot = Some(e);
                        }
                        cancel_on_error.cancel();
                    }
                    drop(run);
                })
                .map_err(|e| Error::io(format!("starting task {name}"), e))?;
            handles.push((name, handle));
        }
    }
    drop(senders);
    drop(inputs);

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
    if let Some(e) = first_error.lock().take() {
        return Err(e);
    }
    match panic {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
