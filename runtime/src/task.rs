//! Tasks: one thread drives one chain for one subtask.
//!
//! A source task polls its source and pushes batches through the chain. An operator task reads
//! its input channels, keeps the watermark as the minimum over inputs that are neither idle nor
//! finished, aligns barriers (a channel that delivered the barrier is not read again until all
//! have), and ends when every input has ended.
//!
//! With checkpoints, a source task injects the barriers the coordinator triggers between
//! two polls; every task reports its chain's snapshot once a barrier has passed it, tells
//! its operators of published and aborted checkpoints, and at its end reports its final
//! state and waits until a published checkpoint holds it before its sinks commit. A
//! cancelled task stops where it is: nothing is flushed, no window fires early and no sink
//! commits what no checkpoint holds. A job stopped with a savepoint stops the same way,
//! once the savepoint is published and its sinks have committed: sources read nothing
//! after its barrier.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kernel::checkpoint::{CheckpointId, END_OF_INPUT};
use kernel::metrics::JobMetrics;
use kernel::operator::{CancelFlag, OperatorContext, Source, SourcePoll};
use kernel::types::{Barrier, EventTime, Message, Watermark};
use kernel::{Error, Result};
use net_shuffle::InputGate;

use super::chain::Chain;
use super::checkpoint::{NodeSnapshot, Signals, TaskLink, TaskReport, SIGNAL_POLL};
use super::router::Router;

/// A task's side of checkpointing: the coordinator's signals as far as it has acted on them.
pub(crate) struct TaskCheckpoints {
    link: TaskLink,
    /// The newest barrier injected (sources) or passed on.
    pub passed: CheckpointId,
    completed_seen: CheckpointId,
    aborted_seen: CheckpointId,
}

impl TaskCheckpoints {
    pub fn new(link: TaskLink) -> Self {
        let start = Signals::get(&link.signals.completed);
        TaskCheckpoints {
            passed: Signals::get(&link.signals.trigger),
            completed_seen: start,
            aborted_seen: Signals::get(&link.signals.aborted),
            link,
        }
    }

    fn aligned(&self) -> bool {
        self.link.signals.aligned
    }

    /// The savepoint being stopped with, if any.
    fn stop_at(&self) -> Option<CheckpointId> {
        Some(Signals::get(&self.link.signals.stop_at)).filter(|&id| id > 0)
    }

    /// A source has passed the barrier of the savepoint being stopped with: it reads no more.
    fn stopping(&self) -> bool {
        self.stop_at().is_some_and(|id| self.passed >= id)
    }

    /// The savepoint being stopped with is published and the operators have heard of it
    /// (sinks committed): the task ends here.
    fn stop_reached(&self) -> bool {
        self.stop_at().is_some_and(|id| self.completed_seen >= id)
    }

    /// Tells the chain (and the source) of checkpoints published or aborted since last time.
    fn poll(&mut self, chain: &mut Chain, source: Option<&mut Box<dyn Source>>) -> Result<()> {
        let completed = Signals::get(&self.link.signals.completed);
        if completed > self.completed_seen {
            self.completed_seen = completed;
            chain.notify_complete(completed)?;
            if let Some(source) = source {
                source.notify_checkpoint_complete(completed)?;
            }
        }
        let aborted = Signals::get(&self.link.signals.aborted);
        if aborted > self.aborted_seen {
            self.aborted_seen = aborted;
            chain.notify_aborted(aborted)?;
        }
        Ok(())
    }

    fn report(&self, checkpoint_id: CheckpointId, nodes: Vec<NodeSnapshot>) {
        // A coordinator that has gone has given up on the job; the task learns it from the
        // cancel flag.
        let _ = self.link.reports.send(TaskReport::Snapshot {
            checkpoint_id,
            task: self.link.task,
            nodes,
        });
    }

    /// The task has ended: reports its final state and waits until a published checkpoint
    /// holds it; then its sinks commit what they finished with. Cancelled meanwhile, it
    /// exits without committing.
    fn finish(
        &mut self,
        chain: &mut Chain,
        mut nodes: Vec<NodeSnapshot>,
        cancel: &CancelFlag,
    ) -> Result<()> {
        nodes.extend(chain.snapshot(END_OF_INPUT)?);
        let _ = self.link.reports.send(TaskReport::Finished {
            task: self.link.task,
            nodes,
        });
        let published = &self.link.signals.final_published[self.link.task];
        loop {
            if published.load(Ordering::Acquire) {
                return chain.notify_complete(END_OF_INPUT);
            }
            if cancel.is_cancelled() {
                return Ok(());
            }
            std::thread::sleep(super::checkpoint::coordinator::WAIT_STEP);
        }
    }
}

