//! Calc: Flink's name for a fused filter and projection.

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, RecordBatchOptions};
use arrow::compute::{cast, filter, filter_record_batch};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;

use super::evaluate;
use crate::changelog::{split_row_kinds, with_row_kinds};
use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::{Error, Result};

/// Builds [`Calc`] subtasks. The expressions are DataFusion physical expressions over the
/// input schema; the output schema is given by the planner.
#[derive(Debug, Clone)]
pub struct CalcFactory {
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub projection: Vec<Arc<dyn PhysicalExpr>>,
    pub output: SchemaRef,
    /// When the expressions read `CURRENT_WATERMARK`: each batch gets one more column, after
    /// its own, holding the operator's current watermark (NULL before the first), of this
    /// timestamp type.
    pub watermark_column: Option<DataType>,
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
    /// The batch with the current watermark appended, if the expressions read it.
    fn with_watermark(&self, batch: RecordBatch, ctx: &OperatorContext) -> Result<RecordBatch> {
        let Some(ty) = &self.spec.watermark_column else {
            return Ok(batch);
        };
        let rows = batch.num_rows();
        let millis = match ctx.current_watermark {
            Some(t) => Int64Array::from_value(t, rows),
            None => Int64Array::new_null(rows),
        };
        let mut fields: Vec<FieldRef> = batch.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new("$current_watermark", ty.clone(), true)));
        let mut columns = batch.columns().to_vec();
        columns.push(cast(&millis, ty)?);
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &options,
        )?)
    }

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

    /// Stateless: nothing to save.
    fn checkpointable(&self) -> bool {
        true
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        // An updating input's op column passes through, filtered with its rows.
        let (batch, ops) = split_row_kinds(batch)?;
        let batch = self.with_watermark(batch, ctx)?;
        let Some(f) = &self.spec.filter else {
            let projected = self.project(&batch)?;
            return out.batch(match ops {
                Some(ops) => with_row_kinds(projected, ops)?,
                None => projected,
            });
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
        let ops = match ops {
            Some(ops) if kept < batch.num_rows() => Some(filter(&ops, mask)?),
            other => other,
        };
        let projected = if kept == batch.num_rows() {
            self.project(&batch)?
        } else {
            // Inputs are often wide (nested rows) and outputs narrow. When most rows pass,
            // projecting every row and filtering the outputs copies far less than filtering
            // the inputs; when few pass, filtering first saves the projection work.
            // An expression may fail on a row the filter drops (`WHERE b <> 0 … a / b`):
            // then project only the surviving rows, which fails only if a kept row does.
            match (kept * 2 >= batch.num_rows())
                .then(|| self.project(&batch))
                .and_then(|r| r.ok())
            {
                Some(all) => filter_record_batch(&all, mask)?,
                None => self.project(&filter_record_batch(&batch, mask)?)?,
            }
        };
        out.batch(match ops {
            Some(ops) => with_row_kinds(projected, ops)?,
            None => projected,
        })
    }
}
