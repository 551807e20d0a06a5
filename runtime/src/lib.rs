//! The local runtime: runs a [`JobGraph`] in this process, one thread per task.
//!
//! Forward edges between nodes of equal parallelism, where the upstream has one output and the
//! downstream one input, are chained: the downstream operator runs inside the upstream's task
//! as a nested call. Every other edge becomes one bounded channel per (upstream subtask,
//! downstream subtask) pair, made by a `net-shuffle` transport. Sources are polled by their
//! tasks, which is where barriers will be injected; operators with several input channels
//! align barriers; timers belong to the runtime, which fires them; sinks are driven through
//! their two-phase commit ([`sink`]). The checkpoint coordinator and restarts will live here.
//! This crate knows no SQL and no connector: it runs the factories a graph names.

mod chain;
mod router;
mod sink;
mod task;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;

use kernel::config::JobConfig;
use kernel::graph::{JobGraph, NodeId, NodeKind, Partitioning};
use kernel::metrics::JobMetrics;
use kernel::operator::{CancelFlag, Operator, OperatorContext};
use kernel::{Error, Result};
use net_shuffle::{ChannelSender, ChannelSpec, LocalTransport, Transport};
use parking_lot::Mutex;

use chain::Chain;
use router::{EdgeSenders, Router};
use sink::SinkDriver;
use task::{OperatorTask, SourceTask};

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
fn channel_specs(graph: &JobGraph, chain_heads: &HashMap<NodeId, usize>) -> Vec<ChannelSpec> {
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

/// Runs the job to completion in this process: until bounded input ends, `cancel` is set, or
/// a task fails. The first failure is returned; failures it caused elsewhere are not.
pub fn run_job(
    graph: &JobGraph,
    config: &JobConfig,
    metrics: Arc<JobMetrics>,
    cancel: CancelFlag,
) -> Result<()> {
    run_job_with(&LocalTransport, graph, config, metrics, cancel)
}

/// [`run_job`] with the channels of `transport`.
pub fn run_job_with(
    transport: &dyn Transport,
    graph: &JobGraph,
    config: &JobConfig,
    metrics: Arc<JobMetrics>,
    cancel: CancelFlag,
) -> Result<()> {
    graph.validate()?;
    graph.check_max_parallelism(config.max_parallelism)?;
    let chains = plan_chains(graph);
    let chain_of_head: HashMap<NodeId, usize> =
        chains.iter().enumerate().map(|(i, c)| (c[0], i)).collect();

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
            let mut ops: Vec<Box<dyn Operator>> = Vec::new();
            let mut ctxs = Vec::new();
            let mut source = None;
            for &n in chain_nodes {
                match &graph.nodes[n].kind {
                    NodeKind::Source(f) => source = Some(f.create(s, p)?),
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
                    let gate = gates.remove(&(head, s)).ok_or_else(|| {
                        Error::internal(format!("task {name} has no input channels"))
                    })?;
                    let inputs = gate_inputs.remove(&(head, s)).unwrap_or_default();
                    let mut t = OperatorTask::new(gate, inputs, chain, router);
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
    drop(gates);

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
