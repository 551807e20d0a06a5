//! The changelog join: null padding and its retraction on either side, duplicates, null keys,
//! the extra condition, and updating inputs.

use std::sync::Arc;

use arrow::array::{Int64Array, Int8Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_expr::Operator as SqlOp;
use datafusion_physical_expr::expressions::{BinaryExpr, Column};
use datafusion_physical_expr::PhysicalExpr;

use super::*;
use crate::changelog::with_row_kinds;
use crate::metrics::JobMetrics;
use crate::ops::test_output::Lines;
use crate::types::RowKind;

/// (key, value) rows on both sides.
fn side_schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}k"), DataType::Int64, true),
        Field::new(format!("{prefix}v"), DataType::Int64, true),
    ]))
}

fn col(name: &str, i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(name, i))
}

/// Left ⋈ right on `lk = rk`, optionally with `lv < rv`.
fn factory(join_type: RegularJoinType, condition: bool) -> ChangelogJoinFactory {
    let (l, r) = (side_schema("l"), side_schema("r"));
    let output = paired_schema(&l, &r);
    let filter = condition.then(|| {
        Arc::new(BinaryExpr::new(col("lv", 1), SqlOp::Lt, col("rv", 3))) as Arc<dyn PhysicalExpr>
    });
    ChangelogJoinFactory {
        join_type,
        left: ChangelogJoinSide {
            keys: vec![col("lk", 0)],
            schema: l,
        },
        right: ChangelogJoinSide {
            keys: vec![col("rk", 0)],
            schema: r,
        },
        key_schema: Arc::new(Schema::new(vec![Field::new(
            "$key0",
            DataType::Int64,
            true,
        )])),
        filter,
        output,
        state_ttl_ms: None,
        append_only: false,
    }
}

/// One changelog row: kind, key, value.
type Row = (RowKind, Option<i64>, i64);

