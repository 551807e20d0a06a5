//! The window aggregation operator driven by hand: batches, watermarks, late rows, and the
//! two phases against one.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion_functions_aggregate::count::count_udaf;
use datafusion_functions_aggregate::sum::sum_udaf;
use datafusion_physical_expr::aggregate::AggregateExprBuilder;
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::PhysicalExpr;

use super::*;
use crate::metrics::JobMetrics;
use crate::operator::{report_state, OperatorContext, OperatorFactory, Output};
use crate::types::{Barrier, Message, Watermark};
use crate::Result;

#[derive(Default)]
pub(super) struct Collect(pub(super) Vec<Message>);

impl Output for Collect {
    fn emit(&mut self, msg: Message) -> Result<()> {
        self.0.push(msg);
        Ok(())
    }
}

impl Collect {
    pub(super) fn batches(&self) -> Vec<RecordBatch> {
        self.0
            .iter()
            .filter_map(|m| match m {
                Message::Batch(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }
}

pub(super) fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("v", DataType::Int64, true),
    ]))
}

pub(super) fn col(name: &str, i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(name, i))
}

fn factory(kind: WindowKind, phase: AggregatePhase) -> WindowAggregateFactory {
    let schema = input_schema();
    let call = |udaf, alias: &str| WindowAggregateCall {
        function: Arc::new(
            AggregateExprBuilder::new(udaf, vec![col("v", 2)])
                .schema(schema.clone())
                .alias(alias)
                .build()
                .unwrap(),
        ),
        filter: None,
    };
    let calls = vec![call(count_udaf(), "c"), call(sum_udaf(), "s")];
    let key_schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let results = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
        Field::new("c", DataType::Int64, true),
        Field::new("s", DataType::Int64, true),
    ]));
    let output = if phase == AggregatePhase::Local {
        partial_schema(&key_schema, &calls).unwrap()
    } else {
        results
    };
    WindowAggregateFactory {
        spec: WindowSpec { kind, offset: 0 },
        windows: WindowSpec { kind, offset: 0 },
        phase,
        keys: vec![col("k", 0)],
        key_schema,
        time: TimeAttribute::Rowtime(col("ts", 1)),
        calls,
        outputs: vec![
            WindowOutput::Key(0),
            WindowOutput::WindowStart,
            WindowOutput::WindowEnd,
            WindowOutput::Aggregate(0),
            WindowOutput::Aggregate(1),
        ],
        output,
        buffer_groups: DEFAULT_BUFFER_GROUPS,
    }
}

/// (key, time, value) rows as a batch.
fn batch(rows: &[(Option<i64>, i64, i64)]) -> RecordBatch {
    batch_of(input_schema(), rows)
}

