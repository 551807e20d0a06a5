//! Flink's OVER window: rows wait for the watermark and leave in time order, late rows are
//! dropped, RANGE frames see their peers, and the sliding folds match a brute-force fold.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::PhysicalExpr;

use super::*;
use crate::metrics::JobMetrics;
use crate::ops::test_output::Lines;

/// Rows of (k, t, v); t is the rowtime in milliseconds.
fn input() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("t", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn col(name: &str, i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(name, i))
}

/// `function(v) OVER (PARTITION BY k ORDER BY t <frame>)` for each function, by the rowtime.
fn factory(
    functions: &[OverFunction],
    frame: OverFrame,
    time: OverTime,
) -> TimeOverAggregateFactory {
    let mut fields: Vec<Field> = input()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (i, _) in functions.iter().enumerate() {
        fields.push(Field::new(format!("agg{i}"), DataType::Int64, true));
    }
    TimeOverAggregateFactory {
        partition: vec![col("k", 0)],
        key_schema: Arc::new(Schema::new(vec![Field::new("$key0", DataType::Utf8, true)])),
        time,
        calls: functions
            .iter()
            .map(|&function| OverCall {
                function,
                arg: Some(col("v", 2)),
                frame,
            })
            .collect(),
        input: input(),
        output: Arc::new(Schema::new(fields)),
        state_ttl_ms: None,
    }
}

const ROWTIME: OverTime = OverTime::Event { column: 1 };

fn batch(rows: &[(&str, i64, Option<i64>)]) -> RecordBatch {
    RecordBatch::try_new(
        input(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap()
}

/// A batch, or a watermark at this time.
enum Step<'a> {
    Rows(&'a [(&'a str, i64, Option<i64>)]),
    Watermark(i64),
    End,
}

/// What `op` sends after each step (its rows as `print` lines), and the context it ran in.
fn run(op: &mut dyn Operator, steps: &[Step]) -> (Vec<Vec<String>>, OperatorContext) {
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let lines = steps
        .iter()
        .map(|step| {
            let mut out = Lines::default();
            match step {
                Step::Rows(rows) => op.on_batch(0, batch(rows), &mut ctx, &mut out),
                Step::Watermark(t) => op.on_watermark(Watermark::EventTime(*t), &mut ctx, &mut out),
                Step::End => op.on_end(&mut ctx, &mut out),
            }
            .unwrap();
            out.0
        })
        .collect();
    (lines, ctx)
}

#[test]
fn rows_wait_for_the_watermark_and_leave_in_time_order_once() {
    let f = factory(
        &[OverFunction::Sum, OverFunction::Count],
        OverFrame::Rows(Some(1)),
        ROWTIME,
    );
    let mut op = f.create(0, 1).unwrap();
    let (got, _) = run(
        op.as_mut(),
        &[
            Step::Rows(&[("a", 3, Some(30)), ("a", 1, Some(10)), ("b", 2, Some(7))]),
            Step::Watermark(2),
            Step::Rows(&[("a", 2, Some(20)), ("a", 5, Some(50))]),
            Step::Watermark(4),
            Step::End,
        ],
    );
    assert!(got[0].is_empty(), "{:?}", got[0]);
    assert_eq!(got[1], ["+I[a, 1, 10, 10, 1]", "+I[b, 2, 7, 7, 1]"]);
    // Row a@2 arrives after a@1 was taken but before a@3: it is in time, and a@3's frame
    // (one row before it) is a@2.
    assert_eq!(got[3], ["+I[a, 2, 20, 30, 2]", "+I[a, 3, 30, 50, 2]"]);
    assert_eq!(got[4], ["+I[a, 5, 50, 80, 2]"]);
    assert_eq!(op.state_size().unwrap().entries, 3, "a's two rows, b's one");
}

#[test]
fn a_row_at_or_before_its_partitions_last_time_is_late_and_dropped() {
    let f = factory(&[OverFunction::Sum], OverFrame::Rows(None), ROWTIME);
    let mut op = f.create(0, 1).unwrap();
    let (got, ctx) = run(
        op.as_mut(),
        &[
            Step::Rows(&[("a", 5, Some(1)), ("b", 1, Some(2))]),
            Step::Watermark(5),
            // a took time 5: a@5 and a@4 are late; b took 1 only, so b@3 still counts.
            Step::Rows(&[("a", 5, Some(10)), ("a", 4, Some(10)), ("b", 3, Some(4))]),
            Step::End,
        ],
    );
    assert_eq!(got[1], ["+I[b, 1, 2, 2]", "+I[a, 5, 1, 1]"]);
    assert_eq!(got[3], ["+I[b, 3, 4, 6]"]);
    assert_eq!(JobMetrics::get(&ctx.metrics.late_rows), 2);
}

