//! Lowering of OVER aggregates, `AGG(x) OVER (PARTITION BY … ORDER BY … ROWS BETWEEN n
//! PRECEDING AND CURRENT ROW)`: one `OverAggregate` operator per partition-key hash, over an
//! insert-only or updating input; its result is updating (see `kernel::ops::over_agg`).

use std::sync::Arc;

use arrow::compute::SortOptions;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::{DFSchemaRef, ScalarValue};
use datafusion_expr::{Expr, Window, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition};
use kernel::graph::{NodeKind, Partitioning};
use kernel::ops::over_agg::{OverAggregateFactory, OverCall, OverFunction};
use kernel::types::{ChangelogMode, StreamSchema};
use kernel::{Error, Result};

use crate::lower::{is_identity, Lowered, Lowering};
use crate::lower_join::column_index;

/// Whether every function of `window` is an aggregate (an OVER aggregation, not a ranking).
pub(crate) fn is_over_aggregate(window: &Window) -> bool {
    window.window_expr.iter().all(|e| {
        matches!(e, Expr::WindowFunction(f)
            if matches!(f.fun, WindowFunctionDefinition::AggregateUDF(_)))
    })
}

fn over_function(name: &str) -> Option<OverFunction> {
    Some(match name {
        "count" => OverFunction::Count,
        "sum" => OverFunction::Sum,
        "avg" => OverFunction::Avg,
        "min" => OverFunction::Min,
        "max" => OverFunction::Max,
        _ => return None,
    })
}

impl Lowering<'_> {
    /// `exprs` over the rows of `window` that pass `filter`, the window's functions being
    /// aggregates.
    pub(crate) fn over_aggregate(
        &mut self,
        window: &Window,
        filter: Option<&Expr>,
        exprs: &[Expr],
        out: DFSchemaRef,
    ) -> Result<Lowered> {
        let input_schema = window.input.schema().clone();
        let mut calls = Vec::new();
        let mut first: Option<&datafusion_expr::expr::WindowFunction> = None;
        for e in &window.window_expr {
            let Expr::WindowFunction(f) = e else {
                return Err(Error::internal("a window expression that is no function"));
            };
            let WindowFunctionDefinition::AggregateUDF(udf) = &f.fun else {
                return Err(Error::internal("an OVER aggregate that is no aggregate"));
            };
            let name = udf.name().to_ascii_lowercase();
            let function = over_function(&name).ok_or_else(|| {
                Error::user(format!(
                    "{} OVER (…) is not supported yet; OVER windows compute COUNT, SUM, AVG, \
                     MIN and MAX",
                    name.to_uppercase()
                ))
            })?;
            let p = &f.params;
            if p.distinct || p.filter.is_some() {
                return Err(Error::user(format!(
                    "{} OVER (…) with DISTINCT or FILTER is not supported yet",
                    name.to_uppercase()
                )));
            }
            let frame = &p.window_frame;
            let preceding = match (&frame.units, &frame.start_bound, &frame.end_bound) {
                (
                    WindowFrameUnits::Rows,
                    WindowFrameBound::Preceding(n),
                    WindowFrameBound::CurrentRow,
                ) => match n.cast_to(&arrow::datatypes::DataType::UInt64) {
                    Ok(ScalarValue::UInt64(None)) => None,
                    Ok(ScalarValue::UInt64(Some(n))) => Some(n as usize),
                    _ => return Err(Error::user(format!("an OVER frame of {n} rows"))),
                },
                _ => {
                    return Err(Error::user(format!(
                        "an OVER window framed {frame} is not supported yet; eddy runs ROWS \
                         BETWEEN n (or UNBOUNDED) PRECEDING AND CURRENT ROW"
                    )))
                }
            };
            if let Some(f0) = first {
                if f0.params.partition_by != p.partition_by || f0.params.order_by != p.order_by {
                    return Err(Error::user(
                        "OVER windows with different PARTITION BY or ORDER BY in one SELECT are \
                         not supported yet",
                    ));
                }
            }
            first = Some(f);
            let arg = match p.args.first() {
                // COUNT(*) counts a constant.
                Some(Expr::Literal(_, _)) | None if function == OverFunction::Count => None,
                Some(a) => Some(self.physical(a, &input_schema)?),
                None => return Err(Error::user(format!("{name}() needs an argument"))),
            };
            calls.push(OverCall {
                function,
                arg,
                preceding,
            });
        }
        let f = first.ok_or_else(|| Error::internal("a window without functions"))?;
        let input = self.lower(&window.input)?;

        let mut partition = Vec::new();
        let mut columns = Vec::new();
        let mut key_fields = Vec::new();
        for (i, p) in f.params.partition_by.iter().enumerate() {
            columns.push(column_index(p, &input_schema));
            let e = self.physical(p, &input_schema)?;
            let input_arrow = input_schema.as_arrow();
            key_fields.push(Field::new(
                format!("$key{i}"),
                e.data_type(input_arrow)?,
                true,
            ));
            partition.push(e);
        }
        let order = f
            .params
            .order_by
            .iter()
            .map(|s| {
                Ok((
                    self.physical(&s.expr, &input_schema)?,
                    SortOptions {
                        descending: !s.asc,
                        nulls_first: s.nulls_first,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let output: SchemaRef = Arc::new(window.schema.as_arrow().clone());
        let factory = OverAggregateFactory {
            partition,
            key_schema: Arc::new(Schema::new(key_fields)),
            order,
            calls,
            input: Arc::new(input_schema.as_arrow().clone()),
            output: output.clone(),
            state_ttl_ms: self.state_ttl_ms,
        };
        let columns: Option<Vec<usize>> = columns.into_iter().collect();
        let upstream = self.graph.nodes[input.node].parallelism;
        let (parallelism, partitioning) = match columns {
            Some(c) if !c.is_empty() && self.parallelism > 1 => {
                (self.parallelism, Partitioning::Hash(c))
            }
            _ if upstream == 1 => (1, Partitioning::Forward),
            _ => (1, Partitioning::Single),
        };
        let id = self.add(
            "over-agg",
            "OverAggregate".to_string(),
            parallelism,
            NodeKind::Operator(Arc::new(factory)),
            StreamSchema::updating(output, ChangelogMode::Retract),
        );
        self.graph.connect(input.node, id, 0, partitioning);
        let aggregated = Lowered {
            node: id,
            schema: window.schema.clone(),
            window: None,
        };
        if filter.is_none() && is_identity(exprs, &aggregated.schema) {
            return Ok(Lowered {
                schema: out,
                ..aggregated
            });
        }
        self.calc(aggregated, filter, exprs, out)
    }
}
