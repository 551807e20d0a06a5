//! The coordinator, restarts and restores in process: a job whose operator fails once after
//! a checkpoint restarts from it and commits every row exactly once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use kernel::checkpoint::{CheckpointId, Committable, SplitState};
use kernel::config::{
    CheckpointConfig, CheckpointRetention, CheckpointingMode, JobConfig, RecoverySettings,
    RestartStrategy,
};
use kernel::graph::{JobGraph, Node, NodeKind, Partitioning};
use kernel::metrics::JobMetrics;
use kernel::operator::{
    CancelFlag, Operator, OperatorContext, OperatorFactory, Output, Source, SourceFactory,
    SourcePoll,
};
use kernel::sink::{Sink, SinkFactory};
use kernel::types::StreamSchema;
use kernel::{Error, Result};
use parking_lot::Mutex;

use crate::{run_job, JobOutcome};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

/// Counts 0..end in batches of 50, a little slowly, and resumes from its next value.
#[derive(Debug)]
struct Numbers(i64);

struct NumbersSource {
    next: i64,
    end: i64,
}

impl Source for NumbersSource {
    fn name(&self) -> &str {
        "numbers"
    }
    fn poll_next(&mut self, _ctx: &mut OperatorContext) -> Result<SourcePoll> {
        if self.next >= self.end {
            return Ok(SourcePoll::End);
        }
        std::thread::sleep(Duration::from_millis(1));
        let to = (self.next + 50).min(self.end);
        let values: Vec<i64> = (self.next..to).collect();
        self.next = to;
        let batch = RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(values))])?;
        Ok(SourcePoll::Batch(batch))
    }
    fn snapshot(&mut self, _id: CheckpointId) -> Result<Vec<SplitState>> {
        Ok(vec![SplitState {
            split: "numbers".into(),
            position: self.next.to_le_bytes().to_vec(),
        }])
    }
}

impl SourceFactory for Numbers {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Source>> {
        Ok(Box::new(NumbersSource {
            next: 0,
            end: self.0,
        }))
    }
    fn restore(&self, _s: usize, _p: usize, splits: Vec<SplitState>) -> Result<Box<dyn Source>> {
        let next = i64::from_le_bytes(splits[0].position[..8].try_into().unwrap());
        Ok(Box::new(NumbersSource { next, end: self.0 }))
    }
    fn describe(&self) -> String {
        "numbers".into()
    }
}

/// Fails once, on the first batch after a checkpoint has completed (shared flag: once per
/// test, not per attempt).
#[derive(Debug)]
struct FailOnce(Arc<AtomicBool>);

struct FailOnceOp {
    failed: Arc<AtomicBool>,
    armed: bool,
}

impl Operator for FailOnceOp {
    fn name(&self) -> &str {
        "FailOnce"
    }
    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if self.armed && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(Error::user("injected failure"));
        }
        out.batch(batch)
    }
    fn checkpointable(&self) -> bool {
        true
    }
    fn on_checkpoint_complete(
        &mut self,
        _id: CheckpointId,
        _ctx: &mut OperatorContext,
    ) -> Result<()> {
        self.armed = true;
        Ok(())
    }
}

impl OperatorFactory for FailOnce {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(FailOnceOp {
            failed: self.0.clone(),
            armed: false,
        }))
    }
    fn describe(&self) -> String {
        "fail once".into()
    }
}

/// Commits rows into a shared list; a committable is a numbered batch of rows, committed at
/// most once however often it is handed over.
#[derive(Debug, Default)]
struct Committed {
    rows: Mutex<Vec<i64>>,
    done: Mutex<BTreeSet<u64>>,
    next: AtomicU64,
}

#[derive(Debug)]
struct CollectSink(Arc<Committed>);

struct Collect {
    shared: Arc<Committed>,
    buffer: Vec<i64>,
}

