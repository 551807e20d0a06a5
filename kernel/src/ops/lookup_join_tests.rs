//! The lookup join: matches and their multiplicity, null keys, LEFT padding, the extra
//! condition, row kinds passing through, and reloading.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::{Int64Array, Int8Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_expr::Operator as SqlOp;
use datafusion_physical_expr::expressions::{BinaryExpr, Column};
use datafusion_physical_expr::PhysicalExpr;

use super::*;
use crate::changelog::with_row_kinds;
use crate::metrics::JobMetrics;
use crate::operator::Source;
use crate::ops::test_output::Lines;
use crate::types::RowKind;

/// A table of (key, name) rows, counting how often it is loaded.
#[derive(Debug)]
struct Table {
    rows: Vec<(Option<i64>, &'static str)>,
    loads: AtomicUsize,
}

struct TableSource(Option<RecordBatch>);

impl Source for TableSource {
    fn name(&self) -> &str {
        "table"
    }

    fn poll_next(&mut self, _ctx: &mut OperatorContext) -> Result<SourcePoll> {
        Ok(self.0.take().map_or(SourcePoll::End, SourcePoll::Batch))
    }
}

fn table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]))
}

impl SourceFactory for Table {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Source>> {
        self.loads.fetch_add(1, Ordering::Relaxed);
        let batch = RecordBatch::try_new(
            table_schema(),
            vec![
                Arc::new(Int64Array::from(
                    self.rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    self.rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )?;
        Ok(Box::new(TableSource(Some(batch))))
    }

    fn describe(&self) -> String {
        "table".into()
    }
}

fn stream_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]))
}

fn col(name: &str, i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(name, i))
}

/// Stream `id` looked up in the table's `key`, the condition `v > key` optional.
fn factory(table: Arc<Table>, left_outer: bool, condition: bool) -> LookupJoinFactory {
    let output = paired_schema(&stream_schema(), &table_schema());
    LookupJoinFactory {
        table_name: "t".into(),
        table,
        table_schema: table_schema(),
        table_filter: None,
        stream_keys: vec![col("id", 0)],
        table_keys: vec![col("key", 0)],
        key_schema: Arc::new(Schema::new(vec![Field::new(
            "$key0",
            DataType::Int64,
            true,
        )])),
        stream_schema: stream_schema(),
        filter: condition.then(|| {
            Arc::new(BinaryExpr::new(col("v", 1), SqlOp::Gt, col("key", 2)))
                as Arc<dyn PhysicalExpr>
        }),
        left_outer,
        output,
        reload_after_ms: None,
    }
}

fn table() -> Arc<Table> {
    Arc::new(Table {
        rows: vec![
            (Some(1), "one"),
            (Some(2), "two"),
            (Some(2), "deux"),
            (None, "none"),
        ],
        loads: AtomicUsize::new(0),
    })
}

fn stream(rows: &[(Option<i64>, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        stream_schema(),
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn run(f: &LookupJoinFactory, batches: &[RecordBatch]) -> Vec<String> {
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Lines::default();
    for b in batches {
        op.on_batch(0, b.clone(), &mut ctx, &mut out).unwrap();
    }
    out.0
}

#[test]
fn inner_lookup_emits_every_match_and_drops_the_rest() {
    let t = table();
    let got = run(
        &factory(t.clone(), false, false),
        &[
            stream(&[(Some(2), 0), (Some(3), 0), (None, 0)]),
            stream(&[(Some(1), 5)]),
        ],
    );
    assert_eq!(
        got,
        vec!["+I[2, 0, 2, two]", "+I[2, 0, 2, deux]", "+I[1, 5, 1, one]"]
    );
    assert_eq!(t.loads.load(Ordering::Relaxed), 1, "loaded once");
}

#[test]
fn left_lookup_pads_rows_without_a_match_after_the_condition() {
    let got = run(
        &factory(table(), true, true),
        &[stream(&[
            (Some(2), 0),
            (Some(1), 5),
            (None, 9),
            (Some(7), 1),
        ])],
    );
    // v > key: (2, 0) matches no row of key 2, so it is padded like the missing keys.
    assert_eq!(
        got,
        vec![
            "+I[2, 0, null, null]",
            "+I[1, 5, 1, one]",
            "+I[null, 9, null, null]",
            "+I[7, 1, null, null]"
        ]
    );
}

#[test]
fn row_kinds_pass_through() {
    let b = stream(&[(Some(1), 0), (Some(2), 0)]);
    let kinds = Int8Array::from(vec![RowKind::Delete as i8, RowKind::UpdateAfter as i8]);
    let got = run(
        &factory(table(), false, false),
        &[with_row_kinds(b, Arc::new(kinds)).unwrap()],
    );
    assert_eq!(
        got,
        vec!["-D[1, 0, 1, one]", "+U[2, 0, 2, two]", "+U[2, 0, 2, deux]"]
    );
}

#[test]
fn the_table_is_loaded_again_after_its_cache_ttl() {
    let t = table();
    let mut f = factory(t.clone(), false, false);
    f.reload_after_ms = Some(1);
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Lines::default();
    op.on_batch(0, stream(&[(Some(1), 0)]), &mut ctx, &mut out)
        .unwrap();
    // Sleeping guarantees at least this much time has passed: the cache is stale.
    std::thread::sleep(std::time::Duration::from_millis(20));
    op.on_batch(0, stream(&[(Some(1), 0)]), &mut ctx, &mut out)
        .unwrap();
    assert_eq!(t.loads.load(Ordering::Relaxed), 2);
    assert_eq!(out.0.len(), 2);
}
