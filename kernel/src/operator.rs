//! The operator and source traits, and the context the runtime hands them.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use gemini_state::StateSize;

use crate::metrics::JobMetrics;
use crate::types::{Barrier, EventTime, Message, Watermark};
use crate::Result;

/// Where an operator sends what it produces: the next operator of its chain, or the task's
/// router to downstream tasks.
pub trait Output {
    fn emit(&mut self, msg: Message) -> Result<()>;

    fn batch(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.emit(Message::Batch(batch))
    }
}

/// What an operator subtask knows about where it runs.
#[derive(Debug)]
pub struct OperatorContext {
    /// Subtask index, `0..parallelism`.
    pub subtask: usize,
    pub parallelism: usize,
    /// Number of key groups (Flink's max parallelism).
    pub max_parallelism: usize,
    pub metrics: Arc<JobMetrics>,
    /// The last watermark delivered to this operator.
    pub current_watermark: Option<EventTime>,
    /// The job-graph node this operator runs (for state reports).
    pub node: usize,
    pub node_name: String,
    /// Memory each state table keeps before writing run files (`None`: the default).
    pub state_memory_budget: Option<usize>,
    /// Values at least this long go to blob files; `Some(0)`: none do (`None`: the default).
    pub state_blob_min_bytes: Option<usize>,
    timers: BTreeSet<EventTime>,
    processing_timers: BTreeSet<Instant>,
}

impl OperatorContext {
    pub fn new(
        subtask: usize,
        parallelism: usize,
        max_parallelism: usize,
        metrics: Arc<JobMetrics>,
    ) -> Self {
        OperatorContext {
            subtask,
            parallelism,
            max_parallelism,
            metrics,
            current_watermark: None,
            node: 0,
            node_name: String::new(),
            state_memory_budget: None,
            state_blob_min_bytes: None,
            timers: BTreeSet::new(),
            processing_timers: BTreeSet::new(),
        }
    }

    /// The same context, naming the job-graph node it runs.
    pub fn for_node(mut self, node: usize, name: &str) -> Self {
        self.node = node;
        self.node_name = name.to_string();
        self
    }

    /// The same context, with state tables keeping `budget` bytes in memory.
    pub fn with_state_memory_budget(mut self, budget: Option<usize>) -> Self {
        self.state_memory_budget = budget;
        self
    }

    /// The same context, with state tables keeping values of `min_bytes` and more in blob
    /// files (`Some(0)`: in the run files).
    pub fn with_state_blob_min_bytes(mut self, min_bytes: Option<usize>) -> Self {
        self.state_blob_min_bytes = min_bytes;
        self
    }

    /// Asks for `on_timer(time)` once the watermark reaches `time`.
    pub fn register_event_timer(&mut self, time: EventTime) {
        self.timers.insert(time);
    }

    /// Asks for `on_processing_timer` once the wall clock reaches `at`, even if no input
    /// arrives by then.
    pub fn register_processing_timer(&mut self, at: Instant) {
        self.processing_timers.insert(at);
    }

    /// The earliest processing-time timer registered.
    pub(crate) fn next_processing_timer(&self) -> Option<Instant> {
        self.processing_timers.first().copied()
    }

    /// Removes and returns the processing-time timers due at `now`, in time order.
    pub(crate) fn take_due_processing_timers(&mut self, now: Instant) -> Vec<Instant> {
        let mut due = Vec::new();
        while let Some(&t) = self.processing_timers.first() {
            if t > now {
                break;
            }
            self.processing_timers.pop_first();
            due.push(t);
        }
        due
    }

    /// Removes and returns the timers due at watermark `wm`, in time order.
    pub(crate) fn take_due_timers(&mut self, wm: EventTime) -> Vec<EventTime> {
        let later = self.timers.split_off(&wm.saturating_add(1));
        let due = std::mem::replace(&mut self.timers, later);
        due.into_iter().collect()
    }
}

/// A streaming operator: synchronous callbacks, driven by its task.
///
/// Defaults forward watermarks and do nothing else, so a stateless operator implements only
/// `on_batch`. The runtime forwards barriers and the end marker itself, after the callback.
pub trait Operator: Send {
    fn name(&self) -> &str;

    /// A batch arrived on input `input` (0 for single-input operators).
    fn on_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()>;

    /// The operator's watermark advanced (the minimum over its inputs, idle inputs ignored).
    /// Due timers have already fired.
    fn on_watermark(
        &mut self,
        wm: Watermark,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        out.emit(Message::Watermark(wm))
    }

    /// An event-time timer registered through the context is due.
    fn on_timer(
        &mut self,
        _time: EventTime,
        _ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        Ok(())
    }

    /// A processing-time timer registered through the context is due (the wall clock passed
    /// `time`).
    fn on_processing_timer(
        &mut self,
        _time: Instant,
        _ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        Ok(())
    }

    /// All inputs delivered `barrier`: snapshot state. The barrier is forwarded afterwards.
    fn on_barrier(
        &mut self,
        _barrier: &Barrier,
        _ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` is complete everywhere: commit side effects (2-phase commit).
    fn on_checkpoint_complete(
        &mut self,
        _checkpoint_id: u64,
        _ctx: &mut OperatorContext,
    ) -> Result<()> {
        Ok(())
    }

    /// Every input has ended: flush. The end marker is forwarded afterwards.
    fn on_end(&mut self, _ctx: &mut OperatorContext, _out: &mut dyn Output) -> Result<()> {
        Ok(())
    }

    /// The keyed state this subtask holds now; `None` for a stateless operator. The runtime
    /// asks before and after every watermark and at barriers and the end, so it must be cheap
    /// (counters, not a walk of the state).
    fn state_size(&self) -> Option<StateSize> {
        None
    }
}

/// Records `op`'s state size in the job's metrics (`eddy run` prints the peaks).
pub(crate) fn report_state(op: &dyn Operator, ctx: &OperatorContext) {
    if let Some(s) = op.state_size() {
        ctx.metrics
            .report_state(ctx.node, ctx.subtask, &ctx.node_name, s.entries, s.bytes);
    }
}

/// What a source returns when polled.
#[derive(Debug)]
pub enum SourcePoll {
    Batch(RecordBatch),
    /// Data is coming but not yet (a rate limit): poll again at once.
    Pending,
    /// Nothing to read right now (an unbounded source waiting for data): the task waits a
    /// moment before polling again. Either answer counts toward the idle timeout, which, as
    /// Flink's, looks only at how long the subtask has emitted no rows.
    Idle,
    /// Bounded input is exhausted.
    End,
}

/// A source subtask: reads its share of the input as batches.
pub trait Source: Send {
    fn name(&self) -> &str;
    fn poll_next(&mut self, ctx: &mut OperatorContext) -> Result<SourcePoll>;
}

/// Creates the subtasks of one source node. Factories are shared by all subtasks.
pub trait SourceFactory: Send + Sync + Debug {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>>;
    /// One line for `explain`.
    fn describe(&self) -> String;
}

/// Creates the subtasks of one operator node.
pub trait OperatorFactory: Send + Sync + Debug {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Operator>>;
    fn describe(&self) -> String;
}

/// Cooperative cancellation: set by Ctrl-C or by a failing task; sources poll it.
#[derive(Debug, Default, Clone)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