impl Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.buffer
            .extend(batch.column(0).as_primitive::<Int64Type>().values().iter());
        Ok(())
    }
    fn pre_commit(&mut self, _id: CheckpointId) -> Result<Vec<Committable>> {
        let id = self.shared.next.fetch_add(1, Ordering::SeqCst);
        let mut bytes = id.to_le_bytes().to_vec();
        for v in self.buffer.drain(..) {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        Ok(vec![Committable(bytes)])
    }
    fn commit(&mut self, _id: CheckpointId, committables: Vec<Committable>) -> Result<()> {
        for c in committables {
            let id = u64::from_le_bytes(c.0[..8].try_into().unwrap());
            if self.shared.done.lock().insert(id) {
                let rows = c.0[8..]
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()));
                self.shared.rows.lock().extend(rows);
            }
        }
        Ok(())
    }
}

impl SinkFactory for CollectSink {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(Collect {
            shared: self.0.clone(),
            buffer: Vec::new(),
        }))
    }
    fn describe(&self) -> String {
        "collect".into()
    }
}

fn job(rows: i64, failed: Arc<AtomicBool>, sink: Arc<Committed>) -> JobGraph {
    let mut g = JobGraph::default();
    let node = |uid: &str, parallelism, kind| Node {
        uid: uid.into(),
        name: uid.into(),
        parallelism,
        kind,
        output: StreamSchema::append_only(schema()),
    };
    let s = g.add_node(node("src", 1, NodeKind::Source(Arc::new(Numbers(rows)))));
    let f = g.add_node(node(
        "fail",
        2,
        NodeKind::Operator(Arc::new(FailOnce(failed))),
    ));
    let k = g.add_node(node("sink", 2, NodeKind::Sink(Arc::new(CollectSink(sink)))));
    g.connect(s, f, 0, Partitioning::Rebalance);
    g.connect(f, k, 0, Partitioning::Forward);
    g
}

fn checkpointing(dir: &std::path::Path) -> CheckpointConfig {
    CheckpointConfig {
        interval: Some(Duration::from_millis(5)),
        mode: CheckpointingMode::ExactlyOnce,
        timeout: Duration::from_secs(60),
        min_pause: Duration::ZERO,
        max_concurrent: 1,
        tolerable_failures: 0,
        dir: dir.display().to_string(),
        store_settings: Vec::new(),
        num_retained: 2,
        savepoint_dir: None,
        retention: CheckpointRetention::RetainOnCancellation,
    }
}

#[test]
fn a_failed_task_restarts_the_job_from_its_checkpoint_and_every_row_commits_once() {
    let dir = tempfile::tempdir().unwrap();
    let failed = Arc::new(AtomicBool::new(false));
    let sink = Arc::new(Committed::default());
    let graph = job(5_000, failed.clone(), sink.clone());
    let config = JobConfig {
        checkpointing: Some(checkpointing(dir.path())),
        restart: RestartStrategy::FixedDelay {
            attempts: 1,
            delay: Duration::ZERO,
        },
        ..JobConfig::default()
    };
    let metrics = Arc::new(JobMetrics::default());
    let outcome = run_job(&graph, &config, metrics.clone(), CancelFlag::default()).unwrap();
    assert_eq!(outcome, JobOutcome::Finished);
    assert!(failed.load(Ordering::SeqCst), "the failure was injected");
    assert_eq!(JobMetrics::get(&metrics.restarts), 1);
    assert!(JobMetrics::get(&metrics.checkpoints_completed) >= 2);
    let mut rows = sink.rows.lock().clone();
    rows.sort_unstable();
    assert_eq!(rows, (0..5_000).collect::<Vec<_>>());
    // Two retained checkpoints, the job's last among them.
    let job_dir = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let published =
        super::metadata::published(&gemini_state::CheckpointStore::local(&job_dir).unwrap())
            .unwrap();
    assert_eq!(published.len(), 2, "{published:?}");
}

