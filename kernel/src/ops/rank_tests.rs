//! Rank: Top-N with and without row numbers, deduplication keeping the last row, and ties.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, Int8Array, RecordBatch};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::PhysicalExpr;

use super::*;
use crate::ops::test_output::{
    lines_per_batch, lines_per_batch_apart, on_input_0, restores_as_if_uninterrupted,
};

/// Rows of (k, v, id).
fn input() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
        Field::new("id", DataType::Int64, true),
    ]))
}

fn col(i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(["k", "v", "id"][i], i))
}

/// Top `limit` per k by v descending.
fn operator(limit: usize, rank_column: bool, newer_wins_ties: bool) -> Box<dyn Operator> {
    factory(limit, rank_column, newer_wins_ties)
        .create(0, 1)
        .unwrap()
}

fn factory(limit: usize, rank_column: bool, newer_wins_ties: bool) -> RankFactory {
    let mut fields: Vec<Field> = input()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    if rank_column {
        fields.push(Field::new("rn", DataType::Int64, false));
    }
    RankFactory {
        partition: vec![col(0)],
        key_schema: Arc::new(Schema::new(vec![Field::new(
            "$key0",
            DataType::Int64,
            true,
        )])),
        order: vec![(
            col(1),
            SortOptions {
                descending: true,
                nulls_first: false,
            },
        )],
        limit,
        rank_column,
        newer_wins_ties,
        input: input(),
        output: Arc::new(Schema::new(fields)),
        state_ttl_ms: None,
        updating_input: false,
    }
}

fn batch(rows: &[(i64, i64, i64)]) -> RecordBatch {
    let column = |f: fn(&(i64, i64, i64)) -> i64| {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(f))) as _
    };
    RecordBatch::try_new(
        input(),
        vec![column(|r| r.0), column(|r| r.1), column(|r| r.2)],
    )
    .unwrap()
}

#[test]
fn a_top_n_with_row_numbers_updates_every_position_that_changed() {
    let mut op = operator(2, true, false);
    let got = lines_per_batch(
        op.as_mut(),
        &[
            batch(&[(1, 10, 1), (1, 30, 2), (2, 5, 3)]),
            // 20 goes between 30 and 10, pushing 10 out; 1 ranks below both.
            batch(&[(1, 20, 4), (1, 1, 5)]),
            // Several changes in one batch send only the final difference.
            batch(&[(1, 40, 6), (1, 50, 7)]),
        ],
    );
    assert_eq!(
        got[0],
        ["+I[1, 30, 2, 1]", "+I[1, 10, 1, 2]", "+I[2, 5, 3, 1]"]
    );
    assert_eq!(got[1], ["-U[1, 10, 1, 2]", "+U[1, 20, 4, 2]"]);
    assert_eq!(
        got[2],
        [
            "-U[1, 30, 2, 1]",
            "+U[1, 50, 7, 1]",
            "-U[1, 20, 4, 2]",
            "+U[1, 40, 6, 2]"
        ]
    );
}

#[test]
fn without_row_numbers_rows_that_leave_are_retracted_and_ties_keep_the_first() {
    let mut op = operator(2, false, false);
    let got = lines_per_batch(
        op.as_mut(),
        &[
            batch(&[(1, 10, 1), (1, 10, 2)]),
            // A tie with the last row does not displace it.
            batch(&[(1, 10, 3)]),
            batch(&[(1, 15, 4)]),
        ],
    );
    assert_eq!(got[0], ["+I[1, 10, 1]", "+I[1, 10, 2]"]);
    assert!(got[1].is_empty(), "{:?}", got[1]);
    assert_eq!(got[2], ["-U[1, 10, 2]", "+U[1, 15, 4]"]);
}

#[test]
fn keep_last_deduplication_lets_the_newer_row_win_a_tie() {
    let mut op = operator(1, false, true);
    let got = lines_per_batch(
        op.as_mut(),
        &[
            batch(&[(1, 7, 1)]),
            batch(&[(1, 7, 2), (2, 3, 3)]),
            batch(&[(1, 6, 4)]),
        ],
    );
    assert_eq!(got[0], ["+I[1, 7, 1]"]);
    assert_eq!(got[1], ["-U[1, 7, 1]", "+U[1, 7, 2]", "+I[2, 3, 3]"]);
    assert!(got[2].is_empty(), "{:?}", got[2]);
    let state = op.state_size().unwrap();
    assert_eq!(state.entries, 2, "one row per key is kept");
}

