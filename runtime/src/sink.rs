//! Drives a sink subtask from its chain: rows in, the two-phase commit at barriers and
//! checkpoint completion, and the last commit when bounded input ends.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use kernel::checkpoint::{CheckpointId, Committable, END_OF_INPUT};
use kernel::metrics::JobMetrics;
use kernel::operator::{Operator, OperatorContext, OperatorSnapshot, Output, RestoredState};
use kernel::sink::Sink;
use kernel::types::{Barrier, Watermark};
use kernel::{Error, Result};

/// Committables pre-committed and not yet committed, by checkpoint.
type Pending = BTreeMap<CheckpointId, Vec<Committable>>;

/// A sink subtask's checkpointed state: its committables not yet committed, by checkpoint,
/// as JSON, and the sink's own state when it keeps one, after a frame: a zero byte, the
/// JSON's length (`u32`, little-endian), the JSON, the sink's state.
pub(crate) fn encode_sink_state(pending: &Pending, own: Vec<u8>) -> Vec<u8> {
    let json = if pending.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(pending).expect("committables serialize")
    };
    if own.is_empty() {
        return json;
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(json.len() as u32).to_le_bytes());
    framed.extend_from_slice(&json);
    framed.extend_from_slice(&own);
    framed
}

/// The committables and the sink's own state [`encode_sink_state`] wrote.
pub(crate) fn decode_sink_state(bytes: &[u8]) -> Result<(Pending, &[u8])> {
    let corrupt =
        |e: String| Error::user(format!("a sink's checkpointed state does not parse: {e}"));
    let (json, own) = match bytes.first() {
        None => return Ok((BTreeMap::new(), &[])),
        Some(0) => {
            let len: [u8; 4] = bytes
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("cut short".into()))?;
            let end = 5 + u32::from_le_bytes(len) as usize;
            let json = bytes
                .get(5..end)
                .ok_or_else(|| corrupt("cut short".into()))?;
            (json, &bytes[end..])
        }
        Some(_) => (bytes, &[][..]),
    };
    let pending = if json.is_empty() {
        BTreeMap::new()
    } else {
        serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?
    };
    Ok((pending, own))
}

/// A sink at the end of a chain, seen by the chain as an operator.
pub(crate) struct SinkDriver {
    sink: Box<dyn Sink>,
    /// Committables pre-committed at barriers, by checkpoint, until it completes.
    pending: Pending,
}

impl SinkDriver {
    pub fn new(sink: Box<dyn Sink>) -> Self {
        SinkDriver {
            sink,
            pending: BTreeMap::new(),
        }
    }

    /// Commits what checkpoints up to `upto` pre-committed, oldest first.
    fn commit_through(&mut self, upto: CheckpointId) -> Result<()> {
        let later = match upto.checked_add(1) {
            Some(next) => self.pending.split_off(&next),
            None => BTreeMap::new(), // END_OF_INPUT: everything
        };
        for (id, committables) in std::mem::replace(&mut self.pending, later) {
            self.sink.commit(id, committables)?;
        }
        Ok(())
    }
}

impl Operator for SinkDriver {
    fn name(&self) -> &str {
        self.sink.name()
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        JobMetrics::add(&ctx.metrics.sink_rows, batch.num_rows() as u64);
        self.sink.write(batch)
    }

    /// Event time ends here: a sink has no outputs.
    fn on_watermark(
        &mut self,
        _wm: Watermark,
        _ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        Ok(())
    }

    fn on_barrier(
        &mut self,
        barrier: &Barrier,
        _ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        let committables = self.sink.pre_commit(barrier.checkpoint_id)?;
        self.pending.insert(barrier.checkpoint_id, committables);
        Ok(())
    }

    fn on_checkpoint_complete(
        &mut self,
        checkpoint_id: CheckpointId,
        _ctx: &mut OperatorContext,
    ) -> Result<()> {
        self.commit_through(checkpoint_id)
    }