#[test]
fn a_range_frame_sees_every_row_of_its_time_and_drops_older_ones() {
    let f = factory(
        &[OverFunction::Sum, OverFunction::Max],
        OverFrame::Range(Some(10)),
        ROWTIME,
    );
    let mut op = f.create(0, 1).unwrap();
    let (got, _) = run(
        op.as_mut(),
        &[
            Step::Rows(&[
                ("a", 0, Some(9)),
                ("a", 10, Some(1)),
                ("a", 10, Some(2)),
                ("a", 11, Some(4)),
                ("a", 11, None),
            ]),
            Step::End,
        ],
    );
    assert_eq!(
        got[1],
        [
            // Time 10's frame is [0, 10]: both peers see each other and the row at 0.
            "+I[a, 0, 9, 9, 9]",
            "+I[a, 10, 1, 12, 9]",
            "+I[a, 10, 2, 12, 9]",
            // Time 11's frame is [1, 11]: the row at 0 left; a null argument is skipped.
            "+I[a, 11, 4, 7, 4]",
            "+I[a, 11, null, 7, 4]",
        ]
    );
}

#[test]
fn processing_time_takes_rows_as_they_arrive() {
    let f = factory(
        &[OverFunction::Count],
        OverFrame::Rows(Some(1)),
        OverTime::Processing,
    );
    let mut op = f.create(0, 1).unwrap();
    let (got, _) = run(
        op.as_mut(),
        &[
            Step::Rows(&[("a", 9, Some(1)), ("a", 1, Some(2))]),
            Step::Rows(&[("a", 5, Some(3))]),
        ],
    );
    assert_eq!(got[0], ["+I[a, 9, 1, 1]", "+I[a, 1, 2, 2]"]);
    assert_eq!(got[1], ["+I[a, 5, 3, 2]"]);
}

/// The sliding folds (MIN and MAX through their monotonic queues, SUM and COUNT by adding and
/// subtracting) against folding each frame anew, over pseudo-random rows with nulls and ties.
#[test]
fn sliding_folds_match_a_fold_of_each_frame() {
    let functions = [
        OverFunction::Sum,
        OverFunction::Count,
        OverFunction::Min,
        OverFunction::Max,
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let rows: Vec<(i64, Option<i64>)> = (0..400)
        .map(|i| (i / 3, (next(5) > 0).then(|| next(20) as i64 - 10)))
        .collect();
    for frame in [
        OverFrame::Rows(Some(4)),
        OverFrame::Rows(None),
        OverFrame::Range(Some(6)),
        OverFrame::Range(None),
    ] {
        let f = factory(&functions, frame, ROWTIME);
        let mut op = f.create(0, 1).unwrap();
        let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
        let mut out = Lines::default();
        for chunk in rows.chunks(37) {
            let b: Vec<(&str, i64, Option<i64>)> =
                chunk.iter().map(|&(t, v)| ("a", t, v)).collect();
            op.on_batch(0, batch(&b), &mut ctx, &mut out).unwrap();
        }
        op.on_end(&mut ctx, &mut out).unwrap();

        let want: Vec<String> = rows
            .iter()
            .enumerate()
            .map(|(i, &(t, v))| {
                let in_frame: Vec<i64> = rows
                    .iter()
                    .enumerate()
                    .filter(|&(j, &(tj, _))| match frame {
                        OverFrame::Rows(Some(n)) => j <= i && j + n >= i,
                        OverFrame::Rows(None) => j <= i,
                        OverFrame::Range(Some(span)) => tj <= t && tj >= t - span,
                        OverFrame::Range(None) => tj <= t,
                    })
                    .filter_map(|(_, &(_, v))| v)
                    .collect();
                let cell = |x: Option<i64>| x.map_or("null".to_string(), |x| x.to_string());
                let sum = (!in_frame.is_empty()).then(|| in_frame.iter().sum());
                format!(
                    "+I[a, {t}, {}, {}, {}, {}, {}]",
                    cell(v),
                    cell(sum),
                    in_frame.len(),
                    cell(in_frame.iter().min().copied()),
                    cell(in_frame.iter().max().copied()),
                )
            })
            .collect();
        let first = out.0.iter().zip(&want).position(|(g, w)| g != w);
        assert_eq!(first, None, "{frame}: first difference at row {first:?}");
        assert_eq!(out.0.len(), want.len(), "{frame}");
    }
}

#[test]
fn a_restored_over_window_continues_as_if_it_had_not_stopped() {
    use crate::ops::test_output::{restores_as_if_uninterrupted, Step as S};
    let rows = |r: &[(&str, i64, Option<i64>)]| S::Batch(0, batch(r));
    // Rows wait across the checkpoints (the watermark trails), MIN/MAX keep candidates.
    let steps = || {
        vec![
            vec![rows(&[
                ("a", 1, Some(5)),
                ("b", 2, Some(7)),
                ("a", 3, Some(2)),
            ])],
            vec![rows(&[("a", 4, Some(9)), ("c", 4, None)]), S::Watermark(2)],
            vec![
                rows(&[("b", 5, Some(1)), ("a", 6, Some(4))]),
                S::Watermark(4),
            ],
            vec![
                rows(&[("a", 7, Some(3)), ("b", 8, Some(8))]),
                S::Watermark(6),
            ],
            vec![
                rows(&[("a", 9, Some(6)), ("c", 9, Some(1))]),
                S::Watermark(10),
            ],
        ]
    };
    let functions = [OverFunction::Sum, OverFunction::Min, OverFunction::Max];
    for frame in [
        OverFrame::Rows(Some(2)),
        OverFrame::Rows(None),
        OverFrame::Range(Some(3)),
    ] {
        let f = factory(&functions, frame, ROWTIME);
        restores_as_if_uninterrupted(|s, p| f.create(s, p).unwrap(), &steps());
    }
}
