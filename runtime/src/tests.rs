//! Runtime tests: watermark propagation, barrier alignment, partitioned edges, failures.

use std::sync::Arc;
use std::thread;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use parking_lot::Mutex;

use super::chain::Chain;
use super::router::Router;
use super::task::{OperatorTask, TaskCheckpoints};
use super::*;
use kernel::graph::{Node, NodeKind, Partitioning};
use kernel::operator::{
    Operator, OperatorContext, OperatorFactory, Output, Source, SourceFactory, SourcePoll,
};
use kernel::types::Message;
use kernel::types::{Barrier, StreamSchema, Watermark};
use net_shuffle::ChannelSender;

/// What a recording operator saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Rows(usize, Vec<i64>),
    Wm(Watermark),
    Barrier(u64),
    End,
}

type Log = Arc<Mutex<Vec<Seen>>>;

struct Recorder(Log);

impl Operator for Recorder {
    fn name(&self) -> &str {
        "Recorder"
    }
    fn on_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        _: &mut OperatorContext,
        _: &mut dyn Output,
    ) -> Result<()> {
        self.0.lock().push(Seen::Rows(
            input,
            batch
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
        ));
        Ok(())
    }
    fn on_watermark(
        &mut self,
        wm: Watermark,
        _: &mut OperatorContext,
        _: &mut dyn Output,
    ) -> Result<()> {
        self.0.lock().push(Seen::Wm(wm));
        Ok(())
    }
    fn on_barrier(
        &mut self,
        b: &Barrier,
        _: &mut OperatorContext,
        _: &mut dyn Output,
    ) -> Result<()> {
        self.0.lock().push(Seen::Barrier(b.checkpoint_id));
        Ok(())
    }
    fn on_end(&mut self, _: &mut OperatorContext, _: &mut dyn Output) -> Result<()> {
        self.0.lock().push(Seen::End);
        Ok(())
    }
}

#[derive(Debug)]
struct RecorderFactory(Log);

impl OperatorFactory for RecorderFactory {
    fn create(&self, _: usize, _: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Recorder(self.0.clone())))
    }
    fn describe(&self) -> String {
        "recorder".into()
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
}

fn batch(values: &[i64]) -> RecordBatch {
    RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
}

/// An operator task over `n` channels feeding a recorder; returns the senders and the log.
fn task(n: usize) -> (Vec<Box<dyn ChannelSender>>, OperatorTask, Log) {
    task_with(n, None)
}

/// [`task`] taking part in checkpoints through `checkpoints`.
fn task_with(
    n: usize,
    checkpoints: Option<TaskCheckpoints>,
) -> (Vec<Box<dyn ChannelSender>>, OperatorTask, Log) {
    let log: Log = Arc::default();
    let specs: Vec<ChannelSpec> = (0..n)
        .map(|u| ChannelSpec {
            edge: 0,
            from_subtask: u,
            to_node: 1,
            to_subtask: 0,
        })
        .collect();
    let mut ends = LocalTransport.connect(&specs, 64).unwrap();
    let gate = ends.gates.remove(&(1, 0)).unwrap();
    let ctx = OperatorContext::new(0, 1, 128, Arc::default());
    let chain = Chain::new(vec![Box::new(Recorder(log.clone()))], vec![ctx]);
    (
        ends.senders,
        OperatorTask::new(
            gate,
            vec![0; n],
            chain,
            Router { edges: vec![] },
            CancelFlag::default(),
            checkpoints,
        ),
        log,
    )
}

#[test]
fn watermark_is_the_minimum_over_live_non_idle_inputs() {
    // Messages are handled one by one, in this order, so the result does not depend on how
    // the task interleaves its channels.
    let (_tx, mut t, log) = task(2);
    let wm = |t| Message::Watermark(Watermark::EventTime(t));
    let steps = [
        (0, wm(10)),                              // input 1 has not reported: nothing yet
        (1, wm(5)),                               // min = 5
        (1, wm(20)),                              // min = 10
        (0, Message::Watermark(Watermark::Idle)), // only input 1 counts: 20
        (0, wm(15)),                              // back from idle below 20: holds at 20
        (1, Message::End),                        // input 0 alone at 15 < 20: nothing
        (0, wm(30)),                              // 30
    ];
    for (i, m) in steps {
        t.handle(i, m).unwrap();
    }
    let et = |t| Seen::Wm(Watermark::EventTime(t));
    assert_eq!(log.lock().as_slice(), &[et(5), et(10), et(20), et(30)]);
}

