//! Flink's `HOUR(ts)`, `MINUTE(ts)`, `SECOND(ts)`, `YEAR(ts)`, `MONTH(ts)`,
//! `DAYOFMONTH(ts)`: a field of a timestamp as BIGINT, through arrow's `date_part` kernel.

use arrow::compute::cast;
use arrow::compute::kernels::temporal::{date_part, DatePart};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion_common::{plan_err, Result};
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Extract {
    name: &'static str,
    signature: Signature,
}

impl Extract {
    pub fn new(name: &'static str) -> Self {
        Extract {
            name,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn part(&self) -> DatePart {
        match self.name {
            "hour" => DatePart::Hour,
            "minute" => DatePart::Minute,
            "second" => DatePart::Second,
            "year" => DatePart::Year,
            "month" => DatePart::Month,
            _ => DatePart::Day,
        }
    }
}

impl ScalarUDFImpl for Extract {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [DataType::Timestamp(unit, tz)] => Ok(vec![DataType::Timestamp(*unit, tz.clone())]),
            [DataType::Date32] | [DataType::Null] => {
                Ok(vec![DataType::Timestamp(TimeUnit::Millisecond, None)])
            }
            _ => plan_err!(
                "{} expects one TIMESTAMP argument, got {args:?}",
                self.name.to_uppercase()
            ),
        }
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = args.args[0].to_array(args.number_rows)?;
        let part = date_part(a.as_ref(), self.part())?;
        Ok(ColumnarValue::Array(cast(&part, &DataType::Int64)?))
    }
}
