//! The group aggregation's changelog: inserts, update pairs, deletes, results that did not
//! change, and retracting inputs (MIN/MAX over a multiset, shared DISTINCT counters).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, Int8Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_expr::Operator as SqlOp;
use datafusion_physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion_physical_expr::PhysicalExpr;

use super::*;
use crate::changelog::with_row_kinds;
use crate::operator::OperatorFactory;
use crate::ops::test_output::{
    lines_per_batch, lines_per_batch_apart, on_input_0, restores_as_if_uninterrupted,
};

/// Rows of (k STRING, v BIGINT).
fn input() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn col(i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(["k", "v"][i], i))
}

fn call(
    kind: AggregateKind,
    arg: bool,
    filter: Option<Arc<dyn PhysicalExpr>>,
) -> GroupAggregateCall {
    GroupAggregateCall {
        kind,
        arg: arg.then(|| col(1)),
        filter,
        output: DataType::Int64,
    }
}

/// `GROUP BY k` with `calls`, their results named c0, c1, …
fn operator(calls: Vec<GroupAggregateCall>, retracting: bool) -> Box<dyn Operator> {
    operator_with_ttl(calls, retracting, None)
}

fn operator_with_ttl(
    calls: Vec<GroupAggregateCall>,
    retracting: bool,
    state_ttl_ms: Option<i64>,
) -> Box<dyn Operator> {
    operator_with(calls, retracting, state_ttl_ms, None)
}

fn operator_with(
    calls: Vec<GroupAggregateCall>,
    retracting: bool,
    state_ttl_ms: Option<i64>,
    mini_batch: Option<MiniBatch>,
) -> Box<dyn Operator> {
    let mut fields = vec![Field::new("k", DataType::Utf8, true)];
    fields.extend((0..calls.len()).map(|i| Field::new(format!("c{i}"), DataType::Int64, true)));
    GroupAggregateFactory {
        keys: vec![col(0)],
        key_schema: Arc::new(Schema::new(vec![Field::new("$key0", DataType::Utf8, true)])),
        calls,
        output: Arc::new(Schema::new(fields)),
        input: input(),
        retracting,
        state_ttl_ms,
        mini_batch,
    }
    .create(0, 1)
    .unwrap()
}

/// A batch of `(kind, k, v)` rows; kinds as the print connector shows them.
fn batch(rows: &[(&str, &str, Option<i64>)]) -> RecordBatch {
    let k: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)));
    let v: ArrayRef = Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2)));
    let data = RecordBatch::try_new(input(), vec![k, v]).unwrap();
    if rows.iter().all(|r| r.0 == "+I") {
        return data;
    }
    let kinds = rows.iter().map(|r| match r.0 {
        "+I" => 0,
        "-U" => 1,
        "+U" => 2,
        "-D" => 3,
        other => panic!("row kind {other}"),
    });
    with_row_kinds(data, Arc::new(Int8Array::from_iter_values(kinds))).unwrap()
}

#[test]
fn new_groups_insert_and_changed_groups_send_an_update_pair() {
    let mut op = operator(
        vec![
            call(AggregateKind::Count, false, None),
            call(AggregateKind::Sum, true, None),
        ],
        false,
    );
    let got = lines_per_batch(
        op.as_mut(),
        &[
            batch(&[
                ("+I", "a", Some(1)),
                ("+I", "b", Some(2)),
                ("+I", "a", Some(3)),
            ]),
            batch(&[("+I", "a", Some(10)), ("+I", "c", None)]),
        ],
    );
    assert_eq!(got[0], ["+I[a, 2, 4]", "+I[b, 1, 2]"]);
    // c's only value is NULL: counted by COUNT(*), summed to NULL.
    assert_eq!(got[1], ["-U[a, 2, 4]", "+U[a, 3, 14]", "+I[c, 1, null]"]);
}

