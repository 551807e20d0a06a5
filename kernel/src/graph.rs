//! The physical job graph the runtime executes, and its `explain` rendering.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::operator::{OperatorFactory, SourceFactory};
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
                NodeKind::Source(_) if has_inputs => unreachable!("checked above"),
                NodeKind::Operator(_) if !has_inputs => {
                    return Err(Error::internal(format!("operator {} has no input", n.name)));
                }
                _ => {}
            }
        }
        // Edges always point from an earlier node to a later one: no cycles by construction.
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
