//! `DATE_FORMAT(timestamp | string, pattern)`: formats with a Java `DateTimeFormatter` /
//! `SimpleDateFormat` pattern (`yyyy-MM-dd HH:mm:ss`), as Flink does.
//!
//! The pattern is translated once into chrono's format items. When it has no sub-second
//! field, consecutive rows in the same second reuse the previous text, which makes the common
//! streaming case (timestamps close together) nearly free.

use std::fmt::Write;
use std::sync::Arc;

use arrow::array::{Array, StringBuilder, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use chrono::format::{Item, StrftimeItems};
use chrono::DateTime;
use datafusion_common::{exec_err, plan_err, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use super::{as_strings, scalar_str};
use formats::parse_timestamp_ms;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateFormat {
    signature: Signature,
}

impl DateFormat {
    pub fn new() -> Self {
        DateFormat {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Translates a Java date pattern to a strftime string; errors name the unsupported letter.
pub fn java_pattern_to_strftime(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal; '' is a single quote.
            let mut j = i + 1;
            if j < chars.len() && chars[j] == '\'' {
                out.push('\'');
                i += 2;
                continue;
            }
            while j < chars.len() && chars[j] != '\'' {
                push_literal(&mut out, chars[j]);
                j += 1;
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let spec = match (c, run) {
            ('y' | 'u', 2) => "%y".to_string(),
            ('y' | 'u', _) => "%Y".to_string(),
            ('M', 1) => "%-m".to_string(),
            ('M', 2) => "%m".to_string(),
            ('M', 3) => "%b".to_string(),
            ('M', _) => "%B".to_string(),
            ('d', 1) => "%-d".to_string(),
            ('d', _) => "%d".to_string(),
            ('D', _) => "%j".to_string(),
            ('H', 1) => "%-H".to_string(),
            ('H', _) => "%H".to_string(),
            ('h', 1) => "%-I".to_string(),
            ('h', _) => "%I".to_string(),
            ('m', 1) => "%-M".to_string(),
            ('m', _) => "%M".to_string(),
            ('s', 1) => "%-S".to_string(),
            ('s', _) => "%S".to_string(),
            ('S', n) if n <= 9 => format!("%{}f", n.clamp(3, 9) / 3 * 3),
            ('a', _) => "%p".to_string(),
            ('E', n) if n <= 3 => "%a".to_string(),
            ('E', _) => "%A".to_string(),
            _ => {
                return Err(format!(
                    "pattern letter '{c}' (x{run}) is not supported in '{pattern}'"
                ))
            }
        };
        if c == 'S' && run < 3 {
            return Err(format!(
                "fractions shorter than SSS are not supported in '{pattern}'"
            ));
        }
        out.push_str(&spec);
        i += run;
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 2 {
            return plan_err!("DATE_FORMAT takes 2 arguments, got {}", args.len());
        }
        let first = match &args[0] {
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
                DataType::Timestamp(TimeUnit::Millisecond, None)
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                DataType::Utf8
            }
            other => return plan_err!("DATE_FORMAT cannot format a value of type {other}"),
        };
        Ok(vec![first, DataType::Utf8])
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let Some(pattern) = scalar_str(&args.args[1]) else {
            return exec_err!("DATE_FORMAT needs a constant pattern");
        };
        let Some(pattern) = pattern else {
            return Ok(ColumnarValue::Array(arrow::array::new_null_array(
                &DataType::Utf8,
                n,
            )));
        };
        let fmt = match java_pattern_to_strftime(&pattern) {
            Ok(f) => f,
            Err(e) => return exec_err!("DATE_FORMAT: {e}"),
        };
        let items: Vec<Item<'_>> = StrftimeItems::new(&fmt).collect();
        let sub_second = pattern.contains('S');
        // Strings are parsed as timestamps first, as Flink's DATE_FORMAT(string, …) does.
        let input = args.args[0].to_array(n)?;
        let millis = if input.data_type() == &DataType::Utf8 {
            let strs = as_strings(&input)?;
            let parsed: TimestampMillisecondArray = strs
                .iter()
                .map(|s| s.and_then(|s| parse_timestamp_ms(s.trim())))
                .collect();
            Arc::new(parsed) as arrow::array::ArrayRef
        } else {
            cast(&input, &DataType::Timestamp(TimeUnit::Millisecond, None))?
        };
        let millis = millis
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("cast to ms timestamps");
        let mut out = StringBuilder::with_capacity(n, n * pattern.len());
        let mut last: Option<(i64, String)> = None;
        let mut text = String::new();
        for i in 0..n {
            if millis.is_null(i) {
                out.append_null();
                continue;
            }
            let ms = millis.value(i);
            let key = if sub_second { ms } else { ms.div_euclid(1000) };
            if let Some((k, s)) = &last {
                if *k == key {
                    out.append_value(s);
                    continue;
                }
            }
            let Some(dt) = DateTime::from_timestamp_millis(ms) else {
                out.append_null();
                continue;
            };
            text.clear();
            if write!(text, "{}", dt.naive_utc().format_with_items(items.iter())).is_err() {
                return exec_err!("DATE_FORMAT cannot format with '{pattern}'");
            }
            out.append_value(&text);
            last = Some((key, text.clone()));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_patterns_translate() {
        assert_eq!(java_pattern_to_strftime("yyyy-MM-dd").unwrap(), "%Y-%m-%d");
        assert_eq!(java_pattern_to_strftime("HH:mm").unwrap(), "%H:%M");
        assert_eq!(
            java_pattern_to_strftime("yyyy-MM-dd HH:mm:ss.SSS").unwrap(),
            "%Y-%m-%d %H:%M:%S.%3f"
        );
        assert_eq!(java_pattern_to_strftime("'at' h a").unwrap(), "at %-I %p");
        assert!(java_pattern_to_strftime("yyyy Q")
            .unwrap_err()
            .contains("'Q'"));
    }
}
