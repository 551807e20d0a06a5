//! `ROW_NUMBER()`, for planning only: eddy never evaluates it as a window function. The
//! planner recognizes `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` under a filter on it
//! (`WHERE rn <= N`) as Flink's Top-N or deduplication and lowers it to the kernel's `Rank`
//! operator, which numbers the rows itself; any other use is refused.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::{not_impl_err, Result};
use datafusion_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::{PartitionEvaluator, Signature, Volatility, WindowUDF, WindowUDFImpl};

pub const ROW_NUMBER: &str = "row_number";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RowNumber {
    signature: Signature,
}

impl RowNumber {
    pub fn udwf() -> Arc<WindowUDF> {
        Arc::new(WindowUDF::from(RowNumber {
            signature: Signature::nullary(Volatility::Immutable),
        }))
    }
}

impl WindowUDFImpl for RowNumber {
    fn name(&self) -> &str {
        ROW_NUMBER
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        not_impl_err!("ROW_NUMBER() is run by the Rank operator, never evaluated directly")
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Int64,
            false,
        )))
    }
}