/// Ordered by a processing-time attribute, which the planner leaves out: arrival order.
#[test]
fn without_order_keys_rows_rank_in_arrival_order() {
    let factory = |newer_wins_ties| RankFactory {
        partition: vec![col(0)],
        key_schema: Arc::new(Schema::new(vec![Field::new(
            "$key0",
            DataType::Int64,
            true,
        )])),
        order: vec![],
        limit: 1,
        rank_column: false,
        newer_wins_ties,
        input: input(),
        output: input(),
        state_ttl_ms: None,
        updating_input: false,
    };
    let batches = [batch(&[(1, 10, 1), (1, 30, 2)]), batch(&[(1, 20, 3)])];
    let mut first = factory(false).create(0, 1).unwrap();
    assert_eq!(
        lines_per_batch(first.as_mut(), &batches),
        vec![vec!["+I[1, 10, 1]"], vec![]]
    );
    let mut last = factory(true).create(0, 1).unwrap();
    assert_eq!(
        lines_per_batch(last.as_mut(), &batches),
        vec![vec!["+I[1, 30, 2]"], vec!["-U[1, 30, 2]", "+U[1, 20, 3]"]]
    );
}

#[test]
fn a_partition_idle_past_the_state_ttl_starts_a_new_top() {
    let batches = [batch(&[(1, 50, 1), (2, 9, 2)]), batch(&[(1, 10, 3)])];
    let with_ttl = |ttl| {
        RankFactory {
            state_ttl_ms: Some(ttl),
            ..factory(1, false, false)
        }
        .create(0, 1)
        .unwrap()
    };
    // Within the TTL, 10 cannot beat 50.
    let mut op = with_ttl(3_600_000);
    let got = lines_per_batch_apart(op.as_mut(), &batches, Duration::from_millis(40));
    assert_eq!(got[1], Vec::<String>::new());
    // Past it, partition 1's top is forgotten and 10 is its new first row.
    let mut op = with_ttl(10);
    let got = lines_per_batch_apart(op.as_mut(), &batches, Duration::from_millis(40));
    assert_eq!(got[0], ["+I[1, 50, 1]", "+I[2, 9, 2]"]);
    assert_eq!(got[1], ["+I[1, 10, 3]"]);
}

/// A batch of a retract changelog: (row, kind).
fn changes(rows: &[((i64, i64, i64), RowKind)]) -> RecordBatch {
    let data: Vec<_> = rows.iter().map(|r| r.0).collect();
    let kinds = Int8Array::from_iter_values(rows.iter().map(|r| r.1 as i8));
    with_row_kinds(batch(&data), Arc::new(kinds)).unwrap()
}

fn updating(limit: usize, rank_column: bool) -> Box<dyn Operator> {
    RankFactory {
        updating_input: true,
        ..factory(limit, rank_column, false)
    }
    .create(0, 1)
    .unwrap()
}

#[test]
fn over_updating_input_a_retracted_top_row_lifts_the_next_one_in() {
    use RowKind::*;
    let mut op = updating(2, true);
    let got = lines_per_batch(
        op.as_mut(),
        &[
            changes(&[
                ((1, 10, 1), Insert),
                ((1, 30, 2), Insert),
                ((1, 20, 4), Insert),
            ]),
            // Row 2 drops from 30 to 5: 20 and 10, kept below the top, move up.
            changes(&[((1, 30, 2), UpdateBefore), ((1, 5, 2), UpdateAfter)]),
            // 20 leaves for good; 5 enters second.
            changes(&[((1, 20, 4), Delete)]),
        ],
    );
    assert_eq!(got[0], ["+I[1, 30, 2, 1]", "+I[1, 20, 4, 2]"]);
    assert_eq!(
        got[1],
        [
            "-U[1, 30, 2, 1]",
            "+U[1, 20, 4, 1]",
            "-U[1, 20, 4, 2]",
            "+U[1, 10, 1, 2]"
        ]
    );
    assert_eq!(
        got[2],
        [
            "-U[1, 20, 4, 1]",
            "+U[1, 10, 1, 1]",
            "-U[1, 10, 1, 2]",
            "+U[1, 5, 2, 2]"
        ]
    );
    assert_eq!(op.state_size().unwrap().entries, 2, "rows 1 and 2 are held");
}

