//! Watermark assigner: `WATERMARK FOR rowtime AS <expr>`.
//!
//! The watermark is the largest value of the expression seen so far (Flink's bounded
//! out-of-orderness strategy), emitted after each batch that moves it. Flink emits periodically;
//! per batch is at least as fresh and keeps runs deterministic.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{cast, max};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;

use super::evaluate;
use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::types::{EventTime, Message, Watermark};
use crate::Result;

#[derive(Debug, Clone)]
pub struct WatermarkAssignerFactory {
    /// Evaluates to a millisecond timestamp per row, over the input's columns followed by the
    /// computed rowtime (if any).
    pub expr: Arc<dyn PhysicalExpr>,
    /// A computed rowtime column (`ts AS TO_TIMESTAMP(…)`, `WATERMARK FOR ts`): appended to
    /// each batch before the watermark and the projection read it, so that from here on the
    /// rowtime is a column like any other (a time attribute, as in Flink).
    pub rowtime: Option<Arc<dyn PhysicalExpr>>,
    /// The input's columns followed by the rowtime (if any).
    pub extended: SchemaRef,
    /// Columns to pass on (of `extended`), when the source read extra ones only for the
    /// watermark.
    pub project: Option<Vec<usize>>,
    /// Subtracted from the maximum of `expr`: `WATERMARK FOR t AS t - INTERVAL '4' SECOND`
    /// runs as `max(t) - 4000`, with no per-row interval arithmetic.
    pub delay_ms: i64,
}

impl OperatorFactory for WatermarkAssignerFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(WatermarkAssigner {
            f: self.clone(),
            current: None,
        }))
    }

    fn describe(&self) -> String {
        let rowtime = self
            .rowtime
            .as_ref()
            .map_or(String::new(), |e| format!("rowtime {e}; "));
        if self.delay_ms == 0 {
            format!("{rowtime}watermark {}", self.expr)
        } else {
            format!(
                "{rowtime}watermark max({}) - {} ms",
                self.expr, self.delay_ms
            )
        }
    }
}

struct WatermarkAssigner {
    f: WatermarkAssignerFactory,
    current: Option<EventTime>,
}

impl Operator for WatermarkAssigner {
    fn name(&self) -> &str {
        "WatermarkAssigner"
    }

    /// As in Flink, a watermark is not checkpointed: a restored job starts from no
    /// watermark and the restored timers fire once the next one passes them.
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
        let batch = match &self.f.rowtime {
            None => batch,
            Some(rowtime) => {
                let mut columns = batch.columns().to_vec();
                columns.push(evaluate(rowtime, &batch)?);
                RecordBatch::try_new(self.f.extended.clone(), columns)?
            }
        };
        let values = evaluate(&self.f.expr, &batch)?;
        let millis = cast(&values, &DataType::Int64)?;
        let batch_max =
            max(millis.as_primitive::<Int64Type>()).map(|m| m.saturating_sub(self.f.delay_ms));
        match &self.f.project {
            None => out.batch(batch)?,
            Some(cols) => out.batch(batch.project(cols)?)?,
        }
        if let Some(m) = batch_max {
            if self.current.is_none_or(|c| m > c) {
                self.current = Some(m);
                out.emit(Message::Watermark(Watermark::EventTime(m)))?;
            }
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        wm: Watermark,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        // Upstream watermarks (the end-of-input one, idleness) pass through; own ones come
        // from the data.
        match wm {
            Watermark::EventTime(t) if self.current.is_some_and(|c| t <= c) => Ok(()),
            _ => out.emit(Message::Watermark(wm)),
        }
    }
}
