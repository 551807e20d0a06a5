//! Column builders fed one parsed cell at a time, for the text formats (CSV, JSON).
//!
//! A record is first parsed into a row of [`Cell`]s (borrowing from the input, no allocation for
//! flat rows); only when every cell parsed is the row appended, so a malformed record never
//! leaves half a row behind when parse errors are ignored.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, Int8Builder, StringBuilder, StructArray,
    TimestampMillisecondBuilder,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Fields, TimeUnit};
use chrono::{Datelike, NaiveDate, NaiveDateTime};

/// One parsed value.
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
    Date(i32),
    Row(Vec<Cell<'a>>),
}

/// A builder for one column of a supported type.
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
    Row(Fields, Vec<ColumnBuilder>, Vec<bool>),
}

impl ColumnBuilder {
    /// A builder for `t`, or the type's name when text formats cannot carry it.
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
            other => return Err(crate::types::sql_type_name(other)),
        })
    }

    /// Parses `text` as a value of this column's type (CSV fields, JSON strings).
    pub fn parse_text<'a>(&self, text: &'a str) -> Result<Cell<'a>, String> {
        let t = text.trim();
        let bad = |what: &str| format!("'{text}' is not {what}");
        Ok(match self {
            ColumnBuilder::Str(_) => Cell::Str(text.into()),
            _ if t.is_empty() => Cell::Null,
            ColumnBuilder::Bool(_) => match t.to_ascii_lowercase().as_str() {
                "true" => Cell::Bool(true),
                "false" => Cell::Bool(false),
                _ => return Err(bad("a BOOLEAN")),
            },
            ColumnBuilder::I8(_)
            | ColumnBuilder::I16(_)
            | ColumnBuilder::I32(_)
            | ColumnBuilder::I64(_) => Cell::Int(t.parse().map_err(|_| bad("an integer"))?),
            ColumnBuilder::F32(_) | ColumnBuilder::F64(_) => {
                Cell::Float(t.parse().map_err(|_| bad("a number"))?)
            }
            ColumnBuilder::Decimal(_, p, s) => {
                Cell::Decimal(parse_decimal(t, *p, *s).ok_or_else(|| bad("a DECIMAL"))?)
            }
            ColumnBuilder::Timestamp(_) => {
                Cell::Timestamp(parse_timestamp_ms(t).ok_or_else(|| bad("a TIMESTAMP"))?)
            }
            ColumnBuilder::Date(_) => {
                let d = NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| bad("a DATE"))?;
                Cell::Date(
                    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32,
                )
            }
            ColumnBuilder::Row(..) => {
                return Err("nested ROW values cannot be read from text".into())
            }
        })
    }

    /// Checks that `cell` fits this column (range, kind) before anything is appended.
    pub fn check(&self, cell: &Cell<'_>) -> Result<(), String> {
        let fits = match (self, cell) {
            (_, Cell::Null) => true,
            (ColumnBuilder::Bool(_), Cell::Bool(_)) => true,
            (ColumnBuilder::I8(_), Cell::Int(v)) => i8::try_from(*v).is_ok(),
            (ColumnBuilder::I16(_), Cell::Int(v)) => i16::try_from(*v).is_ok(),
            (ColumnBuilder::I32(_), Cell::Int(v)) => i32::try_from(*v).is_ok(),
            (ColumnBuilder::I64(_), Cell::Int(_)) => true,
            (ColumnBuilder::F32(_) | ColumnBuilder::F64(_), Cell::Float(_) | Cell::Int(_)) => true,
            (ColumnBuilder::Decimal(..), Cell::Decimal(_)) => true,
            (ColumnBuilder::Str(_), Cell::Str(_)) => true,
            (ColumnBuilder::Timestamp(_), Cell::Timestamp(_)) => true,
            (ColumnBuilder::Date(_), Cell::Date(_)) => true,
            (ColumnBuilder::Row(_, children, _), Cell::Row(cells)) => {
                return cells.iter().zip(children).try_for_each(|(c, b)| b.check(c));
            }
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(format!("value {cell:?} does not fit the column type"))
        }
    }

    /// Appends a cell that passed [`check`](Self::check).
    pub fn append(&mut self, cell: &Cell<'_>) {
        match (self, cell) {
            (b, Cell::Null) => b.append_null(),
            (ColumnBuilder::Bool(b), Cell::Bool(v)) => b.append_value(*v),
            (ColumnBuilder::I8(b), Cell::Int(v)) => b.append_value(*v as i8),
            (ColumnBuilder::I16(b), Cell::Int(v)) => b.append_value(*v as i16),
            (ColumnBuilder::I32(b), Cell::Int(v)) => b.append_value(*v as i32),
            (ColumnBuilder::I64(b), Cell::Int(v)) => b.append_value(*v),
            (ColumnBuilder::F32(b), Cell::Float(v)) => b.append_value(*v as f32),
            (ColumnBuilder::F32(b), Cell::Int(v)) => b.append_value(*v as f32),
            (ColumnBuilder::F64(b), Cell::Float(v)) => b.append_value(*v),
            (ColumnBuilder::F64(b), Cell::Int(v)) => b.append_value(*v as f64),
            (ColumnBuilder::Decimal(b, ..), Cell::Decimal(v)) => b.append_value(*v),
            (ColumnBuilder::Str(b), Cell::Str(v)) => b.append_value(v),
            (ColumnBuilder::Timestamp(b), Cell::Timestamp(v)) => b.append_value(*v),
            (ColumnBuilder::Date(b), Cell::Date(v)) => b.append_value(*v),
            (ColumnBuilder::Row(_, children, valid), Cell::Row(cells)) => {
                for (b, c) in children.iter_mut().zip(cells) {
                    b.append(c);
                }
                valid.push(true);
            }
            (_, other) => unreachable!("append of unchecked cell {other:?}"),
        }
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

/// Parses a decimal literal into an unscaled integer at `scale`, rejecting values that need
/// more than `precision` digits or more fractional digits than `scale`... rounding half up.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = scale.max(0) as usize;
    let mut v: i128 = 0;
    for b in int_part.bytes() {
        v = v.checked_mul(10)?.checked_add((b - b'0') as i128)?;
    }
    let frac = frac_part.as_bytes();
    for i in 0..scale {
        let d = frac.get(i).map_or(0, |b| (b - b'0') as i128);
        v = v.checked_mul(10)?.checked_add(d)?;
    }
    if frac.get(scale).is_some_and(|b| *b >= b'5') {
        v += 1;
    }
    if v >= 10i128.pow(precision as u32) {
        return None;
    }
    Some(if neg { -v } else { v })
}