#[test]
fn over_updating_input_a_retraction_removes_one_equal_row_and_an_unknown_one_nothing() {
    use RowKind::*;
    let mut op = updating(1, false);
    let got = lines_per_batch(
        op.as_mut(),
        &[
            // The same row twice, and a retraction of a row never seen (its state expired).
            changes(&[
                ((1, 7, 1), Insert),
                ((1, 7, 1), Insert),
                ((1, 9, 9), Delete),
            ]),
            // One copy leaves: the other still ranks first, so nothing changes.
            changes(&[((1, 7, 1), UpdateBefore)]),
            // Retracted and sent again unchanged within a batch: nothing to send.
            changes(&[((1, 7, 1), UpdateBefore), ((1, 7, 1), UpdateAfter)]),
            changes(&[((1, 7, 1), Delete), ((2, 3, 3), Insert)]),
        ],
    );
    assert_eq!(got[0], ["+I[1, 7, 1]"]);
    assert!(got[1].is_empty(), "{:?}", got[1]);
    assert!(got[2].is_empty(), "{:?}", got[2]);
    assert_eq!(got[3], ["-D[1, 7, 1]", "+I[2, 3, 3]"]);
    assert_eq!(op.state_size().unwrap().entries, 1);
}

#[test]
fn over_updating_input_ties_rank_in_arrival_order() {
    use RowKind::*;
    let mut op = updating(2, true);
    let got = lines_per_batch(
        op.as_mut(),
        &[
            changes(&[
                ((1, 5, 1), Insert),
                ((1, 5, 2), Insert),
                ((1, 5, 3), Insert),
            ]),
            // The first of the ties leaves; the third, held below the top, moves up.
            changes(&[((1, 5, 1), Delete)]),
        ],
    );
    assert_eq!(got[0], ["+I[1, 5, 1, 1]", "+I[1, 5, 2, 2]"]);
    assert_eq!(
        got[1],
        [
            "-U[1, 5, 1, 1]",
            "+U[1, 5, 2, 1]",
            "-U[1, 5, 2, 2]",
            "+U[1, 5, 3, 2]"
        ]
    );
}

#[test]
fn over_updating_input_a_retraction_removes_the_earliest_of_equal_rows() {
    use RowKind::*;
    let mut op = updating(3, true);
    let got = lines_per_batch(
        op.as_mut(),
        &[
            changes(&[
                ((1, 5, 7), Insert),
                ((1, 5, 8), Insert),
                ((1, 5, 7), Insert),
            ]),
            changes(&[((1, 5, 7), Delete)]),
        ],
    );
    assert_eq!(
        got[0],
        ["+I[1, 5, 7, 1]", "+I[1, 5, 8, 2]", "+I[1, 5, 7, 3]"]
    );
    // The first 7 left: 8 is now first, the later 7 second.
    assert_eq!(
        got[1],
        [
            "-U[1, 5, 7, 1]",
            "+U[1, 5, 8, 1]",
            "-U[1, 5, 8, 2]",
            "+U[1, 5, 7, 2]",
            "-D[1, 5, 7, 3]"
        ]
    );
}

#[test]
fn a_restored_top_n_continues_as_if_it_had_not_stopped() {
    let batches = [
        batch(&[(1, 50, 1), (2, 9, 2), (1, 30, 3), (3, 1, 4)]),
        batch(&[(1, 40, 5), (2, 9, 6)]),
        batch(&[(1, 45, 7), (2, 10, 8), (3, 0, 9)]),
        batch(&[(1, 60, 10), (3, 2, 11)]),
        batch(&[(1, 41, 12), (2, 11, 13), (3, 3, 14), (4, 1, 15)]),
    ];
    restores_as_if_uninterrupted(
        |s, p| factory(2, true, false).create(s, p).unwrap(),
        &on_input_0(&batches),
    );
    // Deduplication keeping the last row per key (ties go to the newest).
    restores_as_if_uninterrupted(
        |s, p| {
            RankFactory {
                order: Vec::new(),
                ..factory(1, false, true)
            }
            .create(s, p)
            .unwrap()
        },
        &on_input_0(&batches),
    );
}

#[test]
fn a_restored_top_n_of_an_updating_input_continues_as_if_it_had_not_stopped() {
    use RowKind::*;
    let batches = [
        changes(&[
            ((1, 50, 1), Insert),
            ((1, 30, 2), Insert),
            ((2, 5, 3), Insert),
        ]),
        changes(&[((1, 20, 4), Insert), ((2, 7, 5), Insert)]),
        changes(&[
            ((1, 50, 1), UpdateBefore),
            ((1, 55, 1), UpdateAfter),
            ((2, 5, 3), Delete),
        ]),
        changes(&[((1, 55, 1), Delete), ((3, 1, 6), Insert)]),
        changes(&[
            ((1, 30, 2), Delete),
            ((2, 7, 5), Delete),
            ((3, 2, 7), Insert),
        ]),
    ];
    restores_as_if_uninterrupted(
        |s, p| {
            RankFactory {
                updating_input: true,
                ..factory(2, true, false)
            }
            .create(s, p)
            .unwrap()
        },
        &on_input_0(&batches),
    );
}
