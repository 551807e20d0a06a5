//! Calc: Flink's name for a fused filter and projection.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;

use super::evaluate;
use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::{Error, Result};

/// Builds [`Calc`] subtasks. The expressions are DataFusion physical expressions over the
/// input schema; the output schema is given by the planner.
#[derive(Debug, Clone)]
pub struct CalcFactory {
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub projection: Vec<Arc<dyn PhysicalExpr>>,
    pub output: SchemaRef,
}

impl OperatorFactory for CalcFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Calc { spec: self.clone() }))
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(f) = &self.filter {
            s.push_str(&format!("where {f}; "));
        }
        let cols: Vec<String> = self
            .projection
            .iter()
            .zip(self.output.fields())
            .map(|(e, f)| format!("{e} AS {}", f.name()))
            .collect();
        s.push_str(&format!("select {}", cols.join(", ")));
        s
    }
}

struct Calc {
    spec: CalcFactory,
}

impl Calc {
    fn project(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns = self
            .spec
            .projection
            .iter()
            .map(|e| evaluate(e, batch))
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            self.spec.output.clone(),
            columns,
            &options,
        )?)
    }
}

impl Operator for Calc {
    fn name(&self) -> &str {
        "Calc"
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        let Some(f) = &self.spec.filter else {
            return out.batch(self.project(&batch)?);
        };
        let mask = evaluate(f, &batch)?;
        if mask.data_type() != &DataType::Boolean {
            return Err(Error::internal(format!(
                "filter {f} is {}, not BOOLEAN",
                mask.data_type()
            )));
        }
        let mask = mask.as_boolean();
        let kept = mask.true_count();
        if kept == 0 {
            return Ok(());
        }
        if kept == batch.num_rows() {
            return out.batch(self.project(&batch)?);
        }
        // Inputs are often wide (nested rows) and outputs narrow. When most rows pass,
        // projecting every row and filtering the outputs copies far less than filtering the
        // inputs; when few pass, filtering first saves the projection work.
        // An expression may fail on a row the filter drops (`WHERE b <> 0 … a / b`): then
        // project only the surviving rows, which fails only if a kept row does.
        if kept * 2 >= batch.num_rows() {
            if let Ok(projected) = self.project(&batch) {
                return out.batch(filter_record_batch(&projected, mask)?);
            }
        }
        out.batch(self.project(&filter_record_batch(&batch, mask)?)?)
    }
}
