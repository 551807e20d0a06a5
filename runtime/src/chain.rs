//! A chain: operators joined by forward edges, run as nested calls inside one task.

use std::time::Instant;

use kernel::checkpoint::CheckpointId;
use kernel::operator::{report_state, Operator, OperatorContext, Output};
use kernel::types::{Message, Watermark};
use kernel::{Error, Result};

use crate::checkpoint::restore::Restore;
use crate::checkpoint::NodeSnapshot;

pub(crate) struct Chain {
    ops: Vec<Box<dyn Operator>>,
    ctxs: Vec<OperatorContext>,
}

impl Chain {
    pub(crate) fn new(ops: Vec<Box<dyn Operator>>, ctxs: Vec<OperatorContext>) -> Self {
        debug_assert_eq!(ops.len(), ctxs.len());
        Chain { ops, ctxs }
    }

    /// Delivers `msg`, arriving on the head operator's input `input`, through the chain; what
    /// the last operator emits goes to `tail`.
    pub(crate) fn push(&mut self, input: usize, msg: Message, tail: &mut dyn Output) -> Result<()> {
        Link {
            ops: &mut self.ops,
            ctxs: &mut self.ctxs,
            tail,
            input,
        }
        .deliver(msg)
    }

    /// Refuses a chain with an operator that cannot be checkpointed, naming it.
    pub(crate) fn check_checkpointable(&self) -> Result<()> {
        for (op, ctx) in self.ops.iter().zip(&self.ctxs) {
            if !op.checkpointable() {
                return Err(Error::user(format!(
                    "checkpointing is on (execution.checkpointing.interval), but operator '{}' ({}) cannot be checkpointed yet; run this job without checkpoints",
                    ctx.node_name,
                    op.name()
                )));
            }
        }
        Ok(())
    }

    /// Every operator's state after barrier `checkpoint_id` passed it (it is called once
    /// the barrier has gone through the whole chain; nothing else ran in between).
    pub(crate) fn snapshot(&mut self, checkpoint_id: CheckpointId) -> Result<Vec<NodeSnapshot>> {
        let now = Instant::now();
        let mut taken = Vec::with_capacity(self.ops.len());
        for (op, ctx) in self.ops.iter_mut().zip(self.ctxs.iter_mut()) {
            let snap = op.snapshot_state(checkpoint_id, ctx)?;
            taken.push(NodeSnapshot {
                uid: ctx.uid.clone(),
                name: ctx.node_name.clone(),
                parallelism: ctx.parallelism,
                subtask: ctx.subtask,
                state: snap.state,
                tables: snap.tables,
                splits: Vec::new(),
                event_timers: ctx.event_timers(),
                processing_timers_ms: ctx
                    .processing_timers_from(now)
                    .iter()
                    .map(|d| d.as_millis() as u64)
                    .collect(),
            });
        }
        Ok(taken)
    }

    /// Gives every operator its state and timers from `restore`.
    pub(crate) fn restore(&mut self, restore: &Restore) -> Result<()> {
        let now = Instant::now();
        for (op, ctx) in self.ops.iter_mut().zip(self.ctxs.iter_mut()) {
            let (state, event, processing) =
                restore.operator(&ctx.uid, ctx.subtask, ctx.parallelism);
            for t in event {
                ctx.register_event_timer(t);
            }
            for ms in processing {
                ctx.register_processing_timer(now + std::time::Duration::from_millis(ms));
            }
            op.restore_state(state, ctx)?;
        }
        Ok(())
    }

    /// Tells every operator that checkpoint `id` is published.
    pub(crate) fn notify_complete(&mut self, id: CheckpointId) -> Result<()> {
        for (op, ctx) in self.ops.iter_mut().zip(self.ctxs.iter_mut()) {
            op.on_checkpoint_complete(id, ctx)?;
        }
        Ok(())
    }

    /// Tells every operator that checkpoint `id` was aborted.
    pub(crate) fn notify_aborted(&mut self, id: CheckpointId) -> Result<()> {
        for (op, ctx) in self.ops.iter_mut().zip(self.ctxs.iter_mut()) {
            op.on_checkpoint_aborted(id, ctx)?;
        }
        Ok(())
    }

    /// The earliest processing-time timer any operator of the chain registered.
    pub(crate) fn next_processing_timer(&self) -> Option<Instant> {
        self.ctxs
            .iter()
            .filter_map(|c| c.next_processing_timer())
            .min()
    }

    /// Fires the processing-time timers due at `now`, upstream operators first, so that what
    /// they emit reaches the operators after them before those fire theirs.
    pub(crate) fn fire_processing_timers(
        &mut self,
        now: Instant,
        tail: &mut dyn Output,
    ) -> Result<()> {
        Link {
            ops: &mut self.ops,
            ctxs: &mut self.ctxs,
            tail,
            input: 0,
        }
        .fire_processing_timers(now)
    }
}

/// The rest of a chain seen from one operator: itself an [`Output`].
struct Link<'a> {
    ops: &'a mut [Box<dyn Operator>],
    ctxs: &'a mut [OperatorContext],
    tail: &'a mut dyn Output,
    input: usize,
}

impl Link<'_> {
    /// The first operator, its context, and the chain after it; `None` past the last one.
    fn split(&mut self) -> Option<(&mut Box<dyn Operator>, &mut OperatorContext, Link<'_>)> {
        let (op, rest) = self.ops.split_first_mut()?;
        let (ctx, rest_ctxs) = self
            .ctxs
            .split_first_mut()
            .expect("one context per operator");
        let next = Link {
            ops: rest,
            ctxs: rest_ctxs,
            tail: &mut *self.tail,
            input: 0,
        };
        Some((op, ctx, next))
    }

    fn fire_processing_timers(&mut self, now: Instant) -> Result<()> {
        let Some((op, ctx, mut next)) = self.split() else {
            return Ok(());
        };
        for due in ctx.take_due_processing_timers(now) {
            op.on_processing_timer(due, ctx, &mut next)?;
        }
        next.fire_processing_timers(now)
    }

    fn deliver(&mut self, msg: Message) -> Result<()> {
        let input = self.input;
        if self.ops.is_empty() {
            return self.tail.emit(msg);
        }
        let (op, ctx, mut next) = self.split().expect("an operator is left");
        match msg {
            Message::Batch(batch) => op.on_batch(input, batch, ctx, &mut next),
            // State is reported around what may fire windows: its peak is just before.
            Message::Watermark(wm) => {
                report_state(op.as_ref(), ctx);
                if let Watermark::EventTime(t) = wm {
                    ctx.current_watermark = Some(t);
                    for due in ctx.take_due_timers(t) {
                        op.on_timer(due, ctx, &mut next)?;
                    }
                }
                op.on_watermark(wm, ctx, &mut next)?;
                report_state(op.as_ref(), ctx);
                Ok(())
            }
            Message::Barrier(barrier) => {
                op.on_barrier(&barrier, ctx, &mut next)?;
                report_state(op.as_ref(), ctx);
                next.emit(Message::Barrier(barrier))
            }
            Message::End => {
                report_state(op.as_ref(), ctx);
                op.on_end(ctx, &mut next)?;
                report_state(op.as_ref(), ctx);
                next.emit(Message::End)
            }
        }
    }
}

impl Output for Link<'_> {
    fn emit(&mut self, msg: Message) -> Result<()> {
        self.deliver(msg)
    }
}