#[test]
fn a_result_that_did_not_change_sends_nothing() {
    let mut op = operator(vec![call(AggregateKind::Max, true, None)], false);
    let got = lines_per_batch(
        op.as_mut(),
        &[
            batch(&[("+I", "a", Some(5))]),
            batch(&[("+I", "a", Some(3))]),
            batch(&[("+I", "a", Some(8))]),
        ],
    );
    assert_eq!(got[0], ["+I[a, 5]"]);
    assert!(got[1].is_empty(), "{:?}", got[1]);
    assert_eq!(got[2], ["-U[a, 5]", "+U[a, 8]"]);
}

#[test]
fn retractions_restore_the_previous_extreme_and_delete_an_emptied_group() {
    let mut op = operator(
        vec![
            call(AggregateKind::Max, true, None),
            call(AggregateKind::Min, true, None),
            call(AggregateKind::Count, false, None),
        ],
        true,
    );
    let got = lines_per_batch(
        op.as_mut(),
        &[
            batch(&[
                ("+I", "a", Some(5)),
                ("+I", "a", Some(7)),
                ("+I", "a", Some(7)),
            ]),
            batch(&[("-U", "a", Some(7))]),
            batch(&[("-U", "a", Some(7)), ("+U", "a", Some(2))]),
            batch(&[("-D", "a", Some(5)), ("-D", "a", Some(2))]),
            // A retraction of a group holding nothing is ignored, as Flink does.
            batch(&[("-D", "z", Some(1))]),
            batch(&[("+I", "a", Some(4))]),
        ],
    );
    assert_eq!(got[0], ["+I[a, 7, 5, 3]"]);
    // One 7 of two is retracted: MAX stays 7.
    assert_eq!(got[1], ["-U[a, 7, 5, 3]", "+U[a, 7, 5, 2]"]);
    assert_eq!(got[2], ["-U[a, 7, 5, 2]", "+U[a, 5, 2, 2]"]);
    assert_eq!(got[3], ["-D[a, 5, 2, 2]"]);
    assert!(got[4].is_empty(), "{:?}", got[4]);
    // The deleted group starts afresh.
    assert_eq!(got[5], ["+I[a, 4, 4, 1]"]);
}

#[test]
fn distinct_counts_share_values_across_filters_and_follow_retractions() {
    let big: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
        col(1),
        SqlOp::Gt,
        Arc::new(Literal::new(datafusion_common::ScalarValue::Int64(Some(1)))),
    ));
    let mut op = operator(
        vec![
            call(AggregateKind::CountDistinct, true, None),
            call(AggregateKind::CountDistinct, true, Some(big.clone())),
            call(AggregateKind::Count, false, Some(big)),
        ],
        true,
    );
    let got = lines_per_batch(
        op.as_mut(),
        &[
            batch(&[
                ("+I", "a", Some(1)),
                ("+I", "a", Some(1)),
                ("+I", "a", Some(2)),
            ]),
            batch(&[("-D", "a", Some(1))]),
            batch(&[("-D", "a", Some(1))]),
            batch(&[("+I", "a", Some(3)), ("+I", "a", None)]),
        ],
    );
    assert_eq!(got[0], ["+I[a, 2, 1, 1]"]);
    // One of two 1s is gone: still two distinct values, and no result changed.
    assert!(got[1].is_empty(), "{:?}", got[1]);
    assert_eq!(got[2], ["-U[a, 2, 1, 1]", "+U[a, 1, 1, 1]"]);
    // NULL is no distinct value.
    assert_eq!(got[3], ["-U[a, 1, 1, 1]", "+U[a, 2, 2, 2]"]);
}

