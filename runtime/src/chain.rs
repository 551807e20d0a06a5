//! A chain: operators joined by forward edges, run as nested calls inside one task.

use std::time::Instant;

use kernel::operator::{report_state, Operator, OperatorContext, Output};
use kernel::types::{Message, Watermark};
use kernel::Result;

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
