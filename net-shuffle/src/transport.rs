//! The seam between the runtime and whatever carries messages between subtasks.
//!
//! One channel joins one upstream subtask to one downstream subtask of an edge, as in Flink,
//! so that a task can stop reading one input (barrier alignment) while it reads the others.
//! Channels are bounded: a full channel holds its sender back, which is how backpressure
//! reaches the sources.

use std::collections::HashMap;
use std::time::Instant;

use kernel::graph::NodeId;
use kernel::types::Message;
use kernel::Result;

/// One channel of a job: from subtask `from_subtask` of edge `edge`'s upstream node to
/// subtask `to_subtask` of node `to_node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelSpec {
    pub edge: usize,
    pub from_subtask: usize,
    pub to_node: NodeId,
    pub to_subtask: usize,
}

/// The other end of a channel is gone: the task there stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the other end of the channel is gone")]
pub struct Disconnected;

/// The sending end of one channel.
pub trait ChannelSender: Send {
    /// Sends `msg`, waiting while the channel is full.
    fn send(&self, msg: Message) -> Result<(), Disconnected>;

    /// How full the channel is, in `[0, 1]`: 1 means the sender is being held back (the
    /// backpressure metric).
    fn fill_level(&self) -> f64;
}

/// The receiving ends of every channel into one downstream subtask.
pub trait InputGate: Send {
    fn num_channels(&self) -> usize;

    /// Waits until one of the channels `among` has a message (or its sender is gone), or
    /// until `deadline` passes; says which channel, or `None` at the deadline.
    fn ready(&mut self, among: &[usize], deadline: Option<Instant>) -> Option<usize>;

    /// The next message of channel `channel`, waiting for one.
    fn recv(&mut self, channel: usize) -> Result<Message, Disconnected>;
}

/// What a transport hands the runtime for a job's channels.
pub struct Endpoints {
    /// One sender per channel, in the order of the specs given.
    pub senders: Vec<Box<dyn ChannelSender>>,
    /// One gate per downstream (node, subtask); its channel `k` is the `k`-th spec, in the
    /// order given, that goes into that subtask.
    pub gates: HashMap<(NodeId, usize), Box<dyn InputGate>>,
}

/// Makes the channels of a job.
pub trait Transport: Send + Sync {
    /// Opens `channels`, each holding at most `capacity` messages in flight.
    fn connect(&self, channels: &[ChannelSpec], capacity: usize) -> Result<Endpoints>;
}