#[test]
fn without_keys_every_row_is_one_group() {
    let mut op = GroupAggregateFactory {
        keys: vec![],
        key_schema: Arc::new(Schema::empty()),
        calls: vec![call(AggregateKind::Sum, true, None)],
        output: Arc::new(Schema::new(vec![Field::new("s", DataType::Int64, true)])),
        input: input(),
        retracting: false,
        mini_batch: None,
        state_ttl_ms: None,
    }
    .create(0, 1)
    .unwrap();
    let got = lines_per_batch(
        op.as_mut(),
        &[
            batch(&[("+I", "a", Some(1)), ("+I", "b", Some(2))]),
            batch(&[("+I", "c", Some(3))]),
        ],
    );
    assert_eq!(got, [vec!["+I[3]"], vec!["-U[3]", "+U[6]"]]);
}

#[test]
fn a_group_idle_past_the_state_ttl_starts_again() {
    let calls = || {
        vec![
            call(AggregateKind::Count, false, None),
            call(AggregateKind::Sum, true, None),
        ]
    };
    let batches = [
        batch(&[
            ("+I", "a", Some(1)),
            ("+I", "a", Some(2)),
            ("+I", "b", Some(5)),
        ]),
        batch(&[("+I", "a", Some(10))]),
    ];
    // Within an hour's TTL, a's result updates.
    let mut op = operator_with_ttl(calls(), false, Some(3_600_000));
    let got = lines_per_batch_apart(op.as_mut(), &batches, Duration::from_millis(40));
    assert_eq!(got[0], ["+I[a, 2, 3]", "+I[b, 1, 5]"]);
    assert_eq!(got[1], ["-U[a, 2, 3]", "+U[a, 3, 13]"]);
    // Past a 10 ms TTL, a's state is gone: its next row inserts a new result (nothing
    // retracted, as in Flink).
    let mut op = operator_with_ttl(calls(), false, Some(10));
    let got = lines_per_batch_apart(op.as_mut(), &batches, Duration::from_millis(40));
    assert_eq!(got[1], ["+I[a, 1, 10]"]);
}

/// Feeds `batches` to `op`, then ends it; the lines each batch produced, then the end's.
fn lines_then_end(op: &mut dyn Operator, batches: &[RecordBatch]) -> Vec<Vec<String>> {
    use crate::ops::test_output::Lines;
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::default());
    let mut got = Vec::new();
    for b in batches {
        let mut out = Lines::default();
        op.on_batch(0, b.clone(), &mut ctx, &mut out).unwrap();
        got.push(out.0);
    }
    let mut out = Lines::default();
    op.on_end(&mut ctx, &mut out).unwrap();
    got.push(out.0);
    got
}

#[test]
fn a_mini_batch_sends_each_group_s_change_once_when_it_is_full() {
    let calls = vec![
        call(AggregateKind::Count, false, None),
        call(AggregateKind::Sum, true, None),
    ];
    let mini_batch = MiniBatch {
        size: 5,
        latency: Duration::from_secs(3600),
    };
    let mut op = operator_with(calls, true, None, Some(mini_batch));
    let got = lines_then_end(
        op.as_mut(),
        &[
            batch(&[("+I", "a", Some(1)), ("+I", "b", Some(2))]),
            batch(&[("+I", "a", Some(3))]),
            // Five rows: the mini-batch is full.
            batch(&[("+I", "a", Some(4)), ("+I", "c", Some(5))]),
            // A new group, an emitted one, and one emptied by the last batch.
            batch(&[("+I", "d", Some(1))]),
            batch(&[("+I", "b", Some(10))]),
            batch(&[
                ("-D", "b", Some(2)),
                ("-D", "b", Some(10)),
                ("+I", "a", Some(1)),
            ]),
            // Emptied and refilled with the same row: unchanged, nothing to send.
            batch(&[
                ("-D", "d", Some(1)),
                ("+I", "d", Some(1)),
                ("+I", "e", Some(7)),
            ]),
        ],
    );
    let empty: Vec<&str> = vec![];
    assert_eq!(got[0], empty);
    assert_eq!(got[1], empty);
    assert_eq!(got[2], ["+I[a, 3, 8]", "+I[b, 1, 2]", "+I[c, 1, 5]"]);
    assert_eq!(got[3], empty);
    assert_eq!(got[4], empty);
    assert_eq!(
        got[5],
        ["+I[d, 1, 1]", "-D[b, 1, 2]", "-U[a, 3, 8]", "+U[a, 4, 9]"]
    );
    assert_eq!(got[6], empty);
    // The end sends what the last, unfilled mini-batch changed.
    assert_eq!(got[7], ["+I[e, 1, 7]"]);
}

