//! Vectorized operators. One operator per file; each works on whole Arrow batches.

mod calc;
pub mod changelog_join;
pub mod group_agg;
pub(crate) mod group_keys;
pub(crate) mod group_state;
pub(crate) mod key_ttl;
pub(crate) mod keyed_table;
pub mod lookup_join;
pub mod over_agg;
pub mod rank;
pub mod split_expand;
pub mod stream_join;
mod stream_join_state;
pub mod temporal_join;
#[cfg(test)]
pub(crate) mod test_output;
mod watermark;
pub mod window;

pub use calc::CalcFactory;
pub use watermark::WatermarkAssignerFactory;

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::compute::{cast, SortOptions};
use arrow::datatypes::{DataType, Int64Type, Schema, TimeUnit};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_physical_expr::PhysicalExpr;

use gemini_state::StateSize;

use crate::Result;

/// A converter of whole rows of `schema` to arrow's row format (default sort order), for
/// operators that keep rows as bytes.
pub(crate) fn whole_row_converter(schema: &Schema) -> Result<RowConverter> {
    Ok(RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?)
}

/// Rows an operator keeps in memory outside a state table, and their bytes, for state
/// reports. The bytes are those of the arrays' buffers, which a kept slice of a larger batch
/// shares with it: an upper bound.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HeldRows {
    pub rows: u64,
    pub bytes: u64,
}

impl HeldRows {
    fn bytes_of(columns: &[ArrayRef]) -> u64 {
        columns
            .iter()
            .map(|c| c.get_array_memory_size() as u64)
            .sum()
    }

    pub fn add(&mut self, rows: usize, columns: &[ArrayRef]) {
        self.rows += rows as u64;
        self.bytes += Self::bytes_of(columns);
    }

    pub fn remove(&mut self, rows: usize, columns: &[ArrayRef]) {
        self.rows -= rows as u64;
        self.bytes -= Self::bytes_of(columns);
    }

    /// The held rows as state, plus `extra_bytes` of indexes over them.
    pub fn size(&self, extra_bytes: usize) -> StateSize {
        StateSize {
            entries: self.rows,
            bytes: self.bytes + extra_bytes as u64,
        }
    }
}

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

/// ORDER BY values as memcomparable bytes (arrow-row), for operators that keep rows sorted.
/// Without ORDER BY (or when it only names a processing-time attribute, which is arrival
/// order) every row's bytes are empty: all rows tie.
#[derive(Debug)]
pub(crate) struct SortKeys {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    converter: Option<RowConverter>,
}

/// The sort keys of one batch; see [`SortKeys`].
pub(crate) struct SortedRows(Option<Rows>);

impl SortedRows {
    /// Row `i`'s sort bytes.
    pub fn key(&self, i: usize) -> &[u8] {
        self.0.as_ref().map_or(&[], |r| r.row(i).data())
    }
}

impl SortKeys {
    pub fn new(order: &[(Arc<dyn PhysicalExpr>, SortOptions)], input: &Schema) -> Result<Self> {
        let fields = order
            .iter()
            .map(|(e, o)| Ok(SortField::new_with_options(e.data_type(input)?, *o)))
            .collect::<Result<Vec<_>>>()?;
        Ok(SortKeys {
            exprs: order.iter().map(|(e, _)| e.clone()).collect(),
            converter: (!fields.is_empty())
                .then(|| RowConverter::new(fields))
                .transpose()?,
        })
    }

    pub fn convert(&self, batch: &RecordBatch) -> Result<SortedRows> {
        let Some(converter) = &self.converter else {
            return Ok(SortedRows(None));
        };
        let columns = self
            .exprs
            .iter()
            .map(|e| evaluate(e, batch))
            .collect::<Result<Vec<_>>>()?;
        Ok(SortedRows(Some(converter.convert_columns(&columns)?)))
    }
}
