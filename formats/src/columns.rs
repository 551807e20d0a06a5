//! Column builders fed one value at a time, for the text formats (CSV, JSON) and generators.
//!
//! Every append adds exactly one slot to its column: the value, or a null when the value does
//! not parse or fit (the reason is returned), so the columns of a batch always stay aligned.
//! [`RowsBuilder`] builds whole rows with that: a row any of whose values failed is marked
//! and left out when the batch is finished, so a malformed record never leaves half a row
//! behind when parse errors are ignored.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, RecordBatch,
    StringBuilder, StructArray, TimestampMillisecondBuilder,
};
use arrow::buffer::NullBuffer;
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Fields, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use chrono::NaiveDate;

use crate::text::{parse_decimal, parse_timestamp_ms};

/// A value not read from text: a JSON number or boolean, a generated value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Unscaled decimal at the column's scale.
    Decimal(i128),
    Str(std::borrow::Cow<'a, str>),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    /// Days since the epoch.
    Date(i32),
}

/// A builder for one column of a type the text formats carry.
pub enum ColumnBuilder {
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Str(StringBuilder),
    Timestamp(TimestampMillisecondBuilder),
    Date(Date32Builder),
    /// A `ROW<…>`: its fields' builders and whether each row is present.
    Row(Fields, Vec<ColumnBuilder>, Vec<bool>),
}

/// The result of one append: `Err` says why the slot holds a null instead of the value.
pub type AppendResult = Result<(), String>;

impl ColumnBuilder {
    /// A builder for `t`, or the type's SQL name when text formats cannot carry it.
    pub fn new(t: &DataType) -> Result<Self, String> {
        Ok(match t {
            DataType::Boolean => ColumnBuilder::Bool(BooleanBuilder::new()),
            DataType::Int8 => ColumnBuilder::I8(Int8Builder::new()),
            DataType::Int16 => ColumnBuilder::I16(Int16Builder::new()),
            DataType::Int32 => ColumnBuilder::I32(Int32Builder::new()),
            DataType::Int64 => ColumnBuilder::I64(Int64Builder::new()),
            DataType::Float32 => ColumnBuilder::F32(Float32Builder::new()),
            DataType::Float64 => ColumnBuilder::F64(Float64Builder::new()),
            DataType::Decimal128(p, s) => ColumnBuilder::Decimal(
                Decimal128Builder::new()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
                *p,
                *s,
            ),
            DataType::Utf8 => ColumnBuilder::Str(StringBuilder::new()),
            DataType::Timestamp(TimeUnit::Millisecond, None) => {
                ColumnBuilder::Timestamp(TimestampMillisecondBuilder::new())
            }
            DataType::Date32 => ColumnBuilder::Date(Date32Builder::new()),
            DataType::Struct(fields) => ColumnBuilder::Row(
                fields.clone(),
                fields
                    .iter()
                    .map(|f| ColumnBuilder::new(f.data_type()))
                    .collect::<Result<_, _>>()?,
                Vec::new(),
            ),
            other => return Err(kernel::types::sql_type_name(other)),
        })
    }

