//! The sink trait: where a job's rows leave it, with the two-phase commit that makes its
//! output exactly-once.
//!
//! A sink subtask writes rows as they come ([`Sink::write`]) into something not yet visible
//! to readers: an in-progress file, an open transaction. At barrier `n` the runtime calls
//! [`Sink::pre_commit`]: the sink makes what it wrote durable and returns committables that
//! say how to publish it; the runtime stores them in checkpoint `n`. Once checkpoint `n` is
//! complete everywhere the runtime calls [`Sink::commit`] with them, which publishes (renames
//! the file, commits the transaction). After a crash the restored job calls `commit` again
//! with the committables of its latest checkpoint, so `commit` must be idempotent; work that
//! no checkpoint names is discarded. At the end of bounded input, [`Sink::finish`] flushes
//! the rest and its committables are committed with [`END_OF_INPUT`](crate::checkpoint::END_OF_INPUT)
//! (with no checkpoints, at once). The runtime counts the rows a sink takes; a sink only
//! writes.

use std::fmt::Debug;

use arrow::array::RecordBatch;

use crate::checkpoint::{CheckpointId, Committable};
use crate::Result;

/// One subtask of a sink. Its rows carry the table's columns, plus the op column (see
/// [`crate::changelog`]) when the sink's connector takes updates.
pub trait Sink: Send {
    fn name(&self) -> &str;

    /// Writes `batch`; it may be buffered, but it is not visible until committed.
    fn write(&mut self, batch: RecordBatch) -> Result<()>;

    /// Barrier `checkpoint_id`: makes every row written so far durable and returns what
    /// [`commit`](Self::commit) needs to publish them. Rows written after this belong to the
    /// next checkpoint. A sink whose writes are visible at once (`print`, `blackhole`)
    /// returns nothing.
    fn pre_commit(&mut self, checkpoint_id: CheckpointId) -> Result<Vec<Committable>> {
        let _ = checkpoint_id;
        Ok(Vec::new())
    }

    /// Publishes `committables` of checkpoint `checkpoint_id`, once it is complete. Must be
    /// idempotent: after a restore it runs again with the same committables, some of which
    /// may be published already.
    fn commit(
        &mut self,
        checkpoint_id: CheckpointId,
        committables: Vec<Committable>,
    ) -> Result<()> {
        let _ = (checkpoint_id, committables);
        Ok(())
    }

    /// Checkpoint `checkpoint_id` will never complete. Its committables stay pending and are
    /// published with the next checkpoint that completes; none is dropped.
    fn abort(&mut self, checkpoint_id: CheckpointId) -> Result<()> {
        let _ = checkpoint_id;
        Ok(())
    }

    /// Right after [`pre_commit`](Self::pre_commit): what the sink keeps itself besides its
    /// committables (the rows of a materialized table), to be handed back by
    /// [`restore_state`](Self::restore_state). Most sinks keep nothing.
    fn snapshot_state(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Before the first row after a restore: what [`snapshot_state`](Self::snapshot_state)
    /// returned in the old subtasks handed to this one.
    fn restore_state(&mut self, states: &[Vec<u8>]) -> Result<()> {
        if states.iter().all(Vec::is_empty) {
            return Ok(());
        }
        Err(crate::Error::internal(format!(
            "sink '{}' saved state it cannot restore",
            self.name()
        )))
    }

    /// Bounded input has ended: flushes what is left and returns its committables, which
    /// the runtime commits with the job's last checkpoint, or at once without checkpoints.
    fn finish(&mut self) -> Result<Vec<Committable>> {
        self.pre_commit(crate::checkpoint::END_OF_INPUT)
    }
}

/// Creates the subtasks of one sink node. Factories are shared by all subtasks.
pub trait SinkFactory: Send + Sync + Debug {
    /// Once per run, before any subtask is created: `restored` are the committables of the
    /// checkpoint the run resumes from (empty for a fresh start). A sink that leaves work
    /// behind when killed (hidden in-progress files) removes what no committable names.
    fn prepare(&self, restored: &[Committable]) -> Result<()> {
        let _ = restored;
        Ok(())
    }

    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Sink>>;
    /// One line for `explain`.
    fn describe(&self) -> String;
}
