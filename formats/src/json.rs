//! JSON lines: one object per line into one row, fields by column name.

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::columns::{AppendResult, Cell, ColumnBuilder, RowsBuilder};
use crate::options::FormatOptions;
use crate::text::parse_decimal;

/// Appends one JSON line as a row of `rows`, its fields taken by the column `names`; a line
/// that is no JSON object, or has a field that does not fit, is left out and the reason
/// returned.
pub fn append_json_line(
    line: &mut [u8],
    names: &[String],
    rows: &mut RowsBuilder,
    opts: &FormatOptions,
) -> Result<(), String> {
    let value = simd_json::to_borrowed_value(line).map_err(|e| format!("invalid JSON: {e}"))?;
    if value.as_object().is_none() {
        return Err("a JSON record must be an object".into());
    }
    rows.append_row(|i, b| {
        let name = &names[i];
        match value.get(name.as_str()) {
            None if opts.fail_on_missing_field => {
                b.append_null();
                Err(format!("field '{name}' is missing"))
            }
            None => {
                b.append_null();
                Ok(())
            }
            Some(v) => append_json(b, v).map_err(|e| format!("field '{name}': {e}")),
        }
    })
}

/// Appends JSON value `v` to `b`: strings are read with the column's text rules, numbers
/// and booleans taken as they are, objects as ROW values.
fn append_json(b: &mut ColumnBuilder, v: &BorrowedValue<'_>) -> AppendResult {
    if v.is_null() {
        b.append_null();
        return Ok(());
    }
    if let ColumnBuilder::Row(..) = b {
        let Some(obj) = v.as_object() else {
            b.append_null();
            return Err("expected a JSON object for a ROW".into());
        };
        return b.append_row_with(|_, field, child| match obj.get(field.name().as_str()) {
            None => {
                child.append_null();
                Ok(())
            }
            Some(x) => append_json(child, x),
        });
    }
    if let Some(s) = v.as_str() {
        return b.append_text(s);
    }
    // The value as a cell of the column's kind, and what the column wanted if it is not one.
    let (cell, wanted) = match b {
        ColumnBuilder::Str(_) => (Some(Cell::Str(v.encode().into())), "a string"),
        ColumnBuilder::Bool(_) => (v.as_bool().map(Cell::Bool), "a BOOLEAN"),
        ColumnBuilder::I8(_)
        | ColumnBuilder::I16(_)
        | ColumnBuilder::I32(_)
        | ColumnBuilder::I64(_) => (v.as_i64().map(Cell::Int), "an integer"),
        ColumnBuilder::Timestamp(_) => (v.as_i64().map(Cell::Timestamp), "a TIMESTAMP"),
        ColumnBuilder::F32(_) | ColumnBuilder::F64(_) => {
            (v.cast_f64().map(Cell::Float), "a number")
        }
        ColumnBuilder::Decimal(_, p, s) => (
            parse_decimal(&v.encode(), *p, *s).map(Cell::Decimal),
            "a DECIMAL",
        ),
        ColumnBuilder::Date(_) | ColumnBuilder::Row(..) => (None, "of the column type"),
    };
    match cell {
        Some(cell) => b.append_cell(&cell),
        None => {
            b.append_null();
            Err(format!("{} is not {wanted}", v.encode()))
        }
    }
}
