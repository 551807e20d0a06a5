//! The OVER aggregate: rows in order cost one insert each; a row arriving early or retracted
//! resends the rows whose frames it changes; AVG of integers truncates.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, Int8Array, RecordBatch, StringArray};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::PhysicalExpr;

use super::*;
use crate::changelog::with_row_kinds;
use crate::ops::test_output::{lines_per_batch, lines_per_batch_apart};
use crate::types::RowKind;

fn input() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("o", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn col(name: &str, i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(name, i))
}

/// `function(v) OVER (PARTITION BY k ORDER BY o ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)`.
fn factory(function: OverFunction, result: DataType) -> OverAggregateFactory {
    let mut fields: Vec<Field> = input()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("agg", result, true));
    OverAggregateFactory {
        partition: vec![col("k", 0)],
        key_schema: Arc::new(Schema::new(vec![Field::new("$key0", DataType::Utf8, true)])),
        order: vec![(col("o", 1), SortOptions::default())],
        calls: vec![OverCall {
            function,
            arg: Some(col("v", 2)),
            frame: OverFrame::Rows(Some(1)),
        }],
        input: input(),
        output: Arc::new(Schema::new(fields)),
        state_ttl_ms: None,
    }
}

fn batch(rows: &[(RowKind, &str, i64, i64)]) -> RecordBatch {
    let data = RecordBatch::try_new(
        input(),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.3).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let kinds = Int8Array::from(rows.iter().map(|r| r.0 as i8).collect::<Vec<_>>());
    with_row_kinds(data, Arc::new(kinds)).unwrap()
}

use RowKind::{Delete as D, Insert as I};

#[test]
fn early_and_retracted_rows_resend_the_frames_they_change() {
    let f = factory(OverFunction::Sum, DataType::Int64);
    let mut op = f.create(0, 1).unwrap();
    let got = lines_per_batch(
        op.as_mut(),
        &[
            batch(&[
                (I, "a", 1, 10),
                (I, "a", 2, 20),
                (I, "b", 1, 7),
                (I, "a", 3, 30),
            ]),
            batch(&[(I, "a", 0, 5)]),
            batch(&[(D, "a", 2, 20)]),
        ],
    );
    assert_eq!(
        got,
        vec![
            vec![
                "+I[a, 1, 10, 10]",
                "+I[a, 2, 20, 30]",
                "+I[a, 3, 30, 50]",
                "+I[b, 1, 7, 7]"
            ],
            vec!["-D[a, 1, 10, 10]", "+I[a, 0, 5, 5]", "+I[a, 1, 10, 15]"],
            vec!["-D[a, 2, 20, 30]", "-D[a, 3, 30, 50]", "+I[a, 3, 30, 40]"],
        ]
    );
    assert_eq!(op.state_size().unwrap().entries, 4);
}

#[test]
fn avg_of_integers_truncates_as_flink_does() {
    let f = factory(OverFunction::Avg, DataType::Float64);
    let mut op = f.create(0, 1).unwrap();
    let got = lines_per_batch(op.as_mut(), &[batch(&[(I, "a", 1, 1), (I, "a", 2, 2)])]);
    assert_eq!(got, vec![vec!["+I[a, 1, 1, 1.0]", "+I[a, 2, 2, 1.0]"]]);
}

#[test]
fn a_partition_idle_past_the_state_ttl_frames_from_nothing() {
    let batches = [batch(&[(I, "a", 1, 10)]), batch(&[(I, "a", 2, 20)])];
    let run = |ttl| {
        let f = OverAggregateFactory {
            state_ttl_ms: Some(ttl),
            ..factory(OverFunction::Sum, DataType::Int64)
        };
        let mut op = f.create(0, 1).unwrap();
        lines_per_batch_apart(op.as_mut(), &batches, Duration::from_millis(40))
    };
    assert_eq!(run(3_600_000)[1], ["+I[a, 2, 20, 30]"]);
    // Row 1 is forgotten: row 2's frame holds only itself.
    assert_eq!(run(10)[1], ["+I[a, 2, 20, 20]"]);
}

#[test]
fn a_restored_over_aggregate_continues_as_if_it_had_not_stopped() {
    use crate::ops::test_output::{on_input_0, restores_as_if_uninterrupted};
    let batches = [
        batch(&[(I, "a", 1, 10), (I, "a", 3, 30), (I, "b", 1, 5)]),
        batch(&[(I, "a", 2, 20), (I, "c", 7, 70)]),
        batch(&[(D, "a", 1, 10), (I, "b", 2, 6), (I, "a", 4, 40)]),
        batch(&[(I, "a", 0, 1), (D, "b", 1, 5), (I, "c", 6, 60)]),
        batch(&[
            (I, "a", 5, 50),
            (I, "b", 0, 4),
            (D, "c", 7, 70),
            (I, "d", 1, 1),
        ]),
    ];
    for function in [OverFunction::Sum, OverFunction::Max] {
        let f = factory(function, DataType::Int64);
        restores_as_if_uninterrupted(|s, p| f.create(s, p).unwrap(), &on_input_0(&batches));
    }
}