/// The snapshot of a source subtask: where its splits stand.
fn source_snapshot(
    source: &mut dyn Source,
    ctx: &OperatorContext,
    id: CheckpointId,
) -> Result<NodeSnapshot> {
    Ok(NodeSnapshot {
        uid: ctx.uid.clone(),
        name: ctx.node_name.clone(),
        parallelism: ctx.parallelism,
        subtask: ctx.subtask,
        state: Vec::new(),
        tables: Vec::new(),
        splits: source.snapshot(id)?,
        event_timers: Vec::new(),
        processing_timers_ms: Vec::new(),
    })
}

pub(crate) struct SourceTask {
    pub source: Box<dyn Source>,
    pub ctx: OperatorContext,
    pub chain: Chain,
    pub router: Router,
    pub cancel: CancelFlag,
    /// Declare the subtask idle after this long without rows (`None`: never).
    pub idle_timeout: Option<Duration>,
    pub checkpoints: Option<TaskCheckpoints>,
}

impl SourceTask {
    /// Injects the barriers triggered since the last one, each after the source's
    /// positions are taken.
    fn inject_barriers(&mut self) -> Result<()> {
        let Some(cp) = &mut self.checkpoints else {
            return Ok(());
        };
        let trigger = Signals::get(&cp.link.signals.trigger);
        // Checkpoints aborted meanwhile are skipped: their barriers would only hold the
        // job back (downstream, a newer barrier supersedes an older one).
        let aborted = Signals::get(&cp.link.signals.aborted);
        cp.passed = cp.passed.max(aborted.min(trigger));
        while cp.passed < trigger {
            let id = cp.passed + 1;
            cp.passed = id;
            let source = source_snapshot(self.source.as_mut(), &self.ctx, id)?;
            self.chain.push(
                0,
                Message::Barrier(Barrier { checkpoint_id: id }),
                &mut self.router,
            )?;
            let mut nodes = vec![source];
            nodes.extend(self.chain.snapshot(id)?);
            cp.report(id, nodes);
        }
        cp.poll(&mut self.chain, Some(&mut self.source))
    }