#[test]
fn a_job_stopped_with_a_savepoint_resumes_from_it_and_every_row_commits_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Committed::default());
    // The failure is spent already: this job does not fail.
    let graph = job(20_000, Arc::new(AtomicBool::new(true)), sink.clone());
    let mut stoppable = checkpointing(&dir.path().join("chk"));
    stoppable.interval = None; // savepoints only
    stoppable.savepoint_dir = Some(dir.path().join("savepoints").display().to_string());
    let config = JobConfig {
        checkpointing: Some(stoppable),
        ..JobConfig::default()
    };
    let cancel = CancelFlag::default();
    let stopper = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            // The source takes at least 400 ms for its rows.
            std::thread::sleep(Duration::from_millis(50));
            cancel.request_stop();
        })
    };
    let outcome = run_job(&graph, &config, Arc::default(), cancel).unwrap();
    stopper.join().unwrap();
    let JobOutcome::Stopped { savepoint } = outcome else {
        panic!("not stopped with a savepoint: {outcome:?}");
    };
    assert!(std::path::Path::new(&savepoint).join("_metadata").is_file());
    let at_stop = sink.rows.lock().len();
    assert!(at_stop < 20_000, "all {at_stop} rows before the stop");

    // Resumed without checkpoints, from the savepoint: the rest, once.
    let resumed = JobConfig {
        recovery: Some(RecoverySettings {
            path: savepoint,
            allow_non_restored_state: false,
            store_settings: Vec::new(),
        }),
        ..JobConfig::default()
    };
    let outcome = run_job(&graph, &resumed, Arc::default(), CancelFlag::default()).unwrap();
    assert_eq!(outcome, JobOutcome::Finished);
    let mut rows = sink.rows.lock().clone();
    rows.sort_unstable();
    assert_eq!(rows, (0..20_000).collect::<Vec<_>>());
}

#[test]
fn a_stop_request_without_a_savepoint_directory_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Committed::default());
    let graph = job(20_000, Arc::new(AtomicBool::new(true)), sink.clone());
    let config = JobConfig {
        checkpointing: Some(checkpointing(dir.path())),
        ..JobConfig::default()
    };
    let cancel = CancelFlag::default();
    cancel.request_stop();
    let outcome = run_job(&graph, &config, Arc::default(), cancel).unwrap();
    assert_eq!(outcome, JobOutcome::Cancelled);
    assert!(sink.rows.lock().len() < 20_000);
}

#[test]
fn without_restarts_a_failure_fails_the_job_and_commits_nothing_after_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let failed = Arc::new(AtomicBool::new(false));
    let sink = Arc::new(Committed::default());
    let graph = job(5_000, failed, sink.clone());
    let config = JobConfig {
        checkpointing: Some(checkpointing(dir.path())),
        restart: RestartStrategy::None,
        ..JobConfig::default()
    };
    let err = run_job(&graph, &config, Arc::default(), CancelFlag::default()).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    let rows = sink.rows.lock().len();
    assert!(rows < 5_000, "{rows} rows committed by a job that failed");
}

/// Takes `delay` over every barrier, so that checkpoints time out.
#[derive(Debug)]
struct SlowBarriers(Duration);

struct SlowBarriersOp(Duration);

impl Operator for SlowBarriersOp {
    fn name(&self) -> &str {
        "SlowBarriers"
    }
    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        out.batch(batch)
    }
    fn on_barrier(
        &mut self,
        _barrier: &kernel::types::Barrier,
        _ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        std::thread::sleep(self.0);
        Ok(())
    }
    fn checkpointable(&self) -> bool {
        true
    }
}

impl OperatorFactory for SlowBarriers {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(SlowBarriersOp(self.0)))
    }
    fn describe(&self) -> String {
        "slow barriers".into()
    }
}