/// Parses `yyyy-MM-dd HH:mm:ss[.fff]` (Flink's SQL format) or the ISO form with `T`.
pub fn parse_timestamp_ms(text: &str) -> Option<i64> {
    if let Some(ms) = sql_timestamp_ms(text.as_bytes()) {
        return Some(ms);
    }
    // Shorter and unusual forms; chrono's format interpreter is about 10x slower than the
    // fixed layout above, which every Flink-written file uses.
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(dt.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(|d| {
        d.and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis()
    })
}

/// The fixed layout `yyyy-MM-dd[ T]HH:mm:ss[.f{1,9}]`, read by position; fractions beyond
/// milliseconds are truncated, as chrono's `timestamp_millis` does. `None` for anything else.
fn sql_timestamp_ms(b: &[u8]) -> Option<i64> {
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + (d - b'0') as u32)
        })
    };
    let date = NaiveDate::from_ymd_opt(
        number(&b[0..4])? as i32,
        number(&b[5..7])?,
        number(&b[8..10])?,
    )?;
    let (h, m, s) = (
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
    );
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let millis = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..]
            if (1..=9).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit) =>
        {
            let kept = &fraction[..fraction.len().min(3)];
            number(kept)? * 10u32.pow(3 - kept.len() as u32)
        }
        _ => return None,
    };
    const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
    let days = date.num_days_from_ce() as i64 - UNIX_EPOCH_DAYS_FROM_CE;
    Some((days * 86_400 + (h * 3600 + m * 60 + s) as i64) * 1000 + millis as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_at_scale() {
        assert_eq!(parse_decimal("12.3456", 10, 3), Some(12346));
        assert_eq!(parse_decimal("-0.5", 5, 0), Some(-1));
        assert_eq!(parse_decimal("7", 5, 2), Some(700));
        assert_eq!(parse_decimal("1234", 3, 0), None);
        assert_eq!(parse_decimal("1e5", 10, 0), None);
    }

    #[test]
    fn the_fixed_layout_agrees_with_chrono() {
        let chrono_ms = |t: &str| {
            ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
                .map(|dt| dt.and_utc().timestamp_millis())
        };
        for t in [
            "2015-07-15 00:00:00.000",
            "2015-07-15 23:59:59.999",
            "1969-12-31 23:59:59.5",
            "1900-02-28T12:00:00.123456789",
            "2024-02-29 01:02:03.04",
            "0001-01-01 00:00:00",
        ] {
            assert_eq!(sql_timestamp_ms(t.as_bytes()), chrono_ms(t), "{t}");
            assert!(sql_timestamp_ms(t.as_bytes()).is_some(), "{t}");
        }
        for bad in [
            "2015-02-29 00:00:00",
            "2015-07-15 24:00:00",
            "2015-07-15 00:00:00.",
            "2015-07-15 00:00:00.1234567890",
            "2015-07-15 00:00:0x",
            "2015-7-15 00:00:00",
        ] {
            assert_eq!(sql_timestamp_ms(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_in_sql_and_iso_forms() {
        assert_eq!(parse_timestamp_ms("1970-01-01 00:00:01.5"), Some(1500));
        assert_eq!(parse_timestamp_ms("1970-01-01T00:01:00"), Some(60_000));
        assert_eq!(parse_timestamp_ms("yesterday"), None);
    }

    #[test]
    fn rows_are_checked_before_they_are_appended() {
        let mut b = ColumnBuilder::new(&DataType::Int8).unwrap();
        assert!(b.check(&Cell::Int(300)).is_err());
        let cell = b.parse_text("12").unwrap();
        b.check(&cell).unwrap();
        b.append(&cell);
        b.append_null();
        let a = b.finish();
        assert_eq!(a.len(), 2);
        assert_eq!(a.null_count(), 1);
    }
}
