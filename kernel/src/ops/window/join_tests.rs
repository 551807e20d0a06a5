//! The window join operator driven by hand: key equality within a window, the extra
//! condition, outer and semi rows, null keys, firing at the watermark and late rows.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion_expr::Operator as BinaryOp;
use datafusion_physical_expr::expressions::BinaryExpr;

use super::tests::{batch_of, col, Collect};
use super::*;
use crate::metrics::JobMetrics;
use crate::operator::{report_state, OperatorContext, OperatorFactory};
use crate::types::{Barrier, Message, Watermark};

/// A side's rows: (key, window end, value).
fn side_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new(
            "we",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn batch(rows: &[(Option<i64>, i64, i64)]) -> RecordBatch {
    batch_of(side_schema(), rows)
}

/// A join on `k` within windows by `we`, with `left.v < right.v` when `condition`.
fn factory(join_type: WindowJoinType, condition: bool) -> WindowJoinFactory {
    let side = || JoinSide {
        keys: vec![col("k", 0)],
        window_end: 1,
        schema: side_schema(),
        hashed: vec![0],
    };
    let paired: Vec<Field> = side_schema()
        .fields()
        .iter()
        .chain(side_schema().fields())
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let output = match join_type {
        WindowJoinType::LeftSemi | WindowJoinType::LeftAnti => side_schema(),
        _ => Arc::new(Schema::new(paired)),
    };
    WindowJoinFactory {
        join_type,
        left: side(),
        right: side(),
        key_schema: Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)])),
        filter: condition
            .then(|| Arc::new(BinaryExpr::new(col("v", 2), BinaryOp::Lt, col("v", 5))) as _),
        output,
        buffer_rows: DEFAULT_BUFFER_GROUPS,
    }
}

#[derive(Clone)]
enum Step {
    Left(Vec<(Option<i64>, i64, i64)>),
    Right(Vec<(Option<i64>, i64, i64)>),
    Watermark(i64),
    Barrier(u64),
}

fn drive(f: &WindowJoinFactory, steps: &[Step]) -> (Collect, OperatorContext) {
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Collect::default();
    for s in steps {
        match s {
            Step::Left(r) => op.on_batch(0, batch(r), &mut ctx, &mut out).unwrap(),
            Step::Right(r) => op.on_batch(1, batch(r), &mut ctx, &mut out).unwrap(),
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
    // Every fired window freed its rows.
    let state = &ctx.metrics.state()[&(0, 0)];
    assert_eq!((state.entries, state.bytes), (0, 0), "{state:?}");
    (out, ctx)
}

/// Every output row as its Int64 cells (timestamps as milliseconds), nulls as `None`, sorted.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<Option<i64>>> {
    let mut out = Vec::new();
    for b in batches {
        let cols: Vec<Int64Array> = b
            .columns()
            .iter()
            .map(|c| {
                cast(c, &DataType::Int64)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .clone()
            })
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| c.is_valid(r).then(|| c.value(r)))
                    .collect(),
            );
        }
    }
    out.sort();
    out
}

/// Left rows of two windows (ends 10 and 20), with a null key; right rows of the same.
fn steps() -> Vec<Step> {
    vec![
        Step::Left(vec![(Some(1), 10, 1), (Some(2), 10, 2), (None, 10, 3)]),
        Step::Right(vec![(Some(1), 10, 5), (Some(1), 10, 0), (None, 10, 9)]),
        Step::Left(vec![(Some(1), 20, 7)]),
        // Window 10 closes at 9: its rows meet, the later right row for 20 is not late.
        Step::Watermark(9),
        Step::Right(vec![(Some(1), 10, 6), (Some(1), 20, 8), (Some(3), 20, 1)]),
    ]
}

type Row = Vec<Option<i64>>;

/// Rows from cells, `-1` standing for null.
fn expect(cells: &[&[i64]]) -> Vec<Row> {
    let mut rows: Vec<Row> = cells
        .iter()
        .map(|r| r.iter().map(|&c| (c != -1).then_some(c)).collect())
        .collect();
    rows.sort();
    rows
}

#[test]
fn inner_join_matches_keys_within_a_window_and_drops_late_rows() {
    let (out, ctx) = drive(&factory(WindowJoinType::Inner, false), &steps());
    assert_eq!(
        rows(&out.batches()),
        expect(&[
            &[1, 10, 1, 1, 10, 0],
            &[1, 10, 1, 1, 10, 5],
            &[1, 20, 7, 1, 20, 8],
        ])
    );
    // The right row for window 10 came after it fired.
    assert_eq!(JobMetrics::get(&ctx.metrics.late_rows), 1);
    // Window 10's rows came out before the watermark 9 went on.
    let first = out.0.iter().position(|m| matches!(m, Message::Batch(_)));
    let wm = out
        .0
        .iter()
        .position(|m| matches!(m, Message::Watermark(_)));
    assert!(first < wm);
}

#[test]
fn outer_joins_pad_rows_without_a_passing_match_with_nulls() {
    let (out, _) = drive(&factory(WindowJoinType::Left, true), &steps());
    // (1, 10, 1) meets (1, 10, 0) by key, but 1 < 0 fails: only its match with 5 stays.
    assert_eq!(
        rows(&out.batches()),
        expect(&[
            &[1, 10, 1, 1, 10, 5],
            &[2, 10, 2, -1, -1, -1],
            &[-1, 10, 3, -1, -1, -1],
            &[1, 20, 7, 1, 20, 8],
        ])
    );
    let (out, _) = drive(&factory(WindowJoinType::Full, true), &steps());
    assert_eq!(
        rows(&out.batches()),
        expect(&[
            &[1, 10, 1, 1, 10, 5],
            &[2, 10, 2, -1, -1, -1],
            &[-1, 10, 3, -1, -1, -1],
            &[-1, -1, -1, 1, 10, 0],
            &[-1, -1, -1, -1, 10, 9],
            &[1, 20, 7, 1, 20, 8],
            &[-1, -1, -1, 3, 20, 1],
        ])
    );
}

#[test]
fn semi_and_anti_joins_keep_left_rows_once() {
    let (out, _) = drive(&factory(WindowJoinType::LeftSemi, false), &steps());
    // (1, 10, 1) matches two right rows and comes out once.
    assert_eq!(rows(&out.batches()), expect(&[&[1, 10, 1], &[1, 20, 7]]));
    let (out, _) = drive(&factory(WindowJoinType::LeftAnti, true), &steps());
    assert_eq!(rows(&out.batches()), expect(&[&[2, 10, 2], &[-1, 10, 3]]));
}

#[test]
fn windows_written_to_the_state_table_join_as_buffered_ones() {
    let mut with_barriers = Vec::new();
    for (i, s) in steps().into_iter().enumerate() {
        with_barriers.push(Step::Barrier(i as u64));
        with_barriers.push(s);
    }
    use WindowJoinType::*;
    for ty in [Inner, Left, Right, Full, LeftSemi, LeftAnti] {
        let buffered = factory(ty, true);
        let (expected, _) = drive(&buffered, &steps());
        // Past one row the buffer is written out; barriers write it out too.
        let mut spilling = buffered.clone();
        spilling.buffer_rows = 1;
        for (f, steps) in [(&spilling, steps()), (&buffered, with_barriers.clone())] {
            let (got, ctx) = drive(f, &steps);
            assert_eq!(rows(&got.batches()), rows(&expected.batches()), "{ty:?}");
            // Rows were stored (`drive` checked they were all deleted by the end).
            let report = &ctx.metrics.state()[&(0, 0)];
            assert!(report.peak_entries > 0, "{ty:?} {report:?}");
        }
    }
}