    /// Appends `text` read as a value of this column's type (CSV fields, JSON strings).
    /// Strings are taken as they are; other types ignore surrounding blanks, and a blank
    /// field is null.
    pub fn append_text(&mut self, text: &str) -> AppendResult {
        let t = text.trim();
        if t.is_empty() && !matches!(self, ColumnBuilder::Str(_)) {
            self.append_null();
            return Ok(());
        }
        let bad = |what: &str| format!("'{text}' is not {what}");
        let parsed = match self {
            ColumnBuilder::Str(b) => {
                b.append_value(text);
                Ok(())
            }
            ColumnBuilder::Bool(b) => match t.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(bad("a BOOLEAN")),
            }
            .map(|v| b.append_value(v)),
            ColumnBuilder::I8(b) => int(t, &bad).map(|v| b.append_value(v)),
            ColumnBuilder::I16(b) => int(t, &bad).map(|v| b.append_value(v)),
            ColumnBuilder::I32(b) => int(t, &bad).map(|v| b.append_value(v)),
            ColumnBuilder::I64(b) => int(t, &bad).map(|v| b.append_value(v)),
            ColumnBuilder::F32(b) => t
                .parse()
                .map(|v| b.append_value(v))
                .map_err(|_| bad("a number")),
            ColumnBuilder::F64(b) => t
                .parse()
                .map(|v| b.append_value(v))
                .map_err(|_| bad("a number")),
            ColumnBuilder::Decimal(b, p, s) => parse_decimal(t, *p, *s)
                .map(|v| b.append_value(v))
                .ok_or_else(|| bad("a DECIMAL")),
            ColumnBuilder::Timestamp(b) => parse_timestamp_ms(t)
                .map(|v| b.append_value(v))
                .ok_or_else(|| bad("a TIMESTAMP")),
            ColumnBuilder::Date(b) => NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(|d| b.append_value(days_since_epoch(d)))
                .map_err(|_| bad("a DATE")),
            ColumnBuilder::Row(..) => Err("nested ROW values cannot be read from text".into()),
        };
        self.or_null(parsed)
    }

    /// Appends `cell`, which must be of this column's kind and fit its range.
    pub fn append_cell(&mut self, cell: &Cell<'_>) -> AppendResult {
        let appended = match (&mut *self, cell) {
            (b, Cell::Null) => {
                b.append_null();
                return Ok(());
            }
            (ColumnBuilder::Str(_), Cell::Str(v)) => return self.append_text(v),
            (ColumnBuilder::Bool(b), Cell::Bool(v)) => {
                b.append_value(*v);
                Ok(())
            }
            (ColumnBuilder::I8(b), Cell::Int(v)) => narrow(*v).map(|v| b.append_value(v)),
            (ColumnBuilder::I16(b), Cell::Int(v)) => narrow(*v).map(|v| b.append_value(v)),
            (ColumnBuilder::I32(b), Cell::Int(v)) => narrow(*v).map(|v| b.append_value(v)),
            (ColumnBuilder::I64(b), Cell::Int(v)) => {
                b.append_value(*v);
                Ok(())
            }
            (ColumnBuilder::F32(b), Cell::Float(v)) => {
                b.append_value(*v as f32);
                Ok(())
            }
            (ColumnBuilder::F32(b), Cell::Int(v)) => {
                b.append_value(*v as f32);
                Ok(())
            }
            (ColumnBuilder::F64(b), Cell::Float(v)) => {
                b.append_value(*v);
                Ok(())
            }
            (ColumnBuilder::F64(b), Cell::Int(v)) => {
                b.append_value(*v as f64);
                Ok(())
            }
            (ColumnBuilder::Decimal(b, p, _), Cell::Decimal(v)) => {
                if v.unsigned_abs() < 10u128.pow(*p as u32) {
                    b.append_value(*v);
                    Ok(())
                } else {
                    Err(format!("{v} has more than {p} digits"))
                }
            }
            (ColumnBuilder::Timestamp(b), Cell::Timestamp(v)) => {
                b.append_value(*v);
                Ok(())
            }
            (ColumnBuilder::Date(b), Cell::Date(v)) => {
                b.append_value(*v);
                Ok(())
            }
            (_, other) => Err(format!("value {other:?} does not fit the column type")),
        };
        self.or_null(appended)
    }

    /// Appends one row of a `ROW<…>` column, each field through `field(i, field, builder)`;
    /// a field that fails makes the whole row null (and the rest of its fields too).
    pub fn append_row_with(
        &mut self,
        mut field: impl FnMut(usize, &Field, &mut ColumnBuilder) -> AppendResult,
    ) -> AppendResult {
        let ColumnBuilder::Row(fields, children, valid) = self else {
            let err = Err("expected a ROW column".to_string());
            return self.or_null(err);
        };
        for (i, child) in children.iter_mut().enumerate() {
            if let Err(e) = field(i, &fields[i], child) {
                children[i + 1..]
                    .iter_mut()
                    .for_each(ColumnBuilder::append_null);
                valid.push(false);
                return Err(format!("{}: {e}", fields[i].name()));
            }
        }
        valid.push(true);
        Ok(())
    }

    /// A null in the slot of a failed append, so the column keeps its length.
    fn or_null(&mut self, result: AppendResult) -> AppendResult {
        if result.is_err() {
            self.append_null();
        }
        result
    }

    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::I8(b) => b.append_null(),
            ColumnBuilder::I16(b) => b.append_null(),
            ColumnBuilder::I32(b) => b.append_null(),
            ColumnBuilder::I64(b) => b.append_null(),
            ColumnBuilder::F32(b) => b.append_null(),
            ColumnBuilder::F64(b) => b.append_null(),
            ColumnBuilder::Decimal(b, ..) => b.append_null(),
            ColumnBuilder::Str(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Row(_, children, valid) => {
                children.iter_mut().for_each(ColumnBuilder::append_null);
                valid.push(false);
            }
        }
    }

    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::I8(b) => Arc::new(b.finish()),
            ColumnBuilder::I16(b) => Arc::new(b.finish()),
            ColumnBuilder::I32(b) => Arc::new(b.finish()),
            ColumnBuilder::I64(b) => Arc::new(b.finish()),
            ColumnBuilder::F32(b) => Arc::new(b.finish()),
            ColumnBuilder::F64(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, ..) => Arc::new(b.finish()),
            ColumnBuilder::Str(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Row(fields, children, valid) => {
                let arrays = children.iter_mut().map(ColumnBuilder::finish).collect();
                let nulls = NullBuffer::from(std::mem::take(valid));
                Arc::new(StructArray::new(fields.clone(), arrays, Some(nulls)))
            }
        }
    }
}

