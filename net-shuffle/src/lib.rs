//! Data exchange between eddy subtasks.
//!
//! This crate moves messages between subtasks and decides which subtask a row goes to; it
//! knows nothing of operators or of the runtime that drives them. The runtime asks a
//! [`Transport`] for the channels of a job and talks only to the [`ChannelSender`] and
//! [`InputGate`] traits it hands back, so a transport can slot in without touching it.
//! Today: bounded in-process channels ([`LocalTransport`]) and the vectorized hash
//! partitioner ([`partition`]). The cross-process transport (Arrow IPC frames over TCP or
//! io_uring, with credit flow control) will be a second implementation of the same traits.

pub mod local;
pub mod partition;
mod transport;

pub use local::LocalTransport;
pub use partition::hash_partition;
pub use transport::{ChannelSender, ChannelSpec, Disconnected, Endpoints, InputGate, Transport};
