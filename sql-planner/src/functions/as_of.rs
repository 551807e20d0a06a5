//! `$as_of(time, column)`: a planning-only marker the rewrite adds to the ON condition of a
//! join with `t FOR SYSTEM_TIME AS OF time` (DataFusion has no place for the version clause).
//! It carries the AS OF expression to the join's lowering, keeps the column it reads in the
//! stream's projection, and reads a column of the table too, so that no optimizer rule pushes
//! it to one side. It holds for every row.

use arrow::datatypes::DataType;
use datafusion_common::{Result, ScalarValue};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

/// The marker's name; no SQL identifier can clash with it.
pub const AS_OF: &str = "$as_of";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AsOf {
    signature: Signature,
}

impl AsOf {
    pub fn new() -> Self {
        AsOf {
            signature: Signature::any(2, Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for AsOf {
    fn name(&self) -> &str {
        AS_OF
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
    }
}