    pub fn run(&mut self) -> Result<()> {
        let mut idle = false;
        let mut last_rows = Instant::now();
        loop {
            if self.cancel.is_cancelled() {
                // Ctrl-C or a failure elsewhere: stop here. Nothing is flushed downstream
                // (no window fires early, no sink commits); tasks downstream see the
                // channels close and stop too.
                return Ok(());
            }
            self.inject_barriers()?;
            if let Some(cp) = &self.checkpoints {
                if cp.stop_reached() {
                    return Ok(()); // stopped with a savepoint: nothing is flushed
                }
                if cp.stopping() {
                    // Past the savepoint's barrier nothing more is read; waiting for it to
                    // be published (or given up on, and then the source reads on).
                    std::thread::sleep(super::checkpoint::coordinator::WAIT_STEP);
                    continue;
                }
            }
            if let Some(due) = self.chain.next_processing_timer() {
                let now = Instant::now();
                if due <= now {
                    self.chain.fire_processing_timers(now, &mut self.router)?;
                }
            }
            let poll = self.source.poll_next(&mut self.ctx)?;
            match poll {
                SourcePoll::Batch(b) => {
                    idle = false;
                    last_rows = Instant::now();
                    JobMetrics::add(&self.ctx.metrics.source_rows, b.num_rows() as u64);
                    self.chain.push(0, Message::Batch(b), &mut self.router)?;
                }
                SourcePoll::Pending | SourcePoll::Idle => {
                    // No rows: past the idle timeout, downstream stops waiting for this
                    // subtask's watermark; its next rows and watermark bring it back.
                    if !idle && self.idle_timeout.is_some_and(|t| last_rows.elapsed() >= t) {
                        idle = true;
                        self.chain.push(
                            0,
                            Message::Watermark(Watermark::Idle),
                            &mut self.router,
                        )?;
                    }
                    if matches!(poll, SourcePoll::Idle) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                SourcePoll::End => {
                    // Bounded input is complete: event time jumps to the end, as in Flink.
                    self.chain.push(
                        0,
                        Message::Watermark(Watermark::EventTime(EventTime::MAX)),
                        &mut self.router,
                    )?;
                    self.chain.push(0, Message::End, &mut self.router)?;
                    let Some(mut cp) = self.checkpoints.take() else {
                        return Ok(());
                    };
                    let source = source_snapshot(self.source.as_mut(), &self.ctx, END_OF_INPUT)?;
                    return cp.finish(&mut self.chain, vec![source], &self.cancel);
                }
            }
        }
    }
}

/// What an operator task knows of one of its input channels.
struct InputChannel {
    /// Which input of the head operator this channel feeds.
    input: usize,
    watermark: Option<EventTime>,
    idle: bool,
    ended: bool,
    /// Delivered the pending barrier; when barriers are aligned, not read until all have.
    has_barrier: bool,
}

impl InputChannel {
    fn new(input: usize) -> Self {
        InputChannel {
            input,
            watermark: None,
            idle: false,
            ended: false,
            has_barrier: false,
        }
    }
}

/// What an operator task does next.
enum Ready {
    /// Read input channel `i`.
    Input(usize),
    /// Fire the chain's due processing-time timers.
    Timers,
    /// Every input has ended.
    Ended,
}

pub(crate) struct OperatorTask {
    gate: Box<dyn InputGate>,
    /// Per channel of the gate, in its order.
    inputs: Vec<InputChannel>,
    pub chain: Chain,
    pub router: Router,
    /// The event-time watermark last forwarded into the chain.
    last_time: Option<EventTime>,
    /// Whether the last watermark forwarded was `Idle`.
    idle_emitted: bool,
    pending_barrier: Option<Barrier>,
    /// The newest checkpoint whose barrier was passed on or given up on.
    released: CheckpointId,
    cancel: CancelFlag,
    checkpoints: Option<TaskCheckpoints>,
}

impl OperatorTask {
    /// A task reading `gate`, whose channel `k` feeds input `inputs[k]` of the chain's head.
    pub fn new(
        gate: Box<dyn InputGate>,
        inputs: Vec<usize>,
        chain: Chain,
        router: Router,
        cancel: CancelFlag,
        checkpoints: Option<TaskCheckpoints>,
    ) -> Self {
        debug_assert_eq!(gate.num_channels(), inputs.len());
        OperatorTask {
            gate,
            inputs: inputs.into_iter().map(InputChannel::new).collect(),
            chain,
            router,
            last_time: None,
            idle_emitted: false,
            pending_barrier: None,
            released: 0,
            cancel,
            checkpoints,
        }
    }

    /// A channel whose upstream can stop without finishing: only when the job is cancelled.
    fn aligned(&self) -> bool {
        self.checkpoints.as_ref().is_none_or(|c| c.aligned())
    }

    pub fn run(&mut self) -> Result<()> {
        loop {
            if let Some(cp) = &mut self.checkpoints {
                cp.poll(&mut self.chain, None)?;
                if cp.stop_reached() {
                    return Ok(()); // stopped with a savepoint: nothing is flushed
                }
            }
            match self.next_ready()? {
                Ready::Input(i) => {
                    let Ok(msg) = self.gate.recv(i) else {
                        if self.cancel.is_cancelled() {
                            return Ok(()); // cancelled: stop without flushing
                        }
                        if let Some(cp) = &mut self.checkpoints {
                            // The upstream task ended at the savepoint the job stops with.
                            cp.poll(&mut self.chain, None)?;
                            if cp.stop_reached() {
                                return Ok(());
                            }
                        }
                        return Err(Error::internal(
                            "an upstream task stopped without finishing",
                        ));
                    };
                    self.handle(i, msg)?;
                }
                Ready::Timers => {
                    self.chain
                        .fire_processing_timers(Instant::now(), &mut self.router)?;
                }
                Ready::Ended => break,
            }
        }
        if self.cancel.is_cancelled() {
            return Ok(());
        }
        self.chain.push(0, Message::End, &mut self.router)?;
        match self.checkpoints.take() {
            Some(mut cp) => cp.finish(&mut self.chain, Vec::new(), &self.cancel),
            None => Ok(()),
        }
    }

