//! Data exchange between eddy subtasks.
//!
//! This crate moves values between subtasks and decides which subtask a row goes to; it knows
//! nothing of operators. Today: bounded in-process channels ([`local`]) and the vectorized hash
//! partitioner ([`partition`]). The cross-process TCP / io_uring transport with Arrow IPC frames
//! and credit flow control will live here too, behind the same sender/receiver shape.

pub mod local;
pub mod partition;

pub use partition::{hash_partition, hash_rows, key_group_of_hash, PartitionError};
