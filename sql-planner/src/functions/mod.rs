//! Flink's built-in functions that DataFusion lacks or types differently, as DataFusion UDFs, plus the built-in
//! Rust versions of Java UDF classes that `CREATE FUNCTION … AS '<class>'` may name.
//!
//! Every function works on whole arrays; arguments that are constants in the SQL (patterns,
//! separators, indices) are read once per batch.

mod as_of;
mod avg;
mod count_char;
mod current_watermark;
mod date_format;
mod extract;
mod modulo;
mod proctime;
mod regexp_extract;
mod row_number;
mod split_index;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion_common::{exec_err, plan_err, Result, ScalarValue};
use datafusion_expr::{ColumnarValue, ScalarUDF};

pub use as_of::AS_OF;
pub use avg::FlinkAvg;
pub use current_watermark::CURRENT_WATERMARK;
pub use date_format::java_pattern_to_strftime;
pub use proctime::is_proctime;
pub use row_number::{RowNumber, ROW_NUMBER};

/// Flink built-ins registered in every session.
pub fn flink_builtins() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(split_index::SplitIndex::new())),
        Arc::new(ScalarUDF::from(regexp_extract::RegexpExtract::new())),
        Arc::new(ScalarUDF::from(date_format::DateFormat::new())),
        Arc::new(ScalarUDF::from(modulo::Mod::new())),
        Arc::new(ScalarUDF::from(proctime::Proctime::new())),
        Arc::new(ScalarUDF::from(as_of::AsOf::new())),
        Arc::new(ScalarUDF::from(current_watermark::CurrentWatermark::new())),
        Arc::new(ScalarUDF::from(extract::Extract::new("hour"))),
        Arc::new(ScalarUDF::from(extract::Extract::new("minute"))),
        Arc::new(ScalarUDF::from(extract::Extract::new("second"))),
        Arc::new(ScalarUDF::from(extract::Extract::new("year"))),
        Arc::new(ScalarUDF::from(extract::Extract::new("month"))),
        Arc::new(ScalarUDF::from(extract::Extract::new("dayofmonth"))),
    ]
}

/// Java UDF classes eddy ships a Rust implementation of, by class name.
pub const KNOWN_UDF_CLASSES: &[&str] = &["com.github.nexmark.flink.udf.CountChar"];

/// The built-in implementation of Java class `class`, registered under `name`.
pub fn udf_for_class(class: &str, name: &str) -> Option<Arc<ScalarUDF>> {
    match class {
        "com.github.nexmark.flink.udf.CountChar" => {
            Some(Arc::new(ScalarUDF::from(count_char::CountChar::new(name))))
        }
        _ => None,
    }
}

/// An argument as a full-length array of type `to`.
pub(crate) fn arg_array(v: &ColumnarValue, rows: usize, to: &DataType) -> Result<ArrayRef> {
    let a = v.to_array(rows)?;
    if a.data_type() == to {
        Ok(a)
    } else {
        Ok(cast(&a, to)?)
    }
}

/// A constant string argument (pattern, separator), or `None` when it varies per row.
pub(crate) fn scalar_str(v: &ColumnarValue) -> Option<Option<String>> {
    match v {
        ColumnarValue::Scalar(s) => Some(match s {
            ScalarValue::Utf8(x) | ScalarValue::LargeUtf8(x) | ScalarValue::Utf8View(x) => {
                x.clone()
            }
            other if other.is_null() => None,
            other => Some(other.to_string()),
        }),
        ColumnarValue::Array(_) => None,
    }
}

/// A constant integer argument, or `None` when it varies per row.
pub(crate) fn scalar_i64(v: &ColumnarValue) -> Option<Option<i64>> {
    match v {
        ColumnarValue::Scalar(s) if s.is_null() => Some(None),
        ColumnarValue::Scalar(s) => s.cast_to(&DataType::Int64).ok().and_then(|x| match x {
            ScalarValue::Int64(v) => Some(v),
            _ => None,
        }),
        ColumnarValue::Array(_) => None,
    }
}

/// Checks the argument count and that each argument is of a string family.
pub(crate) fn expect_strings(
    name: &str,
    args: &[DataType],
    count: std::ops::RangeInclusive<usize>,
) -> Result<()> {
    if !count.contains(&args.len()) {
        return plan_err!(
            "{name} takes {} to {} arguments, got {}",
            count.start(),
            count.end(),
            args.len()
        );
    }
    Ok(())
}

pub(crate) fn is_stringish(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

pub(crate) fn is_integer(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Null)
}

pub(crate) fn as_strings(a: &ArrayRef) -> Result<&StringArray> {
    match a.as_any().downcast_ref::<StringArray>() {
        Some(s) => Ok(s),
        None => exec_err!("expected a string array, got {}", a.data_type()),
    }
}
