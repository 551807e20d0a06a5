//! The operator and source traits, the context the runtime hands them, and the checkpoint
//! contract both keep.
//!
//! # The checkpoint contract
//!
//! The runtime, not each operator, drives checkpoints. It injects barrier `n` at every source
//! subtask between two polls, after asking the source for its split positions
//! ([`Source::snapshot`]). Barriers travel with the data; a task with several input channels
//! aligns them (in `EXACTLY_ONCE` mode it stops reading a channel that delivered barrier `n`
//! until every channel has), then calls [`Operator::on_barrier`] on each operator of its
//! chain in order and forwards the barrier. Everything an operator received before the
//! barrier is in its snapshot, nothing after. Checkpoint `n` is complete once every sink
//! subtask has pre-committed it (see [`crate::sink::Sink`]) and its files are written; only
//! then is it published, metadata last, and [`Operator::on_checkpoint_complete`] called
//! everywhere. A checkpoint that fails or times out is aborted instead
//! ([`Operator::on_checkpoint_aborted`]). After a failure the job restarts from the latest
//! published checkpoint: sources resume from their split positions
//! ([`SourceFactory::restore`]), operators find their state tables as of the barrier, and
//! sinks commit what that checkpoint pre-committed again (commits are idempotent).
//!
//! An operator takes part in checkpoints by saying so ([`Operator::checkpointable`]): a
//! stateless one has nothing more to do; a stateful one returns its state from
//! [`Operator::snapshot_state`] and takes it back in [`Operator::restore_state`]. A job with
//! checkpointing on that holds an operator that cannot is refused before it starts, naming
//! the operator, rather than lose that operator's state on a restore.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use gemini_state::{CheckpointStore, Manifest, PendingSnapshot, StateSize};

