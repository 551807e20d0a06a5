//! What a checkpoint is made of, as the operator, source and sink traits name it.
//!
//! A checkpoint is a consistent cut of the whole job, marked by barrier `n` on every edge.
//! It holds, per operator subtask, its state tables and its small state; per source subtask,
//! the positions of its splits; per sink subtask, its committables: work written but not yet
//! visible, made visible once the checkpoint is complete. The runtime writes them; the kernel
//! only fixes their shapes. Everything here is plain bytes the owner encodes, so a checkpoint
//! can be stored anywhere and read by a later run of the same SQL.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The number of a checkpoint: 1, 2, … in the order they are taken within a job.
pub type CheckpointId = u64;

/// The id a sink's last commit carries when bounded input ends: what is left is committed at
/// once (without checkpoints) or with the job's final checkpoint.
pub const END_OF_INPUT: CheckpointId = u64::MAX;

/// Where one split of a source stands: a file and its byte offset, a Kafka partition and its
/// next offset, a CDC snapshot chunk or binlog position. `split` names it uniquely within
/// the source; `position` is the source's own encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitState {
    pub split: String,
    pub position: Vec<u8>,
}

/// Work a sink has made durable at a barrier but not yet visible: a part file to rename, a
/// transaction to commit. The sink encodes it; the checkpoint keeps it until `commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committable(pub Vec<u8>);

/// An operator's small checkpoint state (beside its tables), as JSON.
pub(crate) fn encode_saved<T: Serialize>(saved: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(saved).map_err(|e| Error::internal(format!("encoding state: {e}")))
}

/// Every old subtask's small state (see [`encode_saved`]) of `operator`.
pub(crate) fn decode_saved<T: serde::de::DeserializeOwned>(
    states: &[Vec<u8>],
    operator: &str,
) -> Result<Vec<T>> {
    states
        .iter()
        .map(|bytes| {
            serde_json::from_slice(bytes).map_err(|e| {
                Error::user(format!(
                    "the checkpointed state of {operator} does not parse: {e}"
                ))
            })
        })
        .collect()
}
