//! The physical job graph the runtime executes, and its `explain` rendering.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::operator::{OperatorFactory, SourceFactory};
use crate::sink::SinkFactory;
use crate::types::StreamSchema;
use crate::{Error, Result};

/// Position of a node in [`JobGraph::nodes`].
pub type NodeId = usize;

/// How rows travel from the subtasks of one node to those of the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Partitioning {
    /// Subtask i to subtask i (equal parallelism); such edges are chained.
    Forward,
    /// Round-robin over downstream subtasks.
    Rebalance,
    /// By the hash of these columns: key → key group → subtask.
    Hash(Vec<usize>),
    /// Every row to every downstream subtask.
    Broadcast,
    /// Everything to one subtask (downstream parallelism 1).
    Single,
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partitioning::Forward => write!(f, "FORWARD"),
            Partitioning::Rebalance => write!(f, "REBALANCE"),
            Partitioning::Hash(keys) => write!(f, "HASH{keys:?}"),
            Partitioning::Broadcast => write!(f, "BROADCAST"),
            Partitioning::Single => write!(f, "SINGLE"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Source(Arc<dyn SourceFactory>),
    Operator(Arc<dyn OperatorFactory>),
    /// Where rows leave the job; it has no outputs.
    Sink(Arc<dyn SinkFactory>),
}

#[derive(Debug, Clone)]
pub struct Node {
    /// Stable identifier derived from the plan, so that a changed job can map old state.
    pub uid: String,
    pub name: String,
    pub parallelism: usize,
    pub kind: NodeKind,
    pub output: StreamSchema,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub from: NodeId,
    pub to: NodeId,
    /// Which input of `to` this edge feeds (0 for single-input operators).
    pub input: usize,
    pub partitioning: Partitioning,
}

#[derive(Debug, Clone, Default)]
pub struct JobGraph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl JobGraph {
    pub fn add_node(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    pub fn connect(&mut self, from: NodeId, to: NodeId, input: usize, partitioning: Partitioning) {
        self.edges.push(Edge {
            from,
            to,
            input,
            partitioning,
        });
    }

    pub fn inputs(&self, node: NodeId) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.to == node)
    }

    pub fn outputs(&self, node: NodeId) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.from == node)
    }

    /// Merges nodes that compute the same thing: the same operator (by its full description),
    /// parallelism and output types over the same inputs, so a stream read or computed twice
    /// by a plan (q5's two identical window aggregations over one source) is computed once
    /// and fanned out, as Flink's sub-plan reuse does. Sinks, the nodes without outputs, are
    /// never merged: each writes. Returns how many nodes were removed.
    pub fn reuse_duplicates(&mut self) -> usize {
        use std::collections::HashMap;
        let n = self.nodes.len();
        // canonical[i]: the node that stands for node i.
        let mut canonical: Vec<NodeId> = (0..n).collect();
        let mut seen: HashMap<String, NodeId> = HashMap::new();
        for id in 0..n {
            if self.outputs(id).next().is_none() {
                continue;
            }
            let node = &self.nodes[id];
            let mut inputs: Vec<String> = self
                .inputs(id)
                .map(|e| format!("{}<-{}:{}", e.input, canonical[e.from], e.partitioning))
                .collect();
            inputs.sort();
            let kind = match &node.kind {
                NodeKind::Source(s) => format!("source {s:?}"),
                NodeKind::Operator(o) => format!("operator {o:?}"),
                NodeKind::Sink(_) => continue,
            };
            let types: Vec<String> = node
                .output
                .schema
                .fields()
                .iter()
                .map(|f| f.data_type().to_string())
                .collect();
            let signature = format!(
                "{kind}|{}|{types:?}|{inputs:?}|{:?}",
                node.parallelism, node.output.event_time
            );
            canonical[id] = *seen.entry(signature).or_insert(id);
        }
        let removed = (0..n).filter(|&i| canonical[i] != i).count();
        if removed == 0 {
            return 0;
        }
        // Renumber the kept nodes; edges of removed nodes are dropped or redirected.
        let mut new_id = vec![usize::MAX; n];
        let mut nodes = Vec::with_capacity(n - removed);
        for (i, node) in std::mem::take(&mut self.nodes).into_iter().enumerate() {
            if canonical[i] == i {
                new_id[i] = nodes.len();
                nodes.push(node);
            }
        }
        let mut edges: Vec<Edge> = Vec::new();
        for e in std::mem::take(&mut self.edges) {
            if canonical[e.to] != e.to {
                continue; // into a removed node: its canonical node has the same edge
            }
            let edge = Edge {
                from: new_id[canonical[e.from]],
                to: new_id[e.to],
                input: e.input,
                partitioning: e.partitioning,
            };
            if !edges.contains(&edge) {
                edges.push(edge);
            }
        }
        self.nodes = nodes;
        self.edges = edges;
        removed
    }

    /// Checks that every node's parallelism fits `max_parallelism` key groups (a plan-time
    /// error naming the node, not a failure once the job runs).
    pub fn check_max_parallelism(&self, max_parallelism: usize) -> Result<()> {
        for n in &self.nodes {
            crate::keys::check_parallelism(&n.name, n.parallelism, max_parallelism)?;
        }
        Ok(())
    }

    /// The largest parallelism of any node (1 for an empty graph).
    pub fn max_node_parallelism(&self) -> usize {
        self.nodes.iter().map(|n| n.parallelism).max().unwrap_or(1)
    }

    /// Checks the invariants the runtime relies on.
    pub fn validate(&self) -> Result<()> {
        if self.nodes.is_empty() {
            return Err(Error::user(
                "the job has no operators (no INSERT INTO statement?)",
            ));
        }
        for e in &self.edges {
            if e.from >= self.nodes.len() || e.to >= self.nodes.len() {
                return Err(Error::internal(format!("edge {e:?} names a missing node")));
            }
            let (a, b) = (&self.nodes[e.from], &self.nodes[e.to]);
            if matches!(b.kind, NodeKind::Source(_)) {
                return Err(Error::internal(format!("edge into source {}", b.name)));
            }
            if e.partitioning == Partitioning::Forward && a.parallelism != b.parallelism {
                return Err(Error::internal(format!(
                    "forward edge {} -> {} joins parallelism {} to {}",
                    a.name, b.name, a.parallelism, b.parallelism
                )));
            }
            if e.partitioning == Partitioning::Single && b.parallelism != 1 {
                return Err(Error::internal(format!(
                    "single edge into {} of parallelism {}",
                    b.name, b.parallelism
                )));
            }
        }
        for (id, n) in self.nodes.iter().enumerate() {
            if n.parallelism == 0 {
                return Err(Error::user(format!(
                    "operator {} has parallelism 0",
                    n.name
                )));
            }
            let has_inputs = self.inputs(id).next().is_some();
            match n.kind {
                NodeKind::Operator(_) | NodeKind::Sink(_) if !has_inputs => {
                    return Err(Error::internal(format!("operator {} has no input", n.name)));
                }
                NodeKind::Sink(_) if self.outputs(id).next().is_some() => {
                    return Err(Error::internal(format!("sink {} has an output", n.name)));
                }
                _ => {}
            }
        }
        // Edges always point from an earlier node to a later one: no cycles by construction.
        // (Edges into sources were refused above.)
        if let Some(e) = self.edges.iter().find(|e| e.from >= e.to) {
            return Err(Error::internal(format!("edge {e:?} points backwards")));
        }
        Ok(())
    }
}

