//! `AVG` typed as Flink types it: the average of an integer column is of the column's type,
//! the quotient truncated toward zero (Flink's `AvgAggFunction` divides the sum by the count in
//! the argument's type), not DataFusion's DOUBLE. Other arguments (floating point, DECIMAL)
//! keep DataFusion's `avg`. Integer arguments reach DataFusion's accumulators as DOUBLE, and
//! their results are cast back; eddy's own unbounded and OVER aggregates compute the integer
//! quotient exactly.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::types::{logical_float64, NativeType};
use datafusion_common::{Result, ScalarValue};
use datafusion_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Coercion, EmitTo, GroupsAccumulator, Signature,
    TypeSignature, TypeSignatureClass, Volatility,
};
use datafusion_functions_aggregate::average::Avg;

/// Flink's AVG, registered over DataFusion's `avg`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FlinkAvg {
    inner: Avg,
    signature: Signature,
}

impl FlinkAvg {
    pub fn udaf() -> Arc<AggregateUDF> {
        let exact = |class| TypeSignature::Coercible(vec![Coercion::new_exact(class)]);
        // DataFusion's `avg` signature, but integers are taken as they are.
        let signature = Signature::one_of(
            vec![
                exact(TypeSignatureClass::Decimal),
                exact(TypeSignatureClass::Duration),
                exact(TypeSignatureClass::Integer),
                TypeSignature::Coercible(vec![Coercion::new_implicit(
                    TypeSignatureClass::Native(logical_float64()),
                    vec![TypeSignatureClass::Float],
                    NativeType::Float64,
                )]),
            ],
            Volatility::Immutable,
        );
        Arc::new(AggregateUDF::from(FlinkAvg {
            inner: Avg::new(),
            signature,
        }))
    }
}

/// `f` as a DOUBLE field, the type DataFusion's `avg` accumulates integers in.
fn as_double(f: &FieldRef) -> FieldRef {
    Arc::new(Field::new(f.name(), DataType::Float64, f.is_nullable()))
}

impl AggregateUDFImpl for FlinkAvg {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if t.is_integer() => Ok(t.clone()),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let Some(result) = integer_result(&args) else {
            return self.inner.accumulator(args);
        };
        let inner = with_doubles(args, |a| self.inner.accumulator(a))?;
        Ok(Box::new(IntegerAvg { inner, result }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if !args.return_field.data_type().is_integer() {
            return self.inner.state_fields(args);
        }
        let fields: Vec<FieldRef> = args.input_fields.iter().map(as_double).collect();
        self.inner.state_fields(StateFieldsArgs {
            input_fields: &fields,
            return_field: as_double(&args.return_field),
            ..args
        })
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        match integer_result(&args) {
            None => self.inner.groups_accumulator_supported(args),
            Some(_) => with_doubles(args, |a| self.inner.groups_accumulator_supported(a)),
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let Some(result) = integer_result(&args) else {
            return self.inner.create_groups_accumulator(args);
        };
        let inner = with_doubles(args, |a| self.inner.create_groups_accumulator(a))?;
        Ok(Box::new(IntegerGroupsAvg { inner, result }))
    }
}

/// `f` of `args` with the argument and the result as DOUBLE, as DataFusion's `avg` takes
/// integers.
fn with_doubles<R>(args: AccumulatorArgs, f: impl FnOnce(AccumulatorArgs) -> R) -> R {
    let fields: Vec<FieldRef> = args.expr_fields.iter().map(as_double).collect();
    f(AccumulatorArgs {
        return_field: as_double(&args.return_field),
        expr_fields: &fields,
        ..args
    })
}

/// The integer type of an AVG's result, when its argument is an integer.
fn integer_result(args: &AccumulatorArgs) -> Option<DataType> {
    let t = args.return_field.data_type();
    t.is_integer().then(|| t.clone())
}

fn doubles(values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    Ok(values
        .iter()
        .map(|v| cast(v, &DataType::Float64))
        .collect::<std::result::Result<_, _>>()?)
}

/// DataFusion's DOUBLE average as an integer: arrow's cast truncates toward zero, as Flink's
/// integer quotient does.
fn truncated(avg: ArrayRef, to: &DataType) -> Result<ArrayRef> {
    Ok(cast(&avg, to)?)
}

#[derive(Debug)]
struct IntegerAvg {
    inner: Box<dyn Accumulator>,
    result: DataType,
}

impl Accumulator for IntegerAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(&doubles(values)?)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.retract_batch(&doubles(values)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.inner.supports_retract_batch()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let avg = self.inner.evaluate()?.to_array()?;
        ScalarValue::try_from_array(&truncated(avg, &self.result)?, 0)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.inner.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.inner.merge_batch(states)
    }
}

struct IntegerGroupsAvg {
    inner: Box<dyn GroupsAccumulator>,
    result: DataType,
}

impl GroupsAccumulator for IntegerGroupsAvg {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner.update_batch(
            &doubles(values)?,
            group_indices,
            opt_filter,
            total_num_groups,
        )
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        truncated(self.inner.evaluate(emit_to)?, &self.result)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.inner.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.inner
            .merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.inner.convert_to_state(&doubles(values)?, opt_filter)
    }

    fn size(&self) -> usize {
        self.inner.size()
    }
}
