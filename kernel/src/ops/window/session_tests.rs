//! The session window operator driven by hand: sessions per key, a row bridging two
//! sessions, touching windows, firing at the watermark, late rows.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use datafusion_functions_aggregate::sum::sum_udaf;
use datafusion_physical_expr::aggregate::AggregateExprBuilder;

use super::tests::{batch_of, col, input_schema, Collect};
use super::*;
use crate::metrics::JobMetrics;
use crate::operator::{report_state, OperatorContext, OperatorFactory};
use crate::types::{Barrier, Message, Watermark};

/// Sessions of gap 10 per key `k`: (k, start, end, sum(v)).
fn factory() -> SessionAggregateFactory {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    SessionAggregateFactory {
        gap: 10,
        keys: vec![col("k", 0)],
        key_schema: Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)])),
        time: TimeAttribute::Rowtime(col("ts", 1)),
        calls: vec![WindowAggregateCall {
            function: Arc::new(
                AggregateExprBuilder::new(sum_udaf(), vec![col("v", 2)])
                    .schema(input_schema())
                    .alias("s")
                    .build()
                    .unwrap(),
            ),
            filter: None,
        }],
        outputs: vec![
            WindowOutput::Key(0),
            WindowOutput::WindowStart,
            WindowOutput::WindowEnd,
            WindowOutput::Aggregate(0),
        ],
        output: Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("start", ts.clone(), false),
            Field::new("end", ts, false),
            Field::new("s", DataType::Int64, true),
        ])),
        buffer_rows: DEFAULT_BUFFER_GROUPS,
    }
}

fn batch(rows: &[(i64, i64, i64)]) -> RecordBatch {
    let rows: Vec<_> = rows.iter().map(|&(k, t, v)| (Some(k), t, v)).collect();
    batch_of(input_schema(), &rows)
}

#[derive(Clone)]
enum Step {
    Rows(Vec<(i64, i64, i64)>),
    Watermark(i64),
    Barrier(u64),
}

/// A result row: (k, start, end, sum).
type Result4 = (i64, i64, i64, i64);

/// Every result, in emission order, the late row count, and all that was emitted.
fn drive(steps: &[Step]) -> (Vec<Result4>, u64, Collect) {
    drive_with(&factory(), steps)
}

fn drive_with(f: &SessionAggregateFactory, steps: &[Step]) -> (Vec<Result4>, u64, Collect) {
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Collect::default();
    for s in steps {
        match s {
            Step::Rows(r) => op.on_batch(0, batch(r), &mut ctx, &mut out).unwrap(),
            Step::Watermark(t) => op
                .on_watermark(Watermark::EventTime(*t), &mut ctx, &mut out)
                .unwrap(),
            Step::Barrier(id) => op
                .on_barrier(&Barrier { checkpoint_id: *id }, &mut ctx, &mut out)
                .unwrap(),
        }
        // As the runtime does, after each message (it also asks before watermarks).
        report_state(op.as_ref(), &ctx);
    }
    op.on_end(&mut ctx, &mut out).unwrap();
    report_state(op.as_ref(), &ctx);
    // Every fired session freed its rows (the key dictionary stays).
    let state = &ctx.metrics.state()[&(0, 0)];
    assert_eq!(state.entries, 0, "{state:?}");
    assert!(state.peak_bytes > state.bytes, "{state:?}");
    let mut rows = Vec::new();
    for b in out.batches() {
        let ms = |i: usize| {
            cast(b.column(i), &DataType::Int64)
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone()
        };
        let (k, start, end, s) = (ms(0), ms(1), ms(2), ms(3));
        for r in 0..b.num_rows() {
            rows.push((k.value(r), start.value(r), end.value(r), s.value(r)));
        }
    }
    let late = JobMetrics::get(&ctx.metrics.late_rows);
    (rows, late, out)
}

#[test]
fn sessions_merge_per_key_and_fire_when_the_watermark_passes_their_end() {
    let (rows, late, out) = drive(&[
        // Key 1: sessions [0, 10) and [25, 35); key 2: [3, 13).
        Step::Rows(vec![(1, 0, 1), (2, 3, 10), (1, 25, 100)]),
        // A row at 8 extends key 1's first session to [0, 18).
        Step::Rows(vec![(1, 8, 2)]),
        // Key 2's session [3, 13) fires at 12; key 1's [0, 18) is still open.
        Step::Watermark(12),
        // 15 bridges key 1's [0, 22) and [25, 35) (its window [15, 25) touches 25).
        Step::Rows(vec![(1, 15, 4)]),
        // A row whose own window [1, 11) has passed and that meets no open session: late.
        Step::Rows(vec![(2, 1, 1000)]),
        Step::Watermark(40),
    ]);
    assert_eq!(rows, vec![(2, 3, 13, 10), (1, 0, 35, 107)]);
    assert_eq!(late, 1);
    // Key 2's session came out before the watermark 12 went on.
    let first = out.0.iter().position(|m| matches!(m, Message::Batch(_)));
    let wm = out
        .0
        .iter()
        .position(|m| matches!(m, Message::Watermark(_)));
    assert!(first < wm);
}

#[test]
fn an_old_row_that_reaches_an_open_session_is_not_late() {
    // Key 1's session [20, 30) is open at watermark 15. A row at 12 joins it (the session
    // grows back to [12, 30)); a row at 1, whose window [1, 11) has ended and reaches no open
    // session, is late.
    let (rows, late, _) = drive(&[
        Step::Rows(vec![(1, 20, 1)]),
        Step::Watermark(15),
        Step::Rows(vec![(1, 12, 2), (1, 1, 4)]),
    ]);
    assert_eq!(rows, vec![(1, 12, 30, 3)]);
    assert_eq!(late, 1);
}

#[test]
fn rows_written_to_the_state_table_give_the_same_sessions() {
    // Five keys, rows out of order by up to 30 ms, sessions that grow and merge after their
    // rows were written out, late rows, watermarks every few batches.
    let mut steps = Vec::new();
    let mut seed = 7u64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) % n) as i64
    };
    for b in 0..40 {
        let rows = (0..5)
            .map(|_| (next(5), b * 6 + next(30), next(100)))
            .collect();
        steps.push(Step::Rows(rows));
        if b % 4 == 3 {
            steps.push(Step::Watermark(b * 6 + 20));
        }
    }
    let (expected, late, _) = drive(&steps);
    assert!(expected.len() > 5 && late > 0, "{expected:?} {late}");
    let sorted = |mut rows: Vec<Result4>| {
        rows.sort();
        rows
    };
    let expected = sorted(expected);
    // Past one row kept in memory, everything goes to the table; or at barriers.
    let mut spilling = factory();
    spilling.buffer_rows = 1;
    let mut with_barriers = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        with_barriers.push(Step::Barrier(i as u64));
        with_barriers.push(s.clone());
    }
    for (f, steps) in [(&spilling, &steps), (&factory(), &with_barriers)] {
        let (rows, late_too, _) = drive_with(f, steps);
        assert_eq!(sorted(rows), expected);
        assert_eq!(late_too, late);
    }
}
