//! Watermark assigner: `WATERMARK FOR rowtime AS <expr>`.
//!
//! The watermark is the largest value of the expression seen so far (Flink's bounded
//! out-of-orderness strategy), emitted after each batch that moves it. Flink emits periodically;
//! per batch is at least as fresh and keeps runs deterministic.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::{cast, max};
use arrow::datatypes::{DataType, Int64Type};
use datafusion_physical_expr::PhysicalExpr;

use super::evaluate;
use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::types::{EventTime, Message, Watermark};
use crate::Result;

#[derive(Debug, Clone)]
pub struct WatermarkAssignerFactory {
    /// Evaluates to a millisecond timestamp per row.
    pub expr: Arc<dyn PhysicalExpr>,
    /// Columns to pass on, when the source read extra ones only for the watermark.
    pub project: Option<Vec<usize>>,
    /// Subtracted from the maximum of `expr`: `WATERMARK FOR t AS t - INTERVAL '4' SECOND`
    /// runs as `max(t) - 4000`, with no per-row interval arithmetic.
    pub delay_ms: i64,
}

impl OperatorFactory for WatermarkAssignerFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(WatermarkAssigner {
            expr: self.expr.clone(),
            project: self.project.clone(),
            delay_ms: self.delay_ms,
            current: None,
        }))
    }

    fn describe(&self) -> String {
        if self.delay_ms == 0 {
            format!("watermark {}", self.expr)
        } else {
            format!("watermark max({}) - {} ms", self.expr, self.delay_ms)
        }
    }
}

struct WatermarkAssigner {
    expr: Arc<dyn PhysicalExpr>,
    project: Option<Vec<usize>>,
    delay_ms: i64,
    current: Option<EventTime>,
}

impl Operator for WatermarkAssigner {
    fn name(&self) -> &str {
        "WatermarkAssigner"
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        let values = evaluate(&self.expr, &batch)?;
        let millis = cast(&values, &DataType::Int64)?;
        let batch_max =
            max(millis.as_primitive::<Int64Type>()).map(|m| m.saturating_sub(self.delay_ms));
        match &self.project {
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