#[test]
fn a_mini_batch_is_sent_when_its_latency_has_passed() {
    use crate::ops::test_output::Lines;
    let mini_batch = MiniBatch {
        size: 1000,
        latency: Duration::from_millis(5),
    };
    let mut op = operator_with(
        vec![call(AggregateKind::Sum, true, None)],
        false,
        None,
        Some(mini_batch),
    );
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::default());
    let mut out = Lines::default();
    for b in [
        batch(&[("+I", "a", Some(1))]),
        batch(&[("+I", "a", Some(2))]),
    ] {
        op.on_batch(0, b, &mut ctx, &mut out).unwrap();
    }
    assert!(out.0.is_empty());
    // One timer for the mini-batch; the runtime fires it once the clock passes it.
    let due = ctx.take_due_processing_timers(Instant::now() + Duration::from_secs(1));
    assert_eq!(due.len(), 1);
    op.on_processing_timer(due[0] - Duration::from_millis(1), &mut ctx, &mut out)
        .unwrap();
    assert!(out.0.is_empty(), "an early timer sends nothing");
    op.on_processing_timer(due[0], &mut ctx, &mut out).unwrap();
    assert_eq!(out.0, ["+I[a, 3]"]);
}

/// MAX and MIN over multisets, a shared COUNT DISTINCT, SUM and COUNT(*) of a retracting
/// input, so every accumulator's state goes through the table.
fn checkpoint_operator(subtask: usize, parallelism: usize) -> Box<dyn Operator> {
    let calls = vec![
        call(AggregateKind::Max, true, None),
        call(AggregateKind::Min, true, None),
        call(AggregateKind::CountDistinct, true, None),
        call(AggregateKind::Sum, true, None),
        call(AggregateKind::Count, false, None),
    ];
    let mut fields = vec![Field::new("k", DataType::Utf8, true)];
    fields.extend((0..calls.len()).map(|i| Field::new(format!("c{i}"), DataType::Int64, true)));
    GroupAggregateFactory {
        keys: vec![col(0)],
        key_schema: Arc::new(Schema::new(vec![Field::new("$key0", DataType::Utf8, true)])),
        calls,
        output: Arc::new(Schema::new(fields)),
        input: input(),
        retracting: true,
        state_ttl_ms: None,
        mini_batch: None,
    }
    .create(subtask, parallelism)
    .unwrap()
}

fn checkpoint_batches() -> Vec<RecordBatch> {
    vec![
        batch(&[
            ("+I", "a", Some(5)),
            ("+I", "a", Some(7)),
            ("+I", "b", Some(1)),
            ("+I", "c", Some(2)),
        ]),
        batch(&[
            ("+I", "a", Some(7)),
            ("-D", "c", Some(2)),
            ("+I", "d", None),
        ]),
        batch(&[
            ("-U", "a", Some(7)),
            ("+U", "a", Some(3)),
            ("+I", "b", Some(1)),
        ]),
        batch(&[
            ("-D", "a", Some(7)),
            ("+I", "c", Some(9)),
            ("-D", "b", Some(1)),
        ]),
        batch(&[
            ("-D", "b", Some(1)),
            ("+I", "a", Some(1)),
            ("+I", "d", Some(4)),
        ]),
    ]
}

#[test]
fn a_restored_group_aggregation_continues_as_if_it_had_not_stopped() {
    restores_as_if_uninterrupted(checkpoint_operator, &on_input_0(&checkpoint_batches()));
}
