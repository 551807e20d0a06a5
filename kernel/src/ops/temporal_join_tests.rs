//! The temporal join: each stream row meets the version in force at its time, once the
//! watermark reaches it; deletions end versions; LEFT pads; old versions are dropped.

use std::sync::Arc;

use arrow::array::{Int64Array, Int8Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::PhysicalExpr;

use super::*;
use crate::changelog::with_row_kinds;
use crate::metrics::JobMetrics;
use crate::ops::test_output::Lines;

fn schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, true))
            .collect::<Vec<_>>(),
    ))
}

fn col(name: &str, i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(name, i))
}

/// Stream (k, t) ⋈ table (k, v, t) as of the stream's t; the output drops the table's t.
fn factory(left_outer: bool) -> TemporalJoinFactory {
    TemporalJoinFactory {
        left_keys: vec![col("k", 0)],
        right_keys: vec![col("k", 0)],
        key_schema: schema(&["$key0"]),
        left_schema: schema(&["k", "t"]),
        left_time: 1,
        right_schema: schema(&["k", "v", "t"]),
        right_time: 2,
        filter: None,
        left_outer,
        output: schema(&["k", "t", "rk", "v"]),
    }
}

fn stream(rows: &[(i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(&["k", "t"]),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .unwrap()
}

/// Table changes (kind, k, v, t).
fn table(rows: &[(RowKind, i64, i64, i64)]) -> RecordBatch {
    let data = RecordBatch::try_new(
        schema(&["k", "v", "t"]),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ],
    )
    .unwrap();
    let kinds = Int8Array::from_iter_values(rows.iter().map(|r| r.0 as i8));
    with_row_kinds(data, Arc::new(kinds)).unwrap()
}

/// The lines sent at the two watermarks (12, then 20 after a new version), and the versions
/// kept at the end.
fn run(left_outer: bool) -> (Vec<String>, Vec<String>, usize) {
    use RowKind::{Delete, Insert, UpdateAfter, UpdateBefore};
    let mut op = factory(left_outer).create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Lines::default();
    let table_rows = table(&[
        (Insert, 1, 10, 0),
        (Insert, 2, 7, 5),
        (UpdateBefore, 1, 10, 10),
        (UpdateAfter, 1, 20, 10),
        (Delete, 2, 7, 8),
    ]);
    op.on_batch(1, table_rows, &mut ctx, &mut out).unwrap();
    let rows = stream(&[(1, 5), (1, 10), (1, 15), (2, 6), (2, 9), (3, 1)]);
    op.on_batch(0, rows, &mut ctx, &mut out).unwrap();
    assert!(out.0.is_empty(), "nothing before the watermark");
    op.on_watermark(Watermark::EventTime(12), &mut ctx, &mut out)
        .unwrap();
    let mut first = std::mem::take(&mut out.0);
    first.sort();
    let late_version = table(&[(Insert, 1, 30, 14)]);
    op.on_batch(1, late_version, &mut ctx, &mut out).unwrap();
    op.on_watermark(Watermark::EventTime(20), &mut ctx, &mut out)
        .unwrap();
    let kept = op.state_size().unwrap().entries as usize;
    (first, out.0, kept)
}

#[test]
fn each_row_meets_the_version_in_force_at_its_time() {
    let (first, second, kept) = run(false);
    assert_eq!(
        first,
        ["+I[1, 10, 1, 20]", "+I[1, 5, 1, 10]", "+I[2, 6, 2, 7]"]
    );
    // 15 waited for the watermark, so it meets the version from 14.
    assert_eq!(second, ["+I[1, 15, 1, 30]"]);
    // Key 1's version from 14; key 2's deletion ended it, so nothing is kept for it.
    assert_eq!(kept, 1);
}

#[test]
fn a_left_temporal_join_pads_rows_with_no_version_in_force() {
    let (first, _, _) = run(true);
    assert_eq!(
        first,
        [
            "+I[1, 10, 1, 20]",
            "+I[1, 5, 1, 10]",
            "+I[2, 6, 2, 7]",
            "+I[2, 9, null, null]",
            "+I[3, 1, null, null]"
        ]
    );
}

#[test]
fn rows_still_waiting_at_the_end_are_joined() {
    let mut op = factory(false).create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Lines::default();
    op.on_batch(1, table(&[(RowKind::Insert, 1, 10, 0)]), &mut ctx, &mut out)
        .unwrap();
    op.on_batch(0, stream(&[(1, 100)]), &mut ctx, &mut out)
        .unwrap();
    op.on_end(&mut ctx, &mut out).unwrap();
    assert_eq!(out.0, ["+I[1, 100, 1, 10]"]);
}

#[test]
fn a_restored_temporal_join_continues_as_if_it_had_not_stopped() {
    use crate::ops::test_output::{restores_as_if_uninterrupted, Step};
    use RowKind::{Delete, Insert, UpdateAfter, UpdateBefore};
    let rows = |r: &[(i64, i64)]| Step::Batch(0, stream(r));
    let versions = |r: &[(RowKind, i64, i64, i64)]| Step::Batch(1, table(r));
    // Stream rows wait across both checkpoints; versions change and are dropped.
    let steps = || {
        vec![
            vec![
                versions(&[(Insert, 1, 10, 0), (Insert, 2, 20, 0), (Insert, 3, 30, 0)]),
                rows(&[(1, 5), (2, 6)]),
            ],
            vec![
                versions(&[(UpdateBefore, 1, 10, 0), (UpdateAfter, 1, 11, 8)]),
                rows(&[(1, 9), (3, 12)]),
                Step::Watermark(6),
            ],
            vec![
                versions(&[(Delete, 2, 20, 10), (Insert, 4, 40, 3)]),
                rows(&[(2, 11), (4, 13)]),
                Step::Watermark(10),
            ],
            vec![rows(&[(1, 14), (2, 15)]), Step::Watermark(13)],
            vec![
                versions(&[(UpdateBefore, 1, 11, 8), (UpdateAfter, 1, 12, 16)]),
                rows(&[(1, 17), (3, 18), (4, 19)]),
                Step::Watermark(20),
            ],
        ]
    };
    for left_outer in [false, true] {
        let f = factory(left_outer);
        restores_as_if_uninterrupted(|s, p| f.create(s, p).unwrap(), &steps());
    }
}
