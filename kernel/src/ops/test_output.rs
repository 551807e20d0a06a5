//! For operator tests: an output that keeps what an operator sent as `print` lines.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;

use crate::changelog::format_row_values;
use crate::metrics::JobMetrics;
use crate::operator::{Operator, OperatorContext, Output, RestoredState};
use crate::types::Barrier;
use crate::types::Message;
use crate::Result;

/// The rows an operator sent, as `+I[…]` lines.
#[derive(Default)]
pub(crate) struct Lines(pub Vec<String>);

impl Output for Lines {
    fn emit(&mut self, msg: Message) -> Result<()> {
        if let Message::Batch(b) = msg {
            self.0.extend(format_row_values(&b)?);
        }
        Ok(())
    }
}

/// Feeds `batches` to `op` one after the other; the lines each one produced.
pub(crate) fn lines_per_batch(op: &mut dyn Operator, batches: &[RecordBatch]) -> Vec<Vec<String>> {
    lines_per_batch_apart(op, batches, Duration::ZERO)
}

/// [`lines_per_batch`], waiting at least `pause` between batches (for state TTLs).
pub(crate) fn lines_per_batch_apart(
    op: &mut dyn Operator,
    batches: &[RecordBatch],
    pause: Duration,
) -> Vec<Vec<String>> {
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if i > 0 && !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let mut out = Lines::default();
            op.on_batch(0, b.clone(), &mut ctx, &mut out).unwrap();
            out.0
        })
        .collect()
}

/// A checkpoint of one subtask: its small state and its tables' manifests.
pub(crate) type Taken = (Vec<u8>, Vec<(String, gemini_state::Manifest)>);

/// Drives an operator subtask through checkpoints, as the runtime does.
pub(crate) struct Checkpointed {
    op: Box<dyn Operator>,
    ctx: OperatorContext,
}

impl Checkpointed {
    pub fn new(
        store: &gemini_state::CheckpointStore,
        op: Box<dyn Operator>,
        subtask: usize,
        parallelism: usize,
    ) -> Self {
        let ctx = OperatorContext::new(subtask, parallelism, 128, Arc::new(JobMetrics::default()))
            .with_checkpoints("op", Some(store.clone()));
        Checkpointed { op, ctx }
    }

    /// Checkpoint `id`: the small state and the tables' manifests.
    pub fn checkpoint(&mut self, id: u64) -> Taken {
        let mut out = Lines::default();
        let barrier = Barrier { checkpoint_id: id };
        self.op
            .on_barrier(&barrier, &mut self.ctx, &mut out)
            .unwrap();
        let snap = self.op.snapshot_state(id, &mut self.ctx).unwrap();
        let tables = snap
            .tables
            .into_iter()
            .map(|(name, pending)| (name, pending.wait().unwrap()))
            .collect();
        (snap.state, tables)
    }

    pub fn restore(&mut self, saved: &[Taken]) {
        let mut tables: std::collections::BTreeMap<String, Vec<gemini_state::Manifest>> =
            Default::default();
        for (_, t) in saved {
            for (name, m) in t {
                // Tables are named per subtask; the operator asks by its own name.
                let local = name.rsplit('-').next().unwrap().to_string();
                tables.entry(local).or_default().push(m.clone());
            }
        }
        let states: Vec<Vec<u8>> = saved.iter().map(|s| s.0.clone()).collect();
        let restored = RestoredState {
            states: states.clone(),
            all_states: states,
            tables,
        };
        self.op.restore_state(restored, &mut self.ctx).unwrap();
    }
}

/// The rows of `b` the hash exchange sends to `subtask` of `parallelism` by column `key`.
pub(crate) fn own_rows(
    b: &RecordBatch,
    key: usize,
    subtask: usize,
    parallelism: usize,
) -> RecordBatch {
    let range = crate::keys::key_group_range(128, parallelism, subtask).unwrap();
    let mut hashes = Vec::new();
    let whole = gemini_state::KeyGroupRange { start: 0, end: 128 };
    let kgs = crate::keys::key_groups_of_rows(
        &[b.column(key).clone()],
        b.num_rows(),
        whole,
        128,
        &mut hashes,
    )
    .unwrap();
    let keep: arrow::array::BooleanArray = kgs.iter().map(|&kg| Some(range.contains(kg))).collect();
    arrow::compute::filter_record_batch(b, &keep).unwrap()
}

/// One input event of [`restores_as_if_uninterrupted`].
pub(crate) enum Step {
    /// A batch on input `0` or `1`.
    Batch(usize, RecordBatch),
    Watermark(i64),
}

/// Batches on input 0, one step each.
pub(crate) fn on_input_0(batches: &[RecordBatch]) -> Vec<Vec<Step>> {
    batches
        .iter()
        .map(|b| vec![Step::Batch(0, b.clone())])
        .collect()
}

impl Checkpointed {
    /// The lines `steps` make the operator send (of the rows the exchange sends this
    /// subtask, by their first column).
    pub fn steps(&mut self, steps: &[Step]) -> Vec<String> {
        let mut out = Lines::default();
        for step in steps {
            match step {
                Step::Batch(input, b) => {
                    let (subtask, parallelism) = (self.ctx.subtask, self.ctx.parallelism);
                    let mine = own_rows(b, 0, subtask, parallelism);
                    self.op
                        .on_batch(*input, mine, &mut self.ctx, &mut out)
                        .unwrap();
                }
                Step::Watermark(t) => {
                    let wm = crate::types::Watermark::EventTime(*t);
                    self.op.on_watermark(wm, &mut self.ctx, &mut out).unwrap();
                }
            }
        }
        out.0
    }
}

/// Feeds `steps` to `make(subtask, parallelism)`: a checkpoint after the first two, a
/// failure after the third; restored, the third and fourth give what a run without failure
/// gave, and restored again at parallelism 2 from a checkpoint after the fourth, the last
/// step does too (rows hashed by their first column, as the exchange would).
pub(crate) fn restores_as_if_uninterrupted(
    make: impl Fn(usize, usize) -> Box<dyn Operator>,
    steps: &[Vec<Step>],
) {
    let dir = tempfile::tempdir().unwrap();
    let store = gemini_state::CheckpointStore::local(dir.path()).unwrap();
    let mut straight = Checkpointed::new(&store, make(0, 1), 0, 1);
    straight.ctx.checkpoints = None;
    straight.ctx.takes_checkpoints = false;
    let expected: Vec<Vec<String>> = steps.iter().map(|s| straight.steps(s)).collect();
    assert!(
        expected[2..].iter().all(|lines| !lines.is_empty()),
        "{expected:?}"
    );

    let mut first = Checkpointed::new(&store, make(0, 1), 0, 1);
    first.steps(&steps[0]);
    first.steps(&steps[1]);
    let one = first.checkpoint(1);
    first.steps(&steps[2]);
    drop(first);

    let mut second = Checkpointed::new(&store, make(0, 1), 0, 1);
    second.restore(std::slice::from_ref(&one));
    assert_eq!(second.steps(&steps[2]), expected[2]);
    assert_eq!(second.steps(&steps[3]), expected[3]);
    let two = second.checkpoint(2);
    drop(second);

    let mut got = Vec::new();
    for subtask in 0..2 {
        let mut part = Checkpointed::new(&store, make(subtask, 2), subtask, 2);
        part.restore(std::slice::from_ref(&two));
        got.extend(part.steps(&steps[4]));
    }
    got.sort();
    let mut want = expected[4].clone();
    want.sort();
    assert_eq!(got, want);
}