use crate::checkpoint::{CheckpointId, SplitState};
use crate::metrics::JobMetrics;
use crate::types::{Barrier, EventTime, Message, Watermark};
use crate::{Error, Result};

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
    /// The node's stable id (see [`crate::graph::Node::uid`]): state tables are named by it.
    pub uid: String,
    /// Where state tables write their snapshots (and read restored files from); `None`
    /// when the job takes no checkpoints and restores none.
    pub checkpoints: Option<CheckpointStore>,
    /// The job takes checkpoints (a job that only restores one reads `checkpoints` and
    /// never writes it).
    pub takes_checkpoints: bool,
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
            uid: String::new(),
            checkpoints: None,
            takes_checkpoints: false,
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

    /// The same context, for the node of stable id `uid`, its tables writing snapshots to
    /// `checkpoints`.
    pub fn with_checkpoints(mut self, uid: &str, checkpoints: Option<CheckpointStore>) -> Self {
        self.uid = uid.to_string();
        self.takes_checkpoints = checkpoints.is_some();
        self.checkpoints = checkpoints;
        self
    }

    /// The same context, for the node of stable id `uid` in a job that takes no checkpoints
    /// but restores one: its tables read the restored files from `restored`.
    pub fn reading_restored_state(mut self, uid: &str, restored: Option<CheckpointStore>) -> Self {
        self.uid = uid.to_string();
        self.takes_checkpoints = false;
        self.checkpoints = restored;
        self
    }

    /// The name of this subtask's state table `table`: unique per job, stable across runs.
    pub fn table_name(&self, table: &str) -> String {
        format!("{}-{}-{table}", self.uid, self.subtask)
    }

    /// The event-time timers registered, in time order (the runtime checkpoints them).
    pub fn event_timers(&self) -> Vec<EventTime> {
        self.timers.iter().copied().collect()
    }

    /// The processing-time timers, as how long from now each is due.
    pub fn processing_timers_from(&self, now: Instant) -> Vec<std::time::Duration> {
        self.processing_timers
            .iter()
            .map(|t| t.saturating_duration_since(now))
            .collect()
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
    pub fn next_processing_timer(&self) -> Option<Instant> {
        self.processing_timers.first().copied()
    }

    /// Removes and returns the processing-time timers due at `now`, in time order.
    pub fn take_due_processing_timers(&mut self, now: Instant) -> Vec<Instant> {
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
    pub fn take_due_timers(&mut self, wm: EventTime) -> Vec<EventTime> {
        let later = self.timers.split_off(&wm.saturating_add(1));
        let due = std::mem::replace(&mut self.timers, later);
        due.into_iter().collect()
    }
}

/// A streaming operator: synchronous callbacks, driven by its task.
///
/// Defaults forward watermarks and do nothing else, so a stateless operator implements only
/// `on_batch`. The runtime forwards barriers and the end marker itself, after the callback.
///
/// Callbacks run on the task's thread, one at a time, and must not block on I/O for long:
/// async work belongs to sources, sinks and the state backend. An `Err` fails the job (it
/// restarts from its latest checkpoint when restarts are configured); a bad input record is a
/// user error, never a panic. Keyed state lives in `gemini-state` tables, keyed by the key
/// group of [`crate::keys`], so that the runtime can snapshot and rescale it; anything else
/// an operator buffers must be in a table or emitted by the time `on_barrier` returns.
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

    /// Every input delivered `barrier` (aligned): the operator's state as of this cut is
    /// taken now. The operator moves what it buffers in memory into its state tables (or emits
    /// it, if it must precede the barrier downstream); the runtime then freezes the tables
    /// and writes their delta in the background, so this returns quickly. Timers are the
    /// runtime's and are part of the snapshot. The barrier is forwarded after this returns.
    fn on_barrier(
        &mut self,
        _barrier: &Barrier,
        _ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` is complete and published everywhere: side effects held
    /// back for it may happen now (2-phase commit). Called at most once per checkpoint, in
    /// checkpoint order; a later checkpoint's completion implies the earlier ones'.
    fn on_checkpoint_complete(
        &mut self,
        _checkpoint_id: CheckpointId,
        _ctx: &mut OperatorContext,
    ) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` failed or timed out and will never complete. What the
    /// operator held back for it stays pending and goes with the next checkpoint; nothing is
    /// dropped.
    fn on_checkpoint_aborted(
        &mut self,
        _checkpoint_id: CheckpointId,
        _ctx: &mut OperatorContext,
    ) -> Result<()> {
        Ok(())
    }

    /// Whether the operator keeps what it holds through a checkpoint and a restore: a
    /// stateless operator, or one that implements [`snapshot_state`](Self::snapshot_state)
    /// and [`restore_state`](Self::restore_state), says yes. The default, no, makes the
    /// runtime refuse to checkpoint a job that runs this operator, naming it.
    fn checkpointable(&self) -> bool {
        false
    }

    /// Right after [`on_barrier`](Self::on_barrier): the operator's state as of the barrier,
    /// its small state in its own encoding and the snapshots of its state tables (see
    /// [`OperatorContext::table_name`]), which the runtime waits for in the background.
    fn snapshot_state(
        &mut self,
        _checkpoint_id: CheckpointId,
        _ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        Ok(OperatorSnapshot::default())
    }

    /// Before the first input after a restore: what earlier subtasks of this operator saved
    /// (see [`RestoredState`]). Timers are restored by the runtime.
    fn restore_state(&mut self, restored: RestoredState, _ctx: &mut OperatorContext) -> Result<()> {
        if restored.all_states.iter().all(Vec::is_empty) && restored.tables.is_empty() {
            return Ok(());
        }
        Err(Error::internal(format!(
            "operator '{}' saved state it cannot restore",
            self.name()
        )))
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

/// What an operator subtask saves at a barrier.
#[derive(Debug, Default)]
pub struct OperatorSnapshot {
    /// Small state, in the operator's own encoding (what it does not keep in tables).
    pub state: Vec<u8>,
    /// Its state tables' snapshots being written, by table (as passed to
    /// [`OperatorContext::table_name`]).
    pub tables: Vec<(String, PendingSnapshot)>,
}

/// What a restored operator subtask gets back from a checkpoint.
#[derive(Debug, Default, Clone)]
pub struct RestoredState {
    /// The small states of the old subtasks handed to this one: its own at the same
    /// parallelism, round-robin over the new subtasks after a rescale.
    pub states: Vec<Vec<u8>>,
    /// The small state of every old subtask, for keyed operators whose small state says
    /// something about their key groups (which slices a key group has): each keeps what
    /// concerns its own range.
    pub all_states: Vec<Vec<u8>>,
    /// Per table, the manifests of every old subtask; a table keeps its own key groups of
    /// them ([`gemini_state::StateTable::restore`]).
    pub tables: BTreeMap<String, Vec<Manifest>>,
}

/// Records `op`'s state size in the job's metrics (`eddy run` prints the peaks); the runtime
/// calls it around watermarks, barriers and the end.
pub fn report_state(op: &dyn Operator, ctx: &OperatorContext) {
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

/// A source subtask: reads its share of the input (its splits) as batches.
///
/// The runtime polls it from the task's thread and injects barriers between two polls, so
/// a source never sees a barrier: it only answers [`snapshot`](Self::snapshot).
pub trait Source: Send {
    fn name(&self) -> &str;

    /// The next batch, or why there is none. Never blocks for long: a source waiting for
    /// data answers [`SourcePoll::Idle`] and is polled again, so that barriers, timers and
    /// cancellation are not held up.
    fn poll_next(&mut self, ctx: &mut OperatorContext) -> Result<SourcePoll>;

    /// Where each of this subtask's splits stands after the last batch returned, for the
    /// barrier of `checkpoint_id` that goes out next. Every row returned before is covered,
    /// none after: restored from these positions ([`SourceFactory::restore`]), the source
    /// continues with the first row it had not returned. Splits already finished are
    /// reported as finished, not left out, so a restore does not read them again.
    ///
    /// The default says the source cannot resume; the runtime then refuses to checkpoint a
    /// job that reads it, naming the source, rather than replay or lose its rows.
    fn snapshot(&mut self, checkpoint_id: CheckpointId) -> Result<Vec<SplitState>> {
        let _ = checkpoint_id;
        Err(Error::user(format!(
            "source '{}' cannot take part in a checkpoint: it cannot resume from a position",
            self.name()
        )))
    }

    /// Checkpoint `checkpoint_id` is complete: a source that acknowledges what it read (a
    /// Kafka consumer group's offsets, a replication slot) may do so now.
    fn notify_checkpoint_complete(&mut self, checkpoint_id: CheckpointId) -> Result<()> {
        let _ = checkpoint_id;
        Ok(())
    }
}

/// Creates the subtasks of one source node. Factories are shared by all subtasks.
pub trait SourceFactory: Send + Sync + Debug {
    /// Subtask `subtask` of `parallelism`, reading its share from the beginning.
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>>;

    /// Subtask `subtask` of `parallelism`, resuming `splits` from where a checkpoint's
    /// [`Source::snapshot`] left them. The parallelism may differ from the one that took the
    /// checkpoint: the runtime hands each subtask its share of every split of the node.
    fn restore(
        &self,
        subtask: usize,
        parallelism: usize,
        splits: Vec<SplitState>,
    ) -> Result<Box<dyn Source>> {
        let _ = (subtask, parallelism, splits);
        Err(Error::user(format!(
            "{} cannot resume from a checkpoint",
            self.describe()
        )))
    }

    /// One line for `explain`.
    fn describe(&self) -> String;
}

/// Creates the subtasks of one operator node.
pub trait OperatorFactory: Send + Sync + Debug {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Operator>>;
    fn describe(&self) -> String;
}

/// Cooperative cancellation: set by Ctrl-C or by a failing task; sources poll it. A child
/// flag (one attempt of a job) is cancelled with its parent, not the other way round.
///
/// It also carries a request to stop with a savepoint (Flink's `stop`), shared by a flag
/// and all its children: the job takes a savepoint, its sinks commit, and it ends without
/// flushing; a job that has no savepoint directory treats the request as a cancel.
#[derive(Debug, Default, Clone)]
pub struct CancelFlag {
    own: Arc<AtomicBool>,
    parent: Option<Arc<AtomicBool>>,
    stop: Arc<AtomicBool>,
}

impl CancelFlag {
    pub fn cancel(&self) {
        self.own.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::Relaxed)
            || self
                .parent
                .as_ref()
                .is_some_and(|p| p.load(Ordering::Relaxed))
    }

    /// Asks the job to stop with a savepoint.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Withdraws the request (the savepoint failed and the job goes on).
    pub fn withdraw_stop(&self) {
        self.stop.store(false, Ordering::SeqCst);
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// A flag cancelled by `cancel()` on it or on `self`.
    pub fn child(&self) -> CancelFlag {
        CancelFlag {
            own: Arc::new(AtomicBool::new(false)),
            parent: Some(self.own.clone()),
            stop: self.stop.clone(),
        }
    }
}