#[test]
fn all_idle_inputs_make_the_operator_idle() {
    let (tx, mut t, log) = task(2);
    tx[0].send(Message::Watermark(Watermark::Idle)).unwrap();
    tx[1].send(Message::Watermark(Watermark::Idle)).unwrap();
    for s in &tx {
        s.send(Message::End).unwrap();
    }
    drop(tx);
    t.run().unwrap();
    assert_eq!(
        log.lock().as_slice(),
        &[Seen::Wm(Watermark::Idle), Seen::End]
    );
}

#[test]
fn barriers_are_aligned_before_the_operator_sees_them() {
    let (tx, mut t, log) = task(2);
    tx[0].send(Message::Batch(batch(&[1]))).unwrap();
    tx[0]
        .send(Message::Barrier(Barrier { checkpoint_id: 7 }))
        .unwrap();
    // Sent after the barrier on input 0: must not overtake it.
    tx[0].send(Message::Batch(batch(&[3]))).unwrap();
    tx[1].send(Message::Batch(batch(&[2]))).unwrap();
    tx[1]
        .send(Message::Barrier(Barrier { checkpoint_id: 7 }))
        .unwrap();
    for s in &tx {
        s.send(Message::End).unwrap();
    }
    drop(tx);
    t.run().unwrap();
    let seen = log.lock().clone();
    let barrier_at = seen
        .iter()
        .position(|s| *s == Seen::Barrier(7))
        .expect("barrier delivered once");
    let rows_before: Vec<i64> = seen[..barrier_at]
        .iter()
        .flat_map(|s| {
            if let Seen::Rows(_, v) = s {
                v.clone()
            } else {
                vec![]
            }
        })
        .collect();
    let mut rows_before = rows_before;
    rows_before.sort();
    assert_eq!(rows_before, vec![1, 2]);
    assert!(seen[barrier_at..].contains(&Seen::Rows(0, vec![3])));
}