fn slow_job(rows: i64, sink: Arc<Committed>) -> JobGraph {
    let slow = SlowBarriers(Duration::from_millis(60));
    line_job(rows, "slow", Arc::new(slow), sink)
}

/// `rows` numbers through the operator `uid` of `factory` into `sink`, all at parallelism 1.
fn line_job(
    rows: i64,
    uid: &str,
    factory: Arc<dyn OperatorFactory>,
    sink: Arc<Committed>,
) -> JobGraph {
    let mut g = JobGraph::default();
    let node = |uid: &str, kind| Node {
        uid: uid.into(),
        name: uid.into(),
        parallelism: 1,
        kind,
        output: StreamSchema::append_only(schema()),
    };
    let s = g.add_node(node("src", NodeKind::Source(Arc::new(Numbers(rows)))));
    let f = g.add_node(node(uid, NodeKind::Operator(factory)));
    let k = g.add_node(node("sink", NodeKind::Sink(Arc::new(CollectSink(sink)))));
    g.connect(s, f, 0, Partitioning::Rebalance);
    g.connect(f, k, 0, Partitioning::Forward);
    g
}

#[test]
fn checkpoints_that_time_out_are_aborted_and_fail_the_job_past_the_tolerated_number() {
    let dir = tempfile::tempdir().unwrap();
    let timing_out = |tolerable| CheckpointConfig {
        timeout: Duration::from_millis(20),
        tolerable_failures: tolerable,
        ..checkpointing(dir.path())
    };
    // Tolerating none: the first timeout fails the job, naming the setting.
    let sink = Arc::new(Committed::default());
    let config = JobConfig {
        checkpointing: Some(timing_out(0)),
        ..JobConfig::default()
    };
    let err = run_job(
        &slow_job(3_000, sink),
        &config,
        Arc::default(),
        CancelFlag::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("tolerable-failed-checkpoints"),
        "{err}"
    );

    // Tolerating them: the job finishes, and what aborted checkpoints held back is
    // committed with the next one, once.
    let sink = Arc::new(Committed::default());
    let config = JobConfig {
        checkpointing: Some(timing_out(u32::MAX)),
        ..JobConfig::default()
    };
    let metrics = Arc::new(JobMetrics::default());
    let outcome = run_job(
        &slow_job(3_000, sink.clone()),
        &config,
        metrics.clone(),
        CancelFlag::default(),
    )
    .unwrap();
    assert_eq!(outcome, JobOutcome::Finished);
    assert!(JobMetrics::get(&metrics.checkpoints_failed) >= 1);
    let mut rows = sink.rows.lock().clone();
    rows.sort_unstable();
    assert_eq!(rows, (0..3_000).collect::<Vec<_>>());
}

/// An operator that keeps the trait's default: it cannot be checkpointed.
#[derive(Debug)]
struct Unsaved;

struct UnsavedOp;

impl Operator for UnsavedOp {
    fn name(&self) -> &str {
        "Unsaved"
    }
    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        out.batch(batch)
    }
}

impl OperatorFactory for Unsaved {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(UnsavedOp))
    }
    fn describe(&self) -> String {
        "unsaved".into()
    }
}

#[test]
fn an_operator_that_cannot_be_checkpointed_is_refused_before_the_job_starts() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Committed::default());
    let g = line_job(100, "unsaved", Arc::new(Unsaved), sink.clone());
    let config = JobConfig {
        checkpointing: Some(checkpointing(dir.path())),
        ..JobConfig::default()
    };
    let err = run_job(&g, &config, Arc::default(), CancelFlag::default()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("'unsaved' (Unsaved) cannot be checkpointed yet"),
        "{text}"
    );
    assert!(sink.rows.lock().is_empty(), "nothing ran");
    // Without checkpoints it runs.
    run_job(
        &g,
        &JobConfig::default(),
        Arc::default(),
        CancelFlag::default(),
    )
    .unwrap();
    assert_eq!(sink.rows.lock().len(), 100);
}
