//! `PROCTIME()`: Flink's processing-time attribute, a `TIMESTAMP_LTZ(3)` of the wall clock.
//!
//! The value is the clock when a batch is computed, one constant per batch. What makes it a
//! time attribute is the metadata on its field ([`PROCTIME_METADATA`]), which survives
//! projections, aliases and views: a window table function over such a column assigns windows
//! by the window operator's own clock, as Flink does, not by the column's value.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion_common::{plan_err, Result, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use kernel::types::wall_clock_ms;

/// Field metadata key and value marking a processing-time attribute.
pub const PROCTIME_METADATA: (&str, &str) = ("eddy.time_attribute", "proctime");

/// Whether a field is a processing-time attribute (a `PROCTIME()` column, passed on).
pub fn is_proctime(field: &Field) -> bool {
    field
        .metadata()
        .get(PROCTIME_METADATA.0)
        .map(String::as_str)
        == Some(PROCTIME_METADATA.1)
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Proctime {
    signature: Signature,
}

impl Proctime {
    pub fn new() -> Self {
        Proctime {
            signature: Signature::nullary(Volatility::Volatile),
        }
    }
}

fn return_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")))
}

impl ScalarUDFImpl for Proctime {
    fn name(&self) -> &str {
        "proctime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if !args.is_empty() {
            return plan_err!("PROCTIME() takes no arguments");
        }
        Ok(return_type())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if !args.arg_fields.is_empty() {
            return plan_err!("PROCTIME() takes no arguments");
        }
        let metadata = HashMap::from([(
            PROCTIME_METADATA.0.to_string(),
            PROCTIME_METADATA.1.to_string(),
        )]);
        Ok(Arc::new(
            Field::new(self.name(), return_type(), false).with_metadata(metadata),
        ))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
            Some(wall_clock_ms()),
            Some(Arc::from("UTC")),
        )))
    }
}
