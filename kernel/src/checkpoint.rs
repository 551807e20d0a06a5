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

/// Reads a checkpointed state an operator or sink encoded, front to back, with a clear error
/// when it is cut short.
pub struct ValueReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> ValueReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        ValueReader { bytes, at: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| Error::user("a checkpointed state is cut short"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.bytes(N)?.try_into().expect("N bytes"))
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn i128(&mut self) -> Result<i128> {
        Ok(i128::from_le_bytes(self.array()?))
    }

    /// Bytes written with a `u32` length in front (`keyed_table::put_record`).
    pub fn sized(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }
}