fn batch(side: &str, rows: &[Row], updating: bool) -> RecordBatch {
    let data = RecordBatch::try_new(
        side_schema(side),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    if !updating {
        return data;
    }
    let kinds = Int8Array::from(rows.iter().map(|r| r.0 as i8).collect::<Vec<_>>());
    with_row_kinds(data, Arc::new(kinds)).unwrap()
}

use RowKind::{Delete as D, Insert as I, UpdateBefore as UB};

/// Feeds `(input, rows)` steps to a join of updating inputs; the lines each step produced.
fn run(f: &ChangelogJoinFactory, steps: &[(usize, &[Row])]) -> Vec<Vec<String>> {
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    steps
        .iter()
        .map(|(input, rows)| {
            let mut out = Lines::default();
            let b = batch(if *input == 0 { "l" } else { "r" }, rows, true);
            op.on_batch(*input, b, &mut ctx, &mut out).unwrap();
            out.0
        })
        .collect()
}

#[test]
fn left_join_pads_and_retracts_the_padding() {
    let got = run(
        &factory(RegularJoinType::Left, false),
        &[
            (0, &[(I, Some(1), 10)]),
            (1, &[(I, Some(1), 20)]),
            (1, &[(I, Some(1), 30)]),
            (1, &[(D, Some(1), 20)]),
            (1, &[(D, Some(1), 30)]),
            (0, &[(D, Some(1), 10)]),
        ],
    );
    assert_eq!(
        got,
        vec![
            vec!["+I[1, 10, null, null]"],
            vec!["-D[1, 10, null, null]", "+I[1, 10, 1, 20]"],
            vec!["+I[1, 10, 1, 30]"],
            vec!["-D[1, 10, 1, 20]"],
            vec!["-D[1, 10, 1, 30]", "+I[1, 10, null, null]"],
            vec!["-D[1, 10, null, null]"],
        ]
    );
}

#[test]
fn full_join_pads_both_sides_and_null_keys_never_match() {
    let got = run(
        &factory(RegularJoinType::Full, false),
        &[
            (0, &[(I, None, 1)]),
            (1, &[(I, Some(2), 5), (I, None, 6)]),
            (0, &[(I, Some(2), 7)]),
            (1, &[(D, Some(2), 5)]),
        ],
    );
    assert_eq!(
        got,
        vec![
            vec!["+I[null, 1, null, null]"],
            vec!["+I[null, null, 2, 5]", "+I[null, null, null, 6]"],
            vec!["-D[null, null, 2, 5]", "+I[2, 7, 2, 5]"],
            vec!["-D[2, 7, 2, 5]", "+I[2, 7, null, null]"],
        ]
    );
}

#[test]
fn duplicates_join_once_per_copy_and_retract_one_copy() {
    let f = factory(RegularJoinType::Inner, false);
    let got = run(
        &f,
        &[
            (0, &[(I, Some(1), 10), (I, Some(1), 10)]),
            (1, &[(I, Some(1), 20)]),
            (0, &[(UB, Some(1), 10)]),
            (1, &[(I, Some(1), 21)]),
        ],
    );
    assert_eq!(
        got,
        vec![
            vec![],
            vec!["+I[1, 10, 1, 20]", "+I[1, 10, 1, 20]"],
            vec!["-D[1, 10, 1, 20]"],
            vec!["+I[1, 10, 1, 21]"],
        ]
    );
}

#[test]
fn the_condition_decides_what_matches_and_what_is_padded() {
    let got = run(
        &factory(RegularJoinType::Right, true),
        &[
            (1, &[(I, Some(1), 5), (I, Some(1), 50)]),
            (0, &[(I, Some(1), 10)]),
            (0, &[(D, Some(1), 10)]),
        ],
    );
    // lv < rv: 10 meets 50, not 5.
    assert_eq!(
        got,
        vec![
            vec!["+I[null, null, 1, 5]", "+I[null, null, 1, 50]"],
            vec!["-D[null, null, 1, 50]", "+I[1, 10, 1, 50]"],
            vec!["-D[1, 10, 1, 50]", "+I[null, null, 1, 50]"],
        ]
    );
}

#[test]
fn retracted_rows_leave_no_state() {
    let f = factory(RegularJoinType::Full, false);
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Lines::default();
    for (input, rows) in [
        (0, &[(I, Some(1), 1), (I, Some(2), 2)][..]),
        (1, &[(I, Some(1), 3)][..]),
        (0, &[(D, Some(1), 1), (D, Some(2), 2)][..]),
        (1, &[(D, Some(1), 3)][..]),
    ] {
        let b = batch(if input == 0 { "l" } else { "r" }, rows, true);
        op.on_batch(input, b, &mut ctx, &mut out).unwrap();
    }
    assert_eq!(op.state_size().unwrap().entries, 0);
    assert_eq!(out.0.last().unwrap(), "-D[null, null, 1, 3]");
}

#[test]
fn insert_only_inputs_need_no_op_column() {
    let f = factory(RegularJoinType::Left, false);
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Lines::default();
    let rows: &[Row] = &[(I, Some(3), 1)];
    op.on_batch(0, batch("l", rows, false), &mut ctx, &mut out)
        .unwrap();
    op.on_batch(1, batch("r", rows, false), &mut ctx, &mut out)
        .unwrap();
    assert_eq!(
        out.0,
        vec![
            "+I[3, 1, null, null]",
            "-D[3, 1, null, null]",
            "+I[3, 1, 3, 1]"
        ]
    );
}

#[test]
fn state_ttl_drops_rows_not_written_for_that_long() {
    let mut f = factory(RegularJoinType::Full, false);
    f.state_ttl_ms = Some(1);
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Lines::default();
    let rows: &[Row] = &[(I, Some(1), 1)];
    op.on_batch(0, batch("l", rows, true), &mut ctx, &mut out)
        .unwrap();
    // Sleeping guarantees at least this much time has passed: the left row is past its TTL.
    std::thread::sleep(std::time::Duration::from_millis(20));
    op.on_batch(1, batch("r", rows, true), &mut ctx, &mut out)
        .unwrap();
    assert_eq!(out.0, vec!["+I[1, 1, null, null]", "+I[null, null, 1, 1]"]);
    assert_eq!(op.state_size().unwrap().entries, 1);
}

#[test]
fn a_restored_changelog_join_continues_as_if_it_had_not_stopped() {
    use crate::ops::test_output::{restores_as_if_uninterrupted, Step};
    let left = |rows: &[Row]| Step::Batch(0, batch("l", rows, true));
    let right = |rows: &[Row]| Step::Batch(1, batch("r", rows, true));
    let steps = || {
        vec![
            vec![
                left(&[(I, Some(1), 10), (I, Some(2), 20)]),
                right(&[(I, Some(1), 11)]),
            ],
            vec![left(&[(I, Some(3), 30)]), right(&[(I, Some(2), 21)])],
            // Retractions on both sides: (1, 10) loses its match, (2, 21) is replaced.
            vec![
                right(&[(UB, Some(1), 11), (D, Some(2), 21)]),
                right(&[(I, Some(2), 22)]),
            ],
            vec![
                right(&[(I, Some(1), 12), (I, Some(3), 31)]),
                left(&[(D, Some(2), 20)]),
            ],
            vec![
                left(&[(I, Some(2), 23), (I, Some(4), 40)]),
                right(&[(I, Some(4), 41)]),
            ],
        ]
    };
    for join_type in [RegularJoinType::Inner, RegularJoinType::Full] {
        let f = factory(join_type, false);
        restores_as_if_uninterrupted(|s, p| f.create(s, p).unwrap(), &steps());
    }
}
