//! Tasks: one thread drives one chain for one subtask.
//!
//! A source task polls its source and pushes batches through the chain. An operator task reads
//! its input channels, keeps the watermark as the minimum over inputs that are neither idle nor
//! finished, aligns barriers (a channel that delivered the barrier is not read again until all
//! have), and ends when every input has ended.

use std::time::{Duration, Instant};

use kernel::metrics::JobMetrics;
use kernel::operator::{CancelFlag, OperatorContext, Source, SourcePoll};
use kernel::types::{Barrier, EventTime, Message, Watermark};
use kernel::{Error, Result};
use net_shuffle::InputGate;

use super::chain::Chain;
use super::router::Router;

pub(crate) struct SourceTask {
    pub source: Box<dyn Source>,
    pub ctx: OperatorContext,
    pub chain: Chain,
    pub router: Router,
    pub cancel: CancelFlag,
    /// Declare the subtask idle after this long without rows (`None`: never).
    pub idle_timeout: Option<Duration>,
}

impl SourceTask {
    pub fn run(&mut self) -> Result<()> {
        let mut idle = false;
        let mut last_rows = Instant::now();
        loop {
            if self.cancel.is_cancelled() {
                // Ctrl-C or a failure elsewhere: end cleanly without flushing event time.
                return self.chain.push(0, Message::End, &mut self.router);
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
                    return self.chain.push(0, Message::End, &mut self.router);
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
    /// Delivered the pending barrier; not read until the barrier is aligned.
    blocked: bool,
}

impl InputChannel {
    fn new(input: usize) -> Self {
        InputChannel {
            input,
            watermark: None,
            idle: false,
            ended: false,
            blocked: false,
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
}

impl OperatorTask {
    /// A task reading `gate`, whose channel `k` feeds input `inputs[k]` of the chain's head.
    pub fn new(gate: Box<dyn InputGate>, inputs: Vec<usize>, chain: Chain, router: Router) -> Self {
        debug_assert_eq!(gate.num_channels(), inputs.len());
        OperatorTask {
            gate,
            inputs: inputs.into_iter().map(InputChannel::new).collect(),
            chain,
            router,
            last_time: None,
            idle_emitted: false,
            pending_barrier: None,
        }
    }

    pub fn run(&mut self) -> Result<()> {
        loop {
            match self.next_ready()? {
                Ready::Input(i) => {
                    let msg = self.gate.recv(i).map_err(|_| {
                        Error::internal("an upstream task stopped without finishing")
                    })?;
                    self.handle(i, msg)?;
                }
                Ready::Timers => {
                    self.chain
                        .fire_processing_timers(Instant::now(), &mut self.router)?;
                }
                Ready::Ended => break,
            }
        }
        self.chain.push(0, Message::End, &mut self.router)
    }

    /// Blocks until a readable channel has a message or a processing-time timer of the chain
    /// is due.
    fn next_ready(&mut self) -> Result<Ready> {
        let readable: Vec<usize> = (0..self.inputs.len())
            .filter(|&i| !self.inputs[i].ended && !self.inputs[i].blocked)
            .collect();
        if readable.is_empty() {
            if self.inputs.iter().any(|c| !c.ended) {
                return Err(Error::internal("all live inputs blocked on a barrier"));
            }
            return Ok(Ready::Ended);
        }
        let deadline = self.chain.next_processing_timer();
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return Ok(Ready::Timers);
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
                match self.pending_barrier {
                    Some(p) if p.checkpoint_id != b.checkpoint_id => {
                        return Err(Error::internal(format!(
                            "barrier {} arrived while aligning barrier {}",
                            b.checkpoint_id, p.checkpoint_id
                        )))
                    }
                    _ => self.pending_barrier = Some(b),
                }
                self.inputs[i].blocked = true;
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
        if self.inputs.iter().all(|c| c.ended || c.blocked) {
            self.pending_barrier = None;
            for c in &mut self.inputs {
                c.blocked = false;
            }
            self.chain.push(0, Message::Barrier(b), &mut self.router)?;
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
