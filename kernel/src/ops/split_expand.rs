//! The first step of a split distinct aggregation (Flink's
//! `table.optimizer.distinct-agg.split.enabled`): every row once per distinct argument, tagged
//! with the argument's index (`$e`) and a bucket of its value's hash (`$bucket`).
//!
//! A partial aggregate grouped by the keys, `$e` and `$bucket` then counts each argument's
//! distinct values within one bucket, so a hot group's distinct values spread over subtasks;
//! a final aggregate over the keys sums the buckets. A value always hashes to the same
//! bucket, so the buckets' distinct counts add up to the group's.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::hash_utils::create_hashes_with_hasher;
use datafusion_physical_expr::PhysicalExpr;
use foldhash::fast::FixedState;

use crate::changelog::{split_row_kinds, with_row_kinds};
use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::ops::evaluate;
use crate::Result;

/// The column holding a copy's distinct-argument index.
pub const EXPAND_ID: &str = "$e";
/// The column holding the bucket of the copy's argument.
pub const BUCKET: &str = "$bucket";

/// The same on every subtask and run, so a value's bucket never changes.
const HASHER: FixedState = FixedState::with_seed(0x5b11_7d15);

#[derive(Debug, Clone)]
pub struct SplitExpandFactory {
    /// The distinct arguments, over the input's columns.
    pub args: Vec<Arc<dyn PhysicalExpr>>,
    /// `table.optimizer.distinct-agg.split.bucket-num`.
    pub buckets: u32,
    /// The input's columns (without its op column).
    pub input: SchemaRef,
}

impl SplitExpandFactory {
    /// The input's columns, then `$e` and `$bucket`.
    pub fn output(input: &Schema) -> SchemaRef {
        let mut fields: Vec<_> = input.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(EXPAND_ID, DataType::Int32, false)));
        fields.push(Arc::new(Field::new(BUCKET, DataType::Int32, false)));
        Arc::new(Schema::new(fields))
    }
}

impl OperatorFactory for SplitExpandFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(SplitExpand {
            f: self.clone(),
            output: Self::output(&self.input),
            hashes: Vec::new(),
        }))
    }

    fn describe(&self) -> String {
        let args: Vec<String> = self.args.iter().map(|a| a.to_string()).collect();
        format!(
            "one copy per distinct argument [{}], {} buckets",
            args.join(", "),
            self.buckets
        )
    }
}

struct SplitExpand {
    f: SplitExpandFactory,
    output: SchemaRef,
    hashes: Vec<u64>,
}

impl Operator for SplitExpand {
    fn name(&self) -> &str {
        "SplitDistinctExpand"
    }

    /// Stateless: nothing to save.
    fn checkpointable(&self) -> bool {
        true
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        let (data, ops) = split_row_kinds(batch)?;
        let rows = data.num_rows();
        let mut copies = Vec::with_capacity(self.f.args.len());
        for (e, arg) in self.f.args.iter().enumerate() {
            let values = evaluate(arg, &data)?;
            self.hashes.clear();
            self.hashes.resize(rows, 0);
            create_hashes_with_hasher([&values], &HASHER, &mut self.hashes)?;
            let buckets = self.f.buckets.max(1) as u64;
            let bucket: Int32Array = self
                .hashes
                .iter()
                .map(|h| (h % buckets) as i32)
                .collect::<Vec<_>>()
                .into();
            let mut columns = data.columns().to_vec();
            columns.push(Arc::new(Int32Array::from(vec![e as i32; rows])) as ArrayRef);
            columns.push(Arc::new(bucket));
            copies.push(RecordBatch::try_new(self.output.clone(), columns)?);
        }
        let n = copies.len();
        let expanded = match n {
            1 => copies.pop().expect("one copy"),
            _ => concat_batches(&self.output, &copies)?,
        };
        match ops {
            None => out.batch(expanded),
            Some(ops) => {
                let parts: Vec<&dyn arrow::array::Array> = vec![ops.as_ref(); n];
                let ops = arrow::compute::concat(&parts)?;
                out.batch(with_row_kinds(expanded, ops)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, Int8Array};
    use arrow::datatypes::Int32Type;
    use datafusion_physical_expr::expressions::Column;

    use super::*;
    use crate::metrics::JobMetrics;
    use crate::types::Message;

    #[derive(Default)]
    struct Batches(Vec<RecordBatch>);

    impl Output for Batches {
        fn emit(&mut self, msg: Message) -> Result<()> {
            if let Message::Batch(b) = msg {
                self.0.push(b);
            }
            Ok(())
        }
    }

    #[test]
    fn each_row_comes_once_per_argument_with_its_value_s_bucket() {
        let input = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let op_factory = SplitExpandFactory {
            args: vec![Arc::new(Column::new("a", 0)), Arc::new(Column::new("b", 1))],
            buckets: 4,
            input: input.clone(),
        };
        let mut op = op_factory.create(0, 1).unwrap();
        let data = RecordBatch::try_new(
            input,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(1)])),
                Arc::new(Int64Array::from(vec![Some(7), None, Some(8)])),
            ],
        )
        .unwrap();
        // Retractions keep their kinds in every copy.
        let batch = with_row_kinds(data, Arc::new(Int8Array::from(vec![0, 0, 3]))).unwrap();
        let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
        let mut out = Batches::default();
        op.on_batch(0, batch, &mut ctx, &mut out).unwrap();
        let got = &out.0[0];
        assert_eq!(got.num_rows(), 6);
        let e = got.column(2).as_primitive::<Int32Type>();
        assert_eq!(e.values().to_vec(), [0, 0, 0, 1, 1, 1]);
        let bucket = got.column(3).as_primitive::<Int32Type>();
        assert!(bucket.values().iter().all(|b| (0..4).contains(b)));
        // Equal values, equal buckets.
        assert_eq!(bucket.value(0), bucket.value(2));
        let ops = got.column(4).as_primitive::<arrow::datatypes::Int8Type>();
        assert_eq!(ops.values().to_vec(), [0, 0, 3, 0, 0, 3]);
    }
}
