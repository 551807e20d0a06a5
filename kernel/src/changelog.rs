//! Changelog rows: on an updating edge every batch carries one more column after its own, the
//! op column `$op` (`Int8`, Flink's `RowKind` values), saying whether each row inserts (+I),
//! retracts an earlier row before its update (-U), is the update (+U), or deletes (-D).
//! Operators that do not understand updates never see such batches: the planner refuses them.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int8Array, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Field, Int8Type, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::types::RowKind;
use crate::{Error, Result};

/// The name of the op column.
pub const OP_COLUMN: &str = "$op";

/// The op column's field.
pub fn op_field() -> Field {
    Field::new(OP_COLUMN, DataType::Int8, false)
}

/// The op column of `batch`, if it carries one (as its last column).
pub fn row_kinds(batch: &RecordBatch) -> Option<&Int8Array> {
    let last = batch.num_columns().checked_sub(1)?;
    (batch.schema_ref().field(last).name() == OP_COLUMN)
        .then(|| batch.column(last).as_primitive_opt::<Int8Type>())
        .flatten()
}

/// `batch` without its op column, and the op column (`None` for an insert-only batch).
pub fn split_row_kinds(batch: RecordBatch) -> Result<(RecordBatch, Option<ArrayRef>)> {
    if row_kinds(&batch).is_none() {
        return Ok((batch, None));
    }
    let last = batch.num_columns() - 1;
    let ops = batch.column(last).clone();
    let data = batch.project(&(0..last).collect::<Vec<_>>())?;
    Ok((data, Some(ops)))
}

/// `batch` with `ops` appended as its op column.
pub fn with_row_kinds(batch: RecordBatch, ops: ArrayRef) -> Result<RecordBatch> {
    if ops.len() != batch.num_rows() || ops.data_type() != &DataType::Int8 {
        return Err(Error::internal("an op column of the wrong length or type"));
    }
    let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(op_field()));
    let mut columns = batch.columns().to_vec();
    columns.push(ops);
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
}

/// The kind of row `i` of an op column.
pub fn kind_at(ops: &Int8Array, i: usize) -> Result<RowKind> {
    RowKind::from_i8(ops.value(i))
        .ok_or_else(|| Error::internal(format!("op column value {} is no row kind", ops.value(i))))
}

/// True for the kinds that add a row to the result (+I, +U); false for those that take one
/// away (-U, -D).
pub fn is_accumulate(kind: i8) -> bool {
    kind == RowKind::Insert as i8 || kind == RowKind::UpdateAfter as i8
}

/// Per row of an `n`-row batch with op column `ops` (`None`: insert-only), whether it adds a
/// row to the result ([`is_accumulate`]).
pub fn accumulates(ops: Option<&ArrayRef>, n: usize) -> Vec<bool> {
    match ops.and_then(|o| o.as_primitive_opt::<Int8Type>()) {
        Some(ops) => ops.values().iter().map(|&k| is_accumulate(k)).collect(),
        None => vec![true; n],
    }
}

/// How Flink prints values: `null`, and timestamps as `LocalDateTime.toString()` renders
/// them with milliseconds. Shared by the `print` sink, the CLI and tests.
pub fn print_format_options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_null("null")
        .with_timestamp_format(Some("%Y-%m-%dT%H:%M:%S%.3f"))
        .with_display_error(true)
}

/// Formats each row of `batch` as Flink's `print` does, `+I[v1, v2, …]`, or with the row's
/// kind (`-U[…]`) when the batch carries an op column.
pub fn format_row_values(batch: &RecordBatch) -> Result<Vec<String>> {
    let opts = print_format_options();
    let kinds = row_kinds(batch);
    let width = batch.num_columns() - usize::from(kinds.is_some());
    let formatters = batch.columns()[..width]
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let kind = match kinds {
            Some(k) => kind_at(k, r)?,
            None => RowKind::Insert,
        };
        let mut line = format!("{}[", kind.short());
        for (i, f) in formatters.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            line.push_str(&f.value(r).to_string());
        }
        line.push(']');
        rows.push(line);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    #[test]
    fn op_column_round_trips() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
        assert!(row_kinds(&batch).is_none());
        let ops: ArrayRef = Arc::new(Int8Array::from(vec![0, 3]));
        let with = with_row_kinds(batch.clone(), ops).unwrap();
        let kinds = row_kinds(&with).unwrap();
        assert_eq!(kind_at(kinds, 1).unwrap(), RowKind::Delete);
        let (data, ops) = split_row_kinds(with).unwrap();
        assert_eq!(data, batch);
        assert_eq!(ops.unwrap().len(), 2);
    }
}