impl fmt::Display for JobGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, n) in self.nodes.iter().enumerate() {
            let what = match &n.kind {
                NodeKind::Source(s) => s.describe(),
                NodeKind::Operator(o) => o.describe(),
                NodeKind::Sink(s) => s.describe(),
            };
            writeln!(
                f,
                "[{id}] {} (uid {}, parallelism {})",
                n.name, n.uid, n.parallelism
            )?;
            writeln!(f, "    {what}")?;
            writeln!(f, "    output {}", n.output)?;
            for e in self.inputs(id) {
                writeln!(
                    f,
                    "    input {} <- [{}] {}",
                    e.input, e.from, e.partitioning
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::{Operator, Source};
    use arrow::datatypes::Schema;

    /// A factory known only by its description; the graph never runs here.
    #[derive(Debug)]
    struct Named(&'static str);

    impl OperatorFactory for Named {
        fn create(&self, _: usize, _: usize) -> Result<Box<dyn Operator>> {
            Err(Error::internal("not run"))
        }
        fn describe(&self) -> String {
            self.0.into()
        }
    }

    impl SourceFactory for Named {
        fn create(&self, _: usize, _: usize) -> Result<Box<dyn Source>> {
            Err(Error::internal("not run"))
        }
        fn describe(&self) -> String {
            self.0.into()
        }
    }

    fn node(g: &mut JobGraph, name: &'static str, source: bool) -> NodeId {
        let kind = if source {
            NodeKind::Source(Arc::new(Named(name)))
        } else {
            NodeKind::Operator(Arc::new(Named(name)))
        };
        g.add_node(Node {
            uid: format!("{name}-{}", g.nodes.len()),
            name: name.into(),
            parallelism: 1,
            kind,
            output: StreamSchema::append_only(Arc::new(Schema::empty())),
        })
    }

    #[test]
    fn equal_subplans_are_computed_once_and_sinks_stay_apart() {
        let mut g = JobGraph::default();
        let (s1, s2) = (node(&mut g, "scan", true), node(&mut g, "scan", true));
        let a1 = node(&mut g, "agg", false);
        g.connect(s1, a1, 0, Partitioning::Forward);
        let a2 = node(&mut g, "agg", false);
        g.connect(s2, a2, 0, Partitioning::Forward);
        let other = node(&mut g, "filter", false);
        g.connect(s2, other, 0, Partitioning::Forward);
        for input in [a1, a2, other] {
            let sink = node(&mut g, "sink", false);
            g.connect(input, sink, 0, Partitioning::Forward);
        }
        assert_eq!(g.reuse_duplicates(), 2);
        g.validate().unwrap();
        let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["scan", "agg", "filter", "sink", "sink", "sink"]);
        let edges: Vec<(NodeId, NodeId)> = g.edges.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(edges, [(0, 1), (0, 2), (1, 3), (1, 4), (2, 5)]);
    }
}