/// An integer of the column's width, read from text.
fn int<T: TryFrom<i64>>(t: &str, bad: &dyn Fn(&str) -> String) -> Result<T, String> {
    let v: i64 = t.parse().map_err(|_| bad("an integer"))?;
    narrow(v).map_err(|_| bad("an integer of the column's range"))
}

/// `v` in a narrower integer type, if it fits.
fn narrow<T: TryFrom<i64>>(v: i64) -> Result<T, String> {
    T::try_from(v).map_err(|_| format!("{v} is out of the column's range"))
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date")).num_days() as i32
}

/// Builds a batch a row at a time; rows with a value that failed are left out.
pub struct RowsBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    /// Slots appended, failed rows included.
    slots: usize,
    /// Per slot, whether its row is kept; empty while every row is.
    keep: Vec<bool>,
    rows: usize,
}

impl RowsBuilder {
    /// A builder for `schema`'s columns; the error names the first type text cannot carry.
    pub fn new(schema: SchemaRef) -> Result<Self, String> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type()))
            .collect::<Result<_, _>>()?;
        Ok(RowsBuilder {
            schema,
            columns,
            slots: 0,
            keep: Vec::new(),
            rows: 0,
        })
    }

    /// Rows kept so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Rows appended so far, the ones left out included.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Appends one row, each column's value through `value(i, builder)`. When one fails,
    /// the rest of the row is filled with nulls, the row is left out of the batch, and the
    /// error is returned.
    pub fn append_row(
        &mut self,
        mut value: impl FnMut(usize, &mut ColumnBuilder) -> AppendResult,
    ) -> AppendResult {
        for i in 0..self.columns.len() {
            if let Err(e) = value(i, &mut self.columns[i]) {
                self.columns[i + 1..]
                    .iter_mut()
                    .for_each(ColumnBuilder::append_null);
                if self.keep.is_empty() {
                    self.keep = vec![true; self.slots];
                }
                self.keep.push(false);
                self.slots += 1;
                return Err(e);
            }
        }
        if !self.keep.is_empty() {
            self.keep.push(true);
        }
        self.slots += 1;
        self.rows += 1;
        Ok(())
    }

    /// The rows kept, as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let columns = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        let keep = std::mem::take(&mut self.keep);
        self.slots = 0;
        self.rows = 0;
        if keep.is_empty() {
            return Ok(batch);
        }
        filter_record_batch(&batch, &BooleanArray::from(keep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, Int8Type, Schema};

    #[test]
    fn a_value_that_does_not_fit_leaves_a_null_and_says_why() {
        let mut b = ColumnBuilder::new(&DataType::Int8).unwrap();
        let err = b.append_cell(&Cell::Int(300)).unwrap_err();
        assert!(err.contains("300"), "{err}");
        b.append_text("12").unwrap();
        assert!(b.append_text("1000").is_err());
        assert!(b.append_text("x").is_err());
        b.append_null();
        let a = b.finish();
        assert_eq!(a.len(), 5, "every append took one slot");
        assert_eq!(a.null_count(), 4);
        assert_eq!(a.as_primitive::<Int8Type>().value(1), 12);
    }

    #[test]
    fn a_failed_row_is_left_out_whole() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Int64, true),
        ]));
        let mut rows = RowsBuilder::new(schema).unwrap();
        let records = [["1", "x", "10"], ["2", "y", "oops"], ["3", "z", "30"]];
        let mut errors = 0;
        for r in &records {
            if rows.append_row(|i, b| b.append_text(r[i])).is_err() {
                errors += 1;
            }
        }
        assert_eq!((rows.rows(), errors), (2, 1));
        let batch = rows.finish().unwrap();
        let a: Vec<i64> = batch
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        let c: Vec<i64> = batch
            .column(2)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!((a, c), (vec![1, 3], vec![10, 30]));
        assert_eq!(
            rows.finish().unwrap().num_rows(),
            0,
            "finishing empties the builder"
        );
    }
}