/// (key, time, value) rows as a batch of `schema` (an Int64, a timestamp, an Int64).
pub(super) fn batch_of(schema: SchemaRef, rows: &[(Option<i64>, i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
            Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

/// Result rows as (key, start, end, count, sum), sorted.
fn rows(batches: &[RecordBatch]) -> Vec<(Option<i64>, i64, i64, i64, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let ms = |i: usize| {
            cast(b.column(i), &DataType::Int64)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (start, end) = (ms(1), ms(2));
        let k = b.column(0).as_primitive::<Int64Type>();
        let c = b.column(3).as_primitive::<Int64Type>();
        let s = b.column(4).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            out.push((
                k.is_valid(r).then(|| k.value(r)),
                start.value(r),
                end.value(r),
                c.value(r),
                s.value(r),
            ));
        }
    }
    out.sort();
    out
}

enum Step {
    Rows(Vec<(Option<i64>, i64, i64)>),
    Watermark(i64),
    /// Lets the wall clock move (processing time).
    Sleep(u64),
    /// A checkpoint barrier.
    Barrier(u64),
}

/// Runs `steps` through one operator subtask; what it emitted and the context.
fn drive(f: &WindowAggregateFactory, steps: &[Step]) -> (Collect, OperatorContext) {
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Collect::default();
    for s in steps {
        match s {
            Step::Rows(r) => op.on_batch(0, batch(r), &mut ctx, &mut out).unwrap(),
            Step::Watermark(t) => op
                .on_watermark(Watermark::EventTime(*t), &mut ctx, &mut out)
                .unwrap(),
            Step::Sleep(ms) => std::thread::sleep(std::time::Duration::from_millis(*ms)),
            Step::Barrier(id) => op
                .on_barrier(&Barrier { checkpoint_id: *id }, &mut ctx, &mut out)
                .unwrap(),
        }
        // As the runtime does, after each message (it also asks before watermarks).
        report_state(op.as_ref(), &ctx);
    }
    op.on_end(&mut ctx, &mut out).unwrap();
    report_state(op.as_ref(), &ctx);
    (out, ctx)
}

#[test]
fn tumbling_windows_fire_at_the_watermark_and_drop_late_rows() {
    let f = factory(WindowKind::Tumble { size: 10 }, AggregatePhase::Single);
    let (out, ctx) = drive(
        &f,
        &[
            Step::Rows(vec![(Some(1), 3, 1), (Some(2), 12, 10), (Some(1), 1, 2)]),
            // Out of order but not late: the watermark is still below 9.
            Step::Watermark(8),
            Step::Rows(vec![(Some(1), 9, 4), (None, 5, 100)]),
            // [0, 10) fires at 9 = end - 1.
            Step::Watermark(9),
            Step::Rows(vec![(Some(1), 7, 1000), (Some(2), 15, 20)]),
            Step::Watermark(30),
            Step::Rows(vec![(Some(3), 25, 1)]),
        ],
    );
    // The window [0, 10) came out before the watermark 9 was passed on.
    let first_batch = out.0.iter().position(|m| matches!(m, Message::Batch(_)));
    let wm9 = out
        .0
        .iter()
        .position(|m| matches!(m, Message::Watermark(Watermark::EventTime(9))));
    assert!(first_batch < wm9);
    assert_eq!(
        rows(&out.batches()),
        vec![
            (None, 0, 10, 1, 100),
            (Some(1), 0, 10, 3, 7),
            (Some(2), 10, 20, 2, 30),
        ]
    );
    // The row at 7 came after [0, 10) fired, the one at 25 after [20, 30) could have.
    assert_eq!(JobMetrics::get(&ctx.metrics.late_rows), 2);
    assert!(ctx.metrics.notes()[0].contains("2 late rows dropped"));
}

#[test]
fn hopping_windows_merge_their_slices() {
    let f = factory(
        WindowKind::Hop { size: 10, slide: 5 },
        AggregatePhase::Single,
    );
    let (out, _) = drive(
        &f,
        &[Step::Rows(vec![
            (Some(1), 1, 1),
            (Some(1), 6, 2),
            (Some(1), 11, 4),
            (Some(2), 7, 8),
        ])],
    );
    assert_eq!(
        rows(&out.batches()),
        vec![
            (Some(1), -5, 5, 1, 1),
            (Some(1), 0, 10, 2, 3),
            (Some(1), 5, 15, 2, 6),
            (Some(1), 10, 20, 1, 4),
            (Some(2), 0, 10, 1, 8),
            (Some(2), 5, 15, 1, 8),
        ]
    );
}

/// Messages cut after each watermark; the last piece is what followed the last watermark.
fn segments(msgs: &[Message]) -> Vec<Vec<Message>> {
    let mut out = vec![Vec::new()];
    for m in msgs {
        out.last_mut().unwrap().push(m.clone());
        if matches!(m, Message::Watermark(_)) {
            out.push(Vec::new());
        }
    }
    out
}

/// A pseudo-random stream, out of order within 40 ms, keys repeating, in several batches with
/// watermarks between them that no row falls behind.
fn random_steps() -> Vec<Step> {
    let mut steps = Vec::new();
    let mut x: u64 = 42;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as i64
    };
    for b in 0..20 {
        let rows = (0..50)
            .map(|i| {
                let t = b * 100 + i * 2 - next() % 40;
                let key = (next() % 7 != 0).then(|| next() % 13);
                (key, t, next() % 100)
            })
            .collect();
        steps.push(Step::Rows(rows));
        steps.push(Step::Watermark(b * 100 - 50));
    }
    steps
}

const KINDS: [WindowKind; 3] = [
    WindowKind::Tumble { size: 30 },
    WindowKind::Hop {
        size: 60,
        slide: 20,
    },
    WindowKind::Cumulate { size: 90, step: 30 },
];

#[test]
fn two_phases_give_what_one_gives() {
    let steps = random_steps();
    for kind in KINDS {
        let (single, single_ctx) = drive(&factory(kind, AggregatePhase::Single), &steps);
        // Two local subtasks split the rows; their partials and watermarks go to one global.
        let (halves_a, halves_b): (Vec<Step>, Vec<Step>) = steps
            .iter()
            .map(|s| match s {
                Step::Rows(r) => {
                    let (a, b): (Vec<_>, Vec<_>) =
                        r.iter().enumerate().partition(|(i, _)| i % 2 == 0);
                    (
                        Step::Rows(a.into_iter().map(|(_, r)| *r).collect()),
                        Step::Rows(b.into_iter().map(|(_, r)| *r).collect()),
                    )
                }
                Step::Watermark(t) => (Step::Watermark(*t), Step::Watermark(*t)),
                Step::Sleep(ms) => (Step::Sleep(*ms), Step::Sleep(*ms)),
                Step::Barrier(id) => (Step::Barrier(*id), Step::Barrier(*id)),
            })
            .unzip();
        let local = factory(kind, AggregatePhase::Local);
        let global_f = factory(kind, AggregatePhase::Global);
        let mut global = global_f.create(0, 1).unwrap();
        let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
        let mut out = Collect::default();
        let (a, _) = drive(&local, &halves_a);
        let (b, _) = drive(&local, &halves_b);
        // The exchange: each watermark reaches the global once both locals have sent it
        // (the minimum), after the partials each sent before it.
        let (sa, sb) = (segments(&a.0), segments(&b.0));
        assert_eq!(sa.len(), sb.len());
        for (x, y) in sa.iter().zip(&sb) {
            for m in x.iter().chain(y) {
                if let Message::Batch(p) = m {
                    global.on_batch(0, p.clone(), &mut ctx, &mut out).unwrap();
                }
            }
            if let Some(Message::Watermark(w)) = x.last() {
                global.on_watermark(*w, &mut ctx, &mut out).unwrap();
            }
        }
        global.on_end(&mut ctx, &mut out).unwrap();
        assert_eq!(rows(&out.batches()), rows(&single.batches()), "{kind:?}");
        assert_eq!(JobMetrics::get(&single_ctx.metrics.late_rows), 0);
        assert_eq!(JobMetrics::get(&ctx.metrics.late_rows), 0);
        assert!(!single.batches().is_empty());
    }
}

#[test]
fn processing_time_windows_follow_the_clock_and_ignore_row_times_and_watermarks() {
    let mut f = factory(WindowKind::Tumble { size: 50 }, AggregatePhase::Single);
    f.time = TimeAttribute::Proctime;
    let before = wall_clock_ms();
    // Row times far in the past, and a watermark past every window: neither decides.
    let mut steps = vec![Step::Rows(vec![(Some(1), 0, 1), (Some(2), 0, 10)])];
    for _ in 0..3 {
        steps.push(Step::Watermark(i64::MAX - 1));
        steps.push(Step::Rows(vec![(Some(1), 5, 2)]));
        steps.push(Step::Sleep(60));
    }
    let (out, ctx) = drive(&f, &steps);
    let after = wall_clock_ms();
    let got = rows(&out.batches());
    // Each window is one the clock was in while rows arrived; every row is counted once.
    for &(_, start, end, _, _) in &got {
        assert_eq!(end - start, 50);
        assert_eq!(start % 50, 0);
        assert!(start >= before - before % 50 && start <= after, "{got:?}");
    }
    let count = |k| -> i64 { got.iter().filter(|r| r.0 == Some(k)).map(|r| r.3).sum() };
    assert_eq!((count(1), count(2)), (4, 1));
    // Rows spread over at least two windows: the clock fired the earlier ones.
    assert!(
        got.iter().filter(|r| r.0 == Some(1)).count() >= 2,
        "{got:?}"
    );
    assert_eq!(JobMetrics::get(&ctx.metrics.late_rows), 0);
}

#[test]
fn slices_written_to_the_state_table_give_what_the_buffer_gives() {
    let steps = random_steps();
    // Barriers between some batches: the buffer is written out there too.
    let mut with_barriers = Vec::new();
    for (i, s) in random_steps().into_iter().enumerate() {
        if i % 3 == 0 {
            with_barriers.push(Step::Barrier(i as u64));
        }
        with_barriers.push(s);
    }
    for kind in KINDS {
        let buffered = factory(kind, AggregatePhase::Single);
        let (expected, _) = drive(&buffered, &steps);
        assert!(!expected.batches().is_empty());
        // One group over the limit writes the whole buffer to the state table.
        let mut spilling = buffered.clone();
        spilling.buffer_groups = 1;
        for (f, steps) in [(&spilling, &steps), (&buffered, &with_barriers)] {
            let (got, ctx) = drive(f, steps);
            assert_eq!(rows(&got.batches()), rows(&expected.batches()), "{kind:?}");
            let state = ctx.metrics.state();
            let report = &state[&(0, 0)];
            // Entries were stored, and every one was deleted once its windows had fired.
            assert!(
                report.peak_entries > 0 && report.peak_bytes > 0,
                "{report:?}"
            );
            assert_eq!((report.entries, report.bytes), (0, 0), "{kind:?}");
        }
    }
}

#[test]
fn a_local_phase_emits_its_buffer_when_full_or_at_a_barrier() {
    let kind = WindowKind::Tumble { size: 30 };
    let mut local = factory(kind, AggregatePhase::Local);
    let rows_in = vec![(Some(1), 3, 1), (Some(2), 4, 1), (Some(1), 5, 1)];
    let partial_rows =
        |out: &Collect| -> usize { out.batches().iter().map(|b| b.num_rows()).sum() };
    let (out, _) = drive(&local, &[Step::Rows(rows_in.clone()), Step::Barrier(1)]);
    // Both keys' partials left at the barrier, ahead of it; nothing was left for the end.
    assert_eq!(partial_rows(&out), 2);
    assert!(matches!(out.0[0], Message::Batch(_)));
    local.buffer_groups = 1;
    let (out, _) = drive(&local, &[Step::Rows(rows_in.clone()), Step::Rows(rows_in)]);
    // Emitted after each batch (two groups > 1), never merged across them.
    assert_eq!(out.batches().len(), 2);
    assert_eq!(partial_rows(&out), 4);
}
