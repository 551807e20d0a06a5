//! Vectorized operators. One operator per file; each works on whole Arrow batches.

mod calc;
pub(crate) mod group_keys;
pub mod stream_join;
mod watermark;
pub mod window;

pub use calc::CalcFactory;
pub use watermark::WatermarkAssignerFactory;

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion_physical_expr::PhysicalExpr;

use crate::Result;

/// A column of timestamps (any unit, any zone) or integers as milliseconds since the epoch.
pub(crate) fn timestamp_millis(column: &ArrayRef) -> Result<Int64Array> {
    let ms = match column.data_type() {
        DataType::Timestamp(_, tz) => cast(
            column,
            &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        )?,
        _ => column.clone(),
    };
    Ok(cast(&ms, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// Evaluates `expr` over `batch` into a full-length array.
pub fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef> {
    Ok(expr.evaluate(batch)?.into_array(batch.num_rows())?)
}