    /// Blocks until a readable channel has a message or a processing-time timer of the chain
    /// is due.
    fn next_ready(&mut self) -> Result<Ready> {
        let aligned = self.aligned();
        let readable: Vec<usize> = (0..self.inputs.len())
            .filter(|&i| !(self.inputs[i].ended || aligned && self.inputs[i].has_barrier))
            .collect();
        if readable.is_empty() {
            if self.inputs.iter().any(|c| !c.ended) {
                return Err(Error::internal("all live inputs blocked on a barrier"));
            }
            return Ok(Ready::Ended);
        }
        let mut deadline = self.chain.next_processing_timer();
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Ok(Ready::Timers);
        }
        if self.checkpoints.is_some() || self.cancel.is_cancelled() {
            // Wake up now and then to hear of published checkpoints.
            let poll = Instant::now() + SIGNAL_POLL;
            deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
        }
        if readable.len() == 1 && deadline.is_none() {
            return Ok(Ready::Input(readable[0]));
        }
        Ok(match self.gate.ready(&readable, deadline) {
            Some(i) => Ready::Input(i),
            None => Ready::Timers,
        })
    }

    pub(super) fn handle(&mut self, i: usize, msg: Message) -> Result<()> {
        match msg {
            Message::Batch(b) => {
                let input = self.inputs[i].input;
                self.chain.push(input, Message::Batch(b), &mut self.router)
            }
            Message::Watermark(Watermark::EventTime(t)) => {
                let ch = &mut self.inputs[i];
                ch.idle = false;
                ch.watermark = Some(ch.watermark.map_or(t, |w| w.max(t)));
                self.advance_watermark()
            }
            Message::Watermark(Watermark::Idle) => {
                self.inputs[i].idle = true;
                self.advance_watermark()
            }
            Message::Barrier(b) => {
                if b.checkpoint_id <= self.released {
                    return Ok(()); // a checkpoint already passed on, or given up on
                }
                match self.pending_barrier {
                    // An older checkpoint than the one being aligned: given up on.
                    Some(p) if b.checkpoint_id < p.checkpoint_id => return Ok(()),
                    Some(p) if b.checkpoint_id > p.checkpoint_id => {
                        if self.aligned() {
                            // A newer checkpoint supersedes the one being aligned (a source
                            // skipped it after it was aborted): align the newer one.
                            for c in &mut self.inputs {
                                c.has_barrier = false;
                            }
                            self.released = p.checkpoint_id;
                        } else {
                            // Not aligned: the older checkpoint takes what has arrived so
                            // far (at least once).
                            for c in &mut self.inputs {
                                c.has_barrier = true;
                            }
                            self.maybe_release_barrier()?;
                        }
                        self.pending_barrier = Some(b);
                    }
                    _ => self.pending_barrier = Some(b),
                }
                self.inputs[i].has_barrier = true;
                self.maybe_release_barrier()
            }
            Message::End => {
                self.inputs[i].ended = true;
                self.advance_watermark()?;
                self.maybe_release_barrier()
            }
        }
    }

    fn maybe_release_barrier(&mut self) -> Result<()> {
        let Some(b) = self.pending_barrier else {
            return Ok(());
        };
        if self.inputs.iter().all(|c| c.ended || c.has_barrier) {
            self.pending_barrier = None;
            self.released = b.checkpoint_id;
            for c in &mut self.inputs {
                c.has_barrier = false;
            }
            self.chain.push(0, Message::Barrier(b), &mut self.router)?;
            if let Some(cp) = &mut self.checkpoints {
                cp.passed = b.checkpoint_id;
                let nodes = self.chain.snapshot(b.checkpoint_id)?;
                cp.report(b.checkpoint_id, nodes);
            }
        }
        Ok(())
    }

    /// Recomputes the minimum watermark over live, non-idle inputs and forwards it if it moved.
    fn advance_watermark(&mut self) -> Result<()> {
        let mut live = self.inputs.iter().filter(|c| !c.ended).peekable();
        if live.peek().is_none() {
            return Ok(());
        }
        let mut min: Option<EventTime> = None;
        let mut any_active = false;
        for c in live.filter(|c| !c.idle) {
            any_active = true;
            match c.watermark {
                None => return Ok(()), // an active input has not reported event time yet
                Some(w) => min = Some(min.map_or(w, |m| m.min(w))),
            }
        }
        if !any_active {
            if !self.idle_emitted {
                self.idle_emitted = true;
                self.chain
                    .push(0, Message::Watermark(Watermark::Idle), &mut self.router)?;
            }
            return Ok(());
        }
        let t = min.expect("an active input has a watermark");
        let next = match self.last_time {
            Some(prev) if t <= prev => {
                if !self.idle_emitted {
                    return Ok(());
                }
                prev // back from idle: event time never goes backwards
            }
            _ => t,
        };
        self.last_time = Some(next);
        self.idle_emitted = false;
        self.chain.push(
            0,
            Message::Watermark(Watermark::EventTime(next)),
            &mut self.router,
        )
    }
}
