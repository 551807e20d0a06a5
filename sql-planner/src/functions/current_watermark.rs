//! `CURRENT_WATERMARK(rowtime)`: the watermark the operator evaluating it has seen, of the
//! rowtime's type, NULL before the first one (Flink's built-in, typically in
//! `WHERE CURRENT_WATERMARK(ts) IS NULL OR ts > CURRENT_WATERMARK(ts)` to drop late rows).
//!
//! The value is not a function of the row but of where the row is in the stream, so this UDF
//! only types the call; the planner rewrites each call into a column that the Calc operator
//! fills with its current watermark (`kernel::ops::CalcFactory::watermark_column`).

use arrow::datatypes::DataType;
use datafusion_common::{exec_err, plan_err, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// The function's name as DataFusion registers it.
pub const CURRENT_WATERMARK: &str = "current_watermark";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CurrentWatermark {
    signature: Signature,
}

impl CurrentWatermark {
    pub fn new() -> Self {
        CurrentWatermark {
            // Volatile: never folded to a constant nor moved into a scan.
            signature: Signature::any(1, Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for CurrentWatermark {
    fn name(&self) -> &str {
        CURRENT_WATERMARK
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [t @ DataType::Timestamp(..)] => Ok(t.clone()),
            [other] => plan_err!(
                "CURRENT_WATERMARK takes a rowtime attribute (a TIMESTAMP column with a WATERMARK), not {other}"
            ),
            _ => plan_err!("CURRENT_WATERMARK takes one argument"),
        }
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!("CURRENT_WATERMARK is supported in SELECT and WHERE clauses only")
    }
}
