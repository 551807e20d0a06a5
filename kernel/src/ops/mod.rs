//! Vectorized operators. One operator per file; each works on whole Arrow batches.

mod calc;
pub(crate) mod group_keys;
pub mod stream_join;
mod watermark;
pub mod window;

pub use calc::CalcFactory;
pub use watermark::WatermarkAssignerFactory;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use datafusion_physical_expr::PhysicalExpr;

use crate::Result;

/// Evaluates `expr` over `batch` into a full-length array.
pub fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef> {
    Ok(expr.evaluate(batch)?.into_array(batch.num_rows())?)
}
