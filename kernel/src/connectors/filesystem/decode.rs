//! Turning one text record (a CSV row or a JSON line) into cells of the projected columns.
//!
//! Every record is parsed completely before it is appended, so a malformed record can be
//! skipped (`*.ignore-parse-errors`) without leaving half a row in the builders.

use std::borrow::Cow;

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use super::FormatOptions;
use crate::connectors::cells::{parse_decimal, Cell, ColumnBuilder};

/// Parses CSV `record`'s fields at `columns` (file column indices) into `cells`.
pub(crate) fn csv_cells<'r>(
    record: &'r csv::ByteRecord,
    columns: &[usize],
    width: usize,
    builders: &[ColumnBuilder],
    opts: &FormatOptions,
    cells: &mut Vec<Cell<'r>>,
) -> Result<(), String> {
    cells.clear();
    if record.len() != width {
        return Err(format!("expected {width} fields, found {}", record.len()));
    }
    for (&c, b) in columns.iter().zip(builders) {
        let raw = &record[c];
        let text =
            std::str::from_utf8(raw).map_err(|_| format!("field {} is not valid UTF-8", c + 1))?;
        let cell = if opts.null_literal.as_deref() == Some(text) {
            Cell::Null
        } else {
            b.parse_text(text)
                .map_err(|e| format!("field {}: {e}", c + 1))?
        };
        b.check(&cell)
            .map_err(|e| format!("field {}: {e}", c + 1))?;
        cells.push(cell);
    }
    Ok(())
}

/// Parses one JSON object line into cells for the named columns.
pub(crate) fn json_cells<'v>(
    value: &'v BorrowedValue<'v>,
    names: &[String],
    builders: &[ColumnBuilder],
    opts: &FormatOptions,
    cells: &mut Vec<Cell<'v>>,
) -> Result<(), String> {
    cells.clear();
    if value.as_object().is_none() {
        return Err("a JSON record must be an object".into());
    }
    for (name, b) in names.iter().zip(builders) {
        let cell = match value.get(name.as_str()) {
            None if opts.fail_on_missing_field => return Err(format!("field '{name}' is missing")),
            None => Cell::Null,
            Some(v) => json_cell(v, b).map_err(|e| format!("field '{name}': {e}"))?,
        };
        b.check(&cell).map_err(|e| format!("field '{name}': {e}"))?;
        cells.push(cell);
    }
    Ok(())
}

fn json_cell<'v>(v: &'v BorrowedValue<'v>, b: &ColumnBuilder) -> Result<Cell<'v>, String> {
    if v.is_null() {
        return Ok(Cell::Null);
    }
    if let ColumnBuilder::Row(fields, children, _) = b {
        let Some(obj) = v.as_object() else {
            return Err("expected a JSON object for a ROW".into());
        };
        let mut row = Vec::with_capacity(fields.len());
        for (f, child) in fields.iter().zip(children) {
            row.push(match obj.get(f.name().as_str()) {
                None => Cell::Null,
                Some(x) => json_cell(x, child).map_err(|e| format!("{}: {e}", f.name()))?,
            });
        }
        return Ok(Cell::Row(row));
    }
    // Strings are parsed with the column's text rules; numbers and booleans map directly.
    if let Some(s) = v.as_str() {
        return match b {
            ColumnBuilder::Str(_) => Ok(Cell::Str(Cow::Borrowed(s))),
            _ => b.parse_text(s),
        };
    }
    match b {
        ColumnBuilder::Str(_) => Ok(Cell::Str(Cow::Owned(v.encode()))),
        ColumnBuilder::Bool(_) => v
            .as_bool()
            .map(Cell::Bool)
            .ok_or_else(|| format!("{} is not a BOOLEAN", v.encode())),
        ColumnBuilder::I8(_)
        | ColumnBuilder::I16(_)
        | ColumnBuilder::I32(_)
        | ColumnBuilder::I64(_) => v
            .as_i64()
            .map(Cell::Int)
            .ok_or_else(|| format!("{} is not an integer", v.encode())),
        ColumnBuilder::F32(_) | ColumnBuilder::F64(_) => v
            .cast_f64()
            .map(Cell::Float)
            .ok_or_else(|| format!("{} is not a number", v.encode())),
        ColumnBuilder::Decimal(_, p, s) => parse_decimal(&v.encode(), *p, *s)
            .map(Cell::Decimal)
            .ok_or_else(|| format!("{} is not a DECIMAL", v.encode())),
        ColumnBuilder::Timestamp(_) => v
            .as_i64()
            .map(Cell::Timestamp)
            .ok_or_else(|| format!("{} is not a TIMESTAMP", v.encode())),
        _ => Err(format!("{} does not fit the column type", v.encode())),
    }
}