    /// The aborted checkpoint's committables stay pending: the next checkpoint to complete
    /// publishes them.
    fn on_checkpoint_aborted(
        &mut self,
        checkpoint_id: CheckpointId,
        _ctx: &mut OperatorContext,
    ) -> Result<()> {
        self.sink.abort(checkpoint_id)
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// What is pre-committed and not yet committed (a restore commits it), and the sink's
    /// own state.
    fn snapshot_state(
        &mut self,
        _checkpoint_id: CheckpointId,
        _ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        let own = self.sink.snapshot_state()?;
        Ok(OperatorSnapshot {
            state: encode_sink_state(&self.pending, own),
            tables: Vec::new(),
        })
    }

    /// The restored checkpoint is complete, so what it had pending is committed now, again
    /// if it was before (commits are idempotent).
    fn restore_state(&mut self, restored: RestoredState, _ctx: &mut OperatorContext) -> Result<()> {
        let mut all: BTreeMap<CheckpointId, Vec<Committable>> = BTreeMap::new();
        let mut own = Vec::new();
        for state in &restored.states {
            let (pending, state) = decode_sink_state(state)?;
            for (id, list) in pending {
                all.entry(id).or_default().extend(list);
            }
            own.push(state.to_vec());
        }
        self.sink.restore_state(&own)?;
        for (id, committables) in all {
            self.sink.commit(id, committables)?;
        }
        Ok(())
    }

    /// With checkpoints, what the sink finishes with waits for the job's last checkpoint
    /// (the runtime calls `on_checkpoint_complete(END_OF_INPUT)` once it is published), so a
    /// crash before it loses nothing and doubles nothing. Without, the end of bounded input
    /// stands for the last checkpoint: everything pending is committed, then the rest.
    fn on_end(&mut self, ctx: &mut OperatorContext, _out: &mut dyn Output) -> Result<()> {
        if ctx.takes_checkpoints {
            let rest = self.sink.finish()?;
            self.pending.entry(END_OF_INPUT).or_default().extend(rest);
            return Ok(());
        }
        for (id, committables) in std::mem::take(&mut self.pending) {
            self.sink.commit(id, committables)?;
        }
        let rest = self.sink.finish()?;
        self.sink.commit(END_OF_INPUT, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use kernel::types::Message;
    use parking_lot::Mutex;
    use std::sync::Arc;

    /// A sink emits nothing; anything sent here is a bug.
    struct Nothing;

    impl Output for Nothing {
        fn emit(&mut self, msg: Message) -> Result<()> {
            panic!("a sink emitted {msg:?}")
        }
    }

    /// Records every call it gets, as text.
    struct Journal(Arc<Mutex<Vec<String>>>);

    impl Sink for Journal {
        fn name(&self) -> &str {
            "journal"
        }
        fn write(&mut self, batch: RecordBatch) -> Result<()> {
            self.0.lock().push(format!("write {}", batch.num_rows()));
            Ok(())
        }
        fn pre_commit(&mut self, id: CheckpointId) -> Result<Vec<Committable>> {
            self.0.lock().push(format!("pre_commit {id}"));
            Ok(vec![Committable(id.to_le_bytes().to_vec())])
        }
        fn commit(&mut self, id: CheckpointId, committables: Vec<Committable>) -> Result<()> {
            let n = committables.len();
            self.0.lock().push(format!("commit {id} ({n})"));
            Ok(())
        }
        fn abort(&mut self, id: CheckpointId) -> Result<()> {
            self.0.lock().push(format!("abort {id}"));
            Ok(())
        }
    }

    #[test]
    fn commits_follow_completed_checkpoints_and_an_aborted_one_waits_for_the_next() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let mut driver = SinkDriver::new(Box::new(Journal(journal.clone())));
        let metrics = Arc::new(JobMetrics::default());
        let mut ctx = OperatorContext::new(0, 1, 128, metrics.clone());
        let mut out = Nothing;
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let rows = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]);
        let barrier = |id| Barrier { checkpoint_id: id };
        driver
            .on_batch(0, rows.unwrap(), &mut ctx, &mut out)
            .unwrap();
        driver.on_barrier(&barrier(1), &mut ctx, &mut out).unwrap();
        driver.on_barrier(&barrier(2), &mut ctx, &mut out).unwrap();
        driver.on_checkpoint_aborted(1, &mut ctx).unwrap();
        driver.on_barrier(&barrier(3), &mut ctx, &mut out).unwrap();
        driver.on_checkpoint_complete(2, &mut ctx).unwrap();
        driver.on_end(&mut ctx, &mut out).unwrap();
        let end = END_OF_INPUT;
        assert_eq!(
            journal.lock().clone(),
            [
                "write 2".to_string(),
                "pre_commit 1".into(),
                "pre_commit 2".into(),
                "abort 1".into(),
                "pre_commit 3".into(),
                "commit 1 (1)".into(),
                "commit 2 (1)".into(),
                "commit 3 (1)".into(),
                format!("pre_commit {end}"),
                format!("commit {end} (1)"),
            ]
        );
        assert_eq!(JobMetrics::get(&metrics.sink_rows), 2);
    }
}
