//! Windows: slices, group keys, the (local, global or single) window aggregation, the session
//! window aggregation, and the window join.

mod aggregate;
mod join;
mod session;
mod session_store;
mod slice_store;
mod spec;

pub use aggregate::{
    partial_schema, AggregatePhase, WindowAggregateCall, WindowAggregateFactory, WindowOutput,
    DEFAULT_BUFFER_GROUPS,
};
pub use join::{JoinSide, WindowJoinFactory, WindowJoinType};
pub use session::SessionAggregateFactory;
pub use spec::{WindowKind, WindowSpec};

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::kernels::cmp::gt;
use arrow::compute::{cast, is_not_null, prep_null_mask_filter};
use arrow::datatypes::{DataType, Schema};
use datafusion_physical_expr::PhysicalExpr;

use crate::metrics::JobMetrics;
use crate::operator::OperatorContext;
use crate::ops::evaluate;
use crate::types::wall_clock_ms;
use crate::Result;

/// What assigns a row to its windows.
#[derive(Debug, Clone)]
pub enum TimeAttribute {
    /// Event time: the row's time in milliseconds; windows fire when the watermark reaches
    /// their end − 1 ms.
    Rowtime(Arc<dyn PhysicalExpr>),
    /// Processing time (`PROCTIME()`): the operator's wall clock when the row arrives, as
    /// Flink's processing-time windows use. Windows fire once the clock has passed their end,
    /// checked on every batch and watermark, and the rest when the input ends (Flink drops
    /// those; eddy loses nothing it accepted). Never late.
    Proctime,
}

impl TimeAttribute {
    /// Each row's time in milliseconds, as an `Int64` array.
    fn row_times(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        Ok(match self {
            TimeAttribute::Rowtime(e) => cast(&evaluate(e, batch)?, &DataType::Int64)?,
            TimeAttribute::Proctime => {
                Arc::new(Int64Array::from_value(wall_clock_ms(), batch.num_rows()))
            }
        })
    }

    /// Processing time: the point the wall clock has passed, as a watermark would (windows
    /// ending by now fire). `None` for event time, which the watermark drives.
    fn clock(&self) -> Option<i64> {
        match self {
            TimeAttribute::Proctime => Some(wall_clock_ms() - 1),
            TimeAttribute::Rowtime(_) => None,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            TimeAttribute::Proctime => "processing-time ",
            TimeAttribute::Rowtime(_) => "",
        }
    }
}

/// "keys [...], aggregates [...]" for an operator's `describe`.
fn keys_and_calls(key_schema: &Schema, calls: &[WindowAggregateCall]) -> String {
    let keys: Vec<&str> = key_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let calls: Vec<&str> = calls.iter().map(|c| c.function.name()).collect();
    format!("keys {keys:?}, aggregates {calls:?}")
}

/// `mask` with nulls as false (arrow's helper wants a null buffer).
pub(crate) fn nulls_false(mask: &BooleanArray) -> BooleanArray {
    if mask.null_count() > 0 {
        prep_null_mask_filter(mask)
    } else {
        mask.clone()
    }
}

/// Counts `n` late rows dropped by an operator subtask, in its total and the job's metrics.
pub(crate) fn count_late(ctx: &OperatorContext, late_rows: &mut u64, n: u64) {
    if n > 0 {
        *late_rows += n;
        JobMetrics::add(&ctx.metrics.late_rows, n);
    }
}

/// The rows of a batch to keep, given each row's window (or slice) end: a row whose window
/// has fired (end − 1 ms ≤ the watermark, Flink's rule) is late, and a row without one has no
/// window. The others are counted as late; `None` when every row is kept.
fn drop_late(
    ends: &Int64Array,
    watermark: Option<i64>,
    late_rows: &mut u64,
    ctx: &OperatorContext,
) -> Result<Option<BooleanArray>> {
    let keep = match watermark {
        Some(wm) => gt(ends, &Int64Array::new_scalar(wm.saturating_add(1)))?,
        None if ends.null_count() > 0 => is_not_null(ends)?,
        None => return Ok(None),
    };
    let keep = nulls_false(&keep);
    let dropped = (ends.len() - keep.true_count()) as u64;
    if dropped == 0 {
        return Ok(None);
    }
    count_late(ctx, late_rows, dropped);
    Ok(Some(keep))
}

/// At the end of a run: tells `eddy run`'s user how many late rows an operator dropped.
pub(crate) fn note_late_rows(ctx: &OperatorContext, operator: &str, late_rows: u64) {
    if late_rows > 0 {
        ctx.metrics.note(format!(
            "{operator} (subtask {}): {late_rows} late rows dropped",
            ctx.subtask
        ));
    }
}

#[cfg(test)]
mod join_tests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod tests;

/// The watermark a restored subtask starts from: the lowest of its old subtasks', none if
/// any of them had none (or there were none).
pub(crate) fn lowest_watermark(watermarks: impl IntoIterator<Item = Option<i64>>) -> Option<i64> {
    let mut lowest: Option<Option<i64>> = None;
    for w in watermarks {
        lowest = Some(match lowest {
            None => w,
            Some(l) => l.zip(w).map(|(a, b)| a.min(b)),
        });
    }
    lowest.flatten()
}
