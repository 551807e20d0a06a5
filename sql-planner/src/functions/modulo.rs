//! `MOD(a, b)`: the remainder of `a / b`, negative only when `a` is (Java's `%`).

use arrow::compute::kernels::numeric::rem;
use arrow::datatypes::DataType;
use datafusion_common::{plan_err, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Mod {
    signature: Signature,
}

impl Mod {
    pub fn new() -> Self {
        Mod {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Mod {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 2 {
            return plan_err!("MOD takes 2 arguments, got {}", args.len());
        }
        if args.iter().all(|t| t.is_integer() || t == &DataType::Null) {
            Ok(vec![DataType::Int64, DataType::Int64])
        } else if args.iter().all(|t| t.is_numeric() || t == &DataType::Null) {
            Ok(vec![DataType::Float64, DataType::Float64])
        } else {
            plan_err!("MOD expects numbers, got {args:?}")
        }
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = args.args[0].to_array(args.number_rows)?;
        let b = match &args.args[1] {
            ColumnarValue::Scalar(s) => s.to_scalar()?.into_inner(),
            ColumnarValue::Array(b) => b.clone(),
        };
        let out = if b.len() == 1 && args.number_rows != 1 {
            rem(&a, &arrow::array::Scalar::new(b))?
        } else {
            rem(&a, &b)?
        };
        Ok(ColumnarValue::Array(out))
    }
}