#[test]
fn at_least_once_does_not_hold_an_input_back_behind_its_barrier() {
    use super::checkpoint::{Signals, TaskLink};
    let (reports, received) = crossbeam_channel::unbounded();
    let signals = Arc::new(Signals::new(1, false, 0));
    let link = TaskLink {
        task: 0,
        signals: signals.clone(),
        reports,
    };
    let (tx, mut t, log) = task_with(2, Some(TaskCheckpoints::new(link)));
    let runner = thread::spawn(move || t.run());
    tx[0].send(Message::Batch(batch(&[1]))).unwrap();
    tx[0]
        .send(Message::Barrier(Barrier { checkpoint_id: 1 }))
        .unwrap();
    tx[0].send(Message::Batch(batch(&[3]))).unwrap();
    // Not aligned: the row after input 0's barrier is read before input 1 sends its own
    // (aligned, this would wait forever).
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !log.lock().contains(&Seen::Rows(0, vec![3])) {
        assert!(std::time::Instant::now() < give_up, "input 0 was held back");
        thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(!log.lock().contains(&Seen::Barrier(1)));
    tx[1].send(Message::Batch(batch(&[2]))).unwrap();
    tx[1]
        .send(Message::Barrier(Barrier { checkpoint_id: 1 }))
        .unwrap();
    for s in &tx {
        s.send(Message::End).unwrap();
    }
    drop(tx);
    drop(received.recv().unwrap()); // the snapshot of checkpoint 1
    let seen = log.lock().clone();
    let barrier_at = seen.iter().position(|s| *s == Seen::Barrier(1)).unwrap();
    assert!(seen[..barrier_at].contains(&Seen::Rows(0, vec![3])));
    // The task has ended and waits for a checkpoint holding its final state.
    drop(received.recv().unwrap());
    signals.final_published[0].store(true, std::sync::atomic::Ordering::Release);
    runner.join().unwrap().unwrap();
}

#[test]
fn a_newer_barrier_supersedes_the_one_being_aligned() {
    use super::checkpoint::{Signals, TaskLink, TaskReport};
    let (reports, received) = crossbeam_channel::unbounded();
    let link = TaskLink {
        task: 0,
        signals: Arc::new(Signals::new(1, true, 0)),
        reports,
    };
    let (_tx, mut t, log) = task_with(2, Some(TaskCheckpoints::new(link)));
    let barrier = |id| Message::Barrier(Barrier { checkpoint_id: id });
    // Input 1's source skipped checkpoint 1 (aborted); input 0's barrier 1 arrives late.
    t.handle(0, barrier(1)).unwrap();
    t.handle(1, barrier(2)).unwrap();
    t.handle(0, barrier(2)).unwrap();
    t.handle(1, barrier(1)).unwrap();
    assert_eq!(log.lock().clone(), vec![Seen::Barrier(2)]);
    let Ok(TaskReport::Snapshot { checkpoint_id, .. }) = received.try_recv() else {
        panic!("no snapshot reported");
    };
    assert_eq!(checkpoint_id, 2);
    assert!(received.try_recv().is_err(), "checkpoint 1 was given up on");
}

#[test]
fn an_upstream_that_vanishes_without_end_is_an_error() {
    let (tx, mut t, _log) = task(1);
    drop(tx);
    assert!(t.run().unwrap_err().to_string().contains("upstream"));
}

/// Emits `0..n` in batches of 10, then ends.
#[derive(Debug)]
struct Counting(i64);

struct CountingSource {
    next: i64,
    end: i64,
}

impl Source for CountingSource {
    fn name(&self) -> &str {
        "counting"
    }
    fn poll_next(&mut self, _: &mut OperatorContext) -> Result<SourcePoll> {
        if self.next >= self.end {
            return Ok(SourcePoll::End);
        }
        let hi = (self.next + 10).min(self.end);
        let b = batch(&(self.next..hi).collect::<Vec<_>>());
        self.next = hi;
        Ok(SourcePoll::Batch(b))
    }
}

impl SourceFactory for Counting {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        let per = self.0 / parallelism as i64;
        Ok(Box::new(CountingSource {
            next: per * subtask as i64,
            end: per * (subtask as i64 + 1),
        }))
    }
    fn describe(&self) -> String {
        "counting".into()
    }
}

#[test]
fn hash_edges_deliver_every_row_once_with_keys_together() {
    let log: Log = Arc::default();
    let mut g = JobGraph::default();
    let s = g.add_node(Node {
        uid: "src".into(),
        name: "src".into(),
        parallelism: 2,
        kind: NodeKind::Source(Arc::new(Counting(1000))),
        output: StreamSchema::append_only(schema()),
    });
    let r = g.add_node(Node {
        uid: "rec".into(),
        name: "rec".into(),
        parallelism: 3,
        kind: NodeKind::Operator(Arc::new(RecorderFactory(log.clone()))),
        output: StreamSchema::append_only(schema()),
    });
    g.connect(s, r, 0, Partitioning::Hash(vec![0]));
    run_job(
        &g,
        &JobConfig::default(),
        Arc::default(),
        CancelFlag::default(),
    )
    .unwrap();
    let seen = log.lock();
    let mut rows: Vec<i64> = seen
        .iter()
        .flat_map(|s| {
            if let Seen::Rows(_, v) = s {
                v.clone()
            } else {
                vec![]
            }
        })
        .collect();
    rows.sort();
    assert_eq!(rows, (0..1000).collect::<Vec<_>>());
    assert_eq!(
        seen.iter().filter(|s| **s == Seen::End).count(),
        3,
        "each of 3 subtasks ends once"
    );
    // End of bounded input flushes event time to the end.
    assert!(seen.contains(&Seen::Wm(Watermark::EventTime(i64::MAX))));
}

#[derive(Debug)]
struct Failing;

impl OperatorFactory for Failing {
    fn create(&self, _: usize, _: usize) -> Result<Box<dyn Operator>> {
        struct F;
        impl Operator for F {
            fn name(&self) -> &str {
                "F"
            }
            fn on_batch(
                &mut self,
                _: usize,
                _: RecordBatch,
                _: &mut OperatorContext,
                _: &mut dyn Output,
            ) -> Result<()> {
                Err(Error::user("bad row"))
            }
        }
        Ok(Box::new(F))
    }
    fn describe(&self) -> String {
        "failing".into()
    }
}

#[test]
fn the_first_failure_is_reported_and_the_job_stops() {
    let mut g = JobGraph::default();
    let s = g.add_node(Node {
        uid: "src".into(),
        name: "src".into(),
        parallelism: 1,
        kind: NodeKind::Source(Arc::new(Counting(1_000_000_000))),
        output: StreamSchema::append_only(schema()),
    });
    let f = g.add_node(Node {
        uid: "f".into(),
        name: "f".into(),
        parallelism: 2,
        kind: NodeKind::Operator(Arc::new(Failing)),
        output: StreamSchema::append_only(schema()),
    });
    g.connect(s, f, 0, Partitioning::Rebalance);
    let err = run_job(
        &g,
        &JobConfig::default(),
        Arc::default(),
        CancelFlag::default(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "bad row");
}

#[test]
fn forward_edges_of_equal_parallelism_chain() {
    let log: Log = Arc::default();
    let mut g = JobGraph::default();
    let node = |name: &str, p, kind| Node {
        uid: name.into(),
        name: name.into(),
        parallelism: p,
        kind,
        output: StreamSchema::append_only(schema()),
    };
    let s = g.add_node(node("s", 2, NodeKind::Source(Arc::new(Counting(10)))));
    let a = g.add_node(node(
        "a",
        2,
        NodeKind::Operator(Arc::new(RecorderFactory(log.clone()))),
    ));
    let b = g.add_node(node(
        "b",
        1,
        NodeKind::Operator(Arc::new(RecorderFactory(log))),
    ));
    g.connect(s, a, 0, Partitioning::Forward);
    g.connect(a, b, 0, Partitioning::Rebalance);
    assert_eq!(plan_chains(&g), vec![vec![s, a], vec![b]]);
}

/// Subtask 0 emits 10, 20, 30, … one per millisecond; subtask 1 emits 5 and then nothing.
/// Both end once the log shows a watermark of at least 500; else subtask 0 ends at the
/// deadline, and subtask 1 after it (so the stalled one is open all along).
/// The log, subtask 0's deadline, whether subtask 0 is done, and the log's length when the
/// stalled subtask 1 ended.
#[derive(Debug)]
struct OneStalls(
    Log,
    std::time::Duration,
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicUsize>,
);

struct OneStallsSource {
    subtask: usize,
    next: i64,
    log: Log,
    started: std::time::Instant,
    deadline: std::time::Duration,
    first_done: Arc<std::sync::atomic::AtomicBool>,
    stalled_ended_at: Arc<std::sync::atomic::AtomicUsize>,
}

impl Source for OneStallsSource {
    fn name(&self) -> &str {
        "one-stalls"
    }
    fn poll_next(&mut self, _: &mut OperatorContext) -> Result<SourcePoll> {
        let released =
            self.log.lock().iter().any(
                |s| matches!(s, Seen::Wm(Watermark::EventTime(t)) if (500..i64::MAX).contains(t)),
            );
        let done = match self.subtask {
            0 => released || self.started.elapsed() > self.deadline,
            _ => released || self.first_done.load(std::sync::atomic::Ordering::SeqCst),
        };
        if done {
            if self.subtask == 0 {
                self.first_done
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            } else {
                let seen = self.log.lock().len();
                self.stalled_ended_at
                    .store(seen, std::sync::atomic::Ordering::SeqCst);
            }
            return Ok(SourcePoll::End);
        }
        thread::sleep(std::time::Duration::from_millis(1));
        match (self.subtask, self.next) {
            (1, 5) => {
                self.next = 0;
                Ok(SourcePoll::Batch(batch(&[5])))
            }
            (1, _) => Ok(SourcePoll::Pending),
            _ => {
                self.next += 10;
                Ok(SourcePoll::Batch(batch(&[self.next])))
            }
        }
    }
}

impl SourceFactory for OneStalls {
    fn create(&self, subtask: usize, _: usize) -> Result<Box<dyn Source>> {
        Ok(Box::new(OneStallsSource {
            subtask,
            next: if subtask == 1 { 5 } else { 0 },
            log: self.0.clone(),
            started: std::time::Instant::now(),
            deadline: self.1,
            first_done: self.2.clone(),
            stalled_ended_at: self.3.clone(),
        }))
    }
    fn describe(&self) -> String {
        "one-stalls".into()
    }
}

/// Runs the stalling sources through a watermark assigner into a recorder; what it saw
/// before the stalled subtask ended (what follows depends on how the two ends interleave).
fn run_with_idle_timeout(timeout: Option<std::time::Duration>, deadline_s: u64) -> Vec<Seen> {
    let log: Log = Arc::default();
    let stalled_ended_at = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let mut g = JobGraph::default();
    let node = |name: &str, p, kind| Node {
        uid: name.into(),
        name: name.into(),
        parallelism: p,
        kind,
        output: StreamSchema::append_only(schema()),
    };
    let s = g.add_node(node(
        "src",
        2,
        NodeKind::Source(Arc::new(OneStalls(
            log.clone(),
            std::time::Duration::from_secs(deadline_s),
            Arc::default(),
            stalled_ended_at.clone(),
        ))),
    ));
    let expr = Arc::new(datafusion_physical_expr::expressions::Column::new("v", 0));
    let wm = g.add_node(node(
        "wm",
        2,
        NodeKind::Operator(Arc::new(kernel::ops::WatermarkAssignerFactory {
            expr,
            rowtime: None,
            extended: schema(),
            project: None,
            delay_ms: 0,
        })),
    ));
    let r = g.add_node(node(
        "rec",
        1,
        NodeKind::Operator(Arc::new(RecorderFactory(log.clone()))),
    ));
    g.connect(s, wm, 0, Partitioning::Forward);
    g.connect(wm, r, 0, Partitioning::Single);
    let config = JobConfig {
        source_idle_timeout: timeout,
        ..JobConfig::default()
    };
    run_job(&g, &config, Arc::default(), CancelFlag::default()).unwrap();
    let seen = log.lock().clone();
    let end = stalled_ended_at.load(std::sync::atomic::Ordering::SeqCst);
    seen[..end.min(seen.len())].to_vec()
}

#[test]
fn a_stalled_source_holds_the_watermark_back_until_its_idle_timeout() {
    let wms = |seen: &[Seen]| -> Vec<i64> {
        seen.iter()
            .filter_map(|s| match s {
                Seen::Wm(Watermark::EventTime(t)) if *t < i64::MAX => Some(*t),
                _ => None,
            })
            .collect()
    };
    // Idle after 30 ms without rows: the watermark follows the live subtask past 500 while
    // the stalled one is still open (the sources end only once it has).
    let seen = run_with_idle_timeout(Some(std::time::Duration::from_millis(30)), 30);
    assert!(wms(&seen).iter().any(|&t| t >= 500), "{seen:?}");
    // Without a timeout (Flink's default) the stalled subtask's 5 is the watermark until it
    // ends, after the other one, 2 s on.
    let seen = run_with_idle_timeout(None, 2);
    assert_eq!(wms(&seen), vec![5], "{seen:?}");
}

/// Emits one batch, then waits (pending) until the log holds rows or ten seconds passed;
/// records in `released` whether it ended because the rows arrived.
#[derive(Debug)]
struct OneThenWait(Log, Arc<std::sync::atomic::AtomicBool>);

struct OneThenWaitSource {
    sent: bool,
    log: Log,
    released: Arc<std::sync::atomic::AtomicBool>,
    started: std::time::Instant,
}

impl Source for OneThenWaitSource {
    fn name(&self) -> &str {
        "one-then-wait"
    }
    fn poll_next(&mut self, _: &mut OperatorContext) -> Result<SourcePoll> {
        if !self.sent {
            self.sent = true;
            return Ok(SourcePoll::Batch(batch(&[7])));
        }
        if self.log.lock().iter().any(|s| matches!(s, Seen::Rows(..))) {
            self.released
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Ok(SourcePoll::End);
        }
        if self.started.elapsed() > std::time::Duration::from_secs(10) {
            return Ok(SourcePoll::End);
        }
        Ok(SourcePoll::Idle)
    }
}

impl SourceFactory for OneThenWait {
    fn create(&self, _: usize, _: usize) -> Result<Box<dyn Source>> {
        Ok(Box::new(OneThenWaitSource {
            sent: false,
            log: self.0.clone(),
            released: self.1.clone(),
            started: std::time::Instant::now(),
        }))
    }
    fn describe(&self) -> String {
        "one-then-wait".into()
    }
}

/// Holds its rows until a processing-time timer 5 ms after they came; drops what it holds at
/// the end, so rows downstream prove the timer fired.
struct Delayer(Vec<RecordBatch>);

impl Operator for Delayer {
    fn name(&self) -> &str {
        "Delayer"
    }
    fn on_batch(
        &mut self,
        _: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _: &mut dyn Output,
    ) -> Result<()> {
        self.0.push(batch);
        ctx.register_processing_timer(
            std::time::Instant::now() + std::time::Duration::from_millis(5),
        );
        Ok(())
    }
    fn on_processing_timer(
        &mut self,
        _: std::time::Instant,
        _: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        for b in self.0.drain(..) {
            out.batch(b)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct DelayerFactory;

impl OperatorFactory for DelayerFactory {
    fn create(&self, _: usize, _: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Delayer(Vec::new())))
    }
    fn describe(&self) -> String {
        "delayer".into()
    }
}

/// Source → delayer → recorder, the delayer chained to the source or in a task of its own.
fn processing_timer_fires_while_input_waits(chained_to_source: bool) {
    let log: Log = Arc::default();
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut g = JobGraph::default();
    let node = |name: &str, kind| Node {
        uid: name.into(),
        name: name.into(),
        parallelism: 1,
        kind,
        output: StreamSchema::append_only(schema()),
    };
    let s = g.add_node(node(
        "src",
        NodeKind::Source(Arc::new(OneThenWait(log.clone(), released.clone()))),
    ));
    let d = g.add_node(node("delay", NodeKind::Operator(Arc::new(DelayerFactory))));
    let r = g.add_node(node(
        "rec",
        NodeKind::Operator(Arc::new(RecorderFactory(log.clone()))),
    ));
    let (first, second) = if chained_to_source {
        (Partitioning::Forward, Partitioning::Rebalance)
    } else {
        (Partitioning::Rebalance, Partitioning::Forward)
    };
    g.connect(s, d, 0, first);
    g.connect(d, r, 0, second);
    run_job(
        &g,
        &JobConfig::default(),
        Arc::default(),
        CancelFlag::default(),
    )
    .unwrap();
    assert!(
        released.load(std::sync::atomic::Ordering::SeqCst),
        "{:?}",
        log.lock()
    );
    assert_eq!(log.lock()[0], Seen::Rows(0, vec![7]));
}

#[test]
fn processing_timers_fire_in_a_source_task_while_the_source_waits() {
    processing_timer_fires_while_input_waits(true);
}

#[test]
fn processing_timers_fire_in_an_operator_task_while_its_input_waits() {
    processing_timer_fires_while_input_waits(false);
}
