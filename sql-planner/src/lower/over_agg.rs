//! Lowering of OVER aggregates, `AGG(x) OVER (PARTITION BY … ORDER BY … <frame>)`: one
//! `OverAggregate` operator per partition-key hash. Ordered by a time attribute over an
//! insert-only input, Flink's OVER window (ROWS or RANGE frames, append-only result);
//! otherwise the retracting one (ROWS frames, updating result). See `kernel::ops::over_agg`.

use std::sync::Arc;

use arrow::compute::SortOptions;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::{DFSchemaRef, ScalarValue};
use datafusion_expr::expr::WindowFunction;
use datafusion_expr::{
    Expr, Window, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
};
use kernel::graph::{NodeKind, Partitioning};
use kernel::operator::OperatorFactory;
use kernel::ops::over_agg::{
    OverAggregateFactory, OverCall, OverFrame, OverFunction, OverTime, TimeOverAggregateFactory,
};
use kernel::types::{ChangelogMode, StreamSchema};
use kernel::{Error, Result};

use crate::functions::is_proctime;
use crate::lower::group_agg::counts_rows;
use crate::lower::join::column_index;
use crate::lower::{is_identity, Lowered, Lowering};

/// The window function of a window expression (DataFusion aliases some, as `count(*)`).
pub(crate) fn window_function(e: &Expr) -> Option<&WindowFunction> {
    match e {
        Expr::WindowFunction(f) => Some(f),
        Expr::Alias(a) => window_function(&a.expr),
        _ => None,
    }
}

/// Whether every function of `window` is an aggregate (an OVER aggregation, not a ranking).
pub(crate) fn is_over_aggregate(window: &Window) -> bool {
    window.window_expr.iter().all(|e| {
        window_function(e)
            .is_some_and(|f| matches!(f.fun, WindowFunctionDefinition::AggregateUDF(_)))
    })
}

/// Milliseconds of a day-time interval value; `None` for another value.
fn interval_millis(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(v.days as i64 * 86_400_000 + v.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(v.days as i64 * 86_400_000 + v.milliseconds as i64)
        }
        ScalarValue::DurationMillisecond(Some(ms)) => Some(*ms),
        _ => None,
    }
}

/// The frame of an OVER window: from n rows, an interval or UNBOUNDED PRECEDING to the
/// current row (without a frame clause, RANGE UNBOUNDED PRECEDING, as in Flink).
fn over_frame(frame: &WindowFrame) -> Result<OverFrame> {
    let refuse = || {
        Error::user(format!(
            "an OVER window framed {frame} is not supported yet; eddy runs ROWS BETWEEN n (or \
             UNBOUNDED) PRECEDING AND CURRENT ROW and RANGE BETWEEN INTERVAL … (or UNBOUNDED) \
             PRECEDING AND CURRENT ROW"
        ))
    };
    let (WindowFrameBound::Preceding(n), WindowFrameBound::CurrentRow) =
        (&frame.start_bound, &frame.end_bound)
    else {
        return Err(refuse());
    };
    Ok(match frame.units {
        WindowFrameUnits::Rows if n.is_null() => OverFrame::Rows(None),
        WindowFrameUnits::Rows => match n.cast_to(&arrow::datatypes::DataType::UInt64) {
            Ok(ScalarValue::UInt64(Some(n))) => OverFrame::Rows(Some(n as usize)),
            _ => return Err(Error::user(format!("an OVER frame of {n} rows"))),
        },
        WindowFrameUnits::Range if n.is_null() => OverFrame::Range(None),
        WindowFrameUnits::Range => match interval_millis(n) {
            Some(ms) if ms >= 0 => OverFrame::Range(Some(ms)),
            _ => {
                return Err(Error::user(format!(
                    "an OVER window's RANGE must be a day-time INTERVAL, got {n}"
                )))
            }
        },
        WindowFrameUnits::Groups => return Err(refuse()),
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
        let mut first: Option<&WindowFunction> = None;
        for e in &window.window_expr {
            let Some(f) = window_function(e) else {
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
            let frame = over_frame(&p.window_frame)?;
            if let Some(f0) = first {
                if f0.params.partition_by != p.partition_by || f0.params.order_by != p.order_by {
                    return Err(Error::user(
                        "OVER windows with different PARTITION BY or ORDER BY in one SELECT are \
                         not supported yet",
                    ));
                }
                if calls.first().is_some_and(|c: &OverCall| c.frame != frame) {
                    return Err(Error::user(format!(
                        "OVER windows framed differently in one SELECT ({} and {frame}) are not \
                         supported: as in Flink, a streaming query's OVER aggregates share one \
                         window",
                        calls[0].frame
                    )));
                }
            }
            first = Some(f);
            let arg = match p.args.first() {
                // COUNT(*) counts a constant.
                _ if function == OverFunction::Count && counts_rows(&p.args) => None,
                Some(a) => Some(self.physical(a, &input_schema)?),
                None => return Err(Error::user(format!("{name}() needs an argument"))),
            };
            calls.push(OverCall {
                function,
                arg,
                frame,
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
        // Flink's OVER window: ordered by a time attribute, ascending, over insert-only rows.
        let event_time = self.graph.nodes[input.node].output.event_time;
        let time = match f.params.order_by.as_slice() {
            [s] if s.asc && !self.is_updating(&input) => {
                match column_index(&s.expr, &input_schema) {
                    Some(c) if Some(c) == event_time => Some(OverTime::Event { column: c }),
                    Some(c) if is_proctime(input_schema.field(c)) => Some(OverTime::Processing),
                    _ => None,
                }
            }
            _ => None,
        };
        let output: SchemaRef = Arc::new(window.schema.as_arrow().clone());
        let key_schema = Arc::new(Schema::new(key_fields));
        let input_arrow = Arc::new(input_schema.as_arrow().clone());
        let (factory, stream): (Arc<dyn OperatorFactory>, StreamSchema) = match time {
            Some(time) => {
                let rowtime = match time {
                    OverTime::Event { column } => Some(column),
                    OverTime::Processing => None,
                };
                let factory = TimeOverAggregateFactory {
                    partition,
                    key_schema,
                    time,
                    calls,
                    input: input_arrow,
                    output: output.clone(),
                    state_ttl_ms: self.state_ttl_ms,
                };
                let stream = StreamSchema::append_only(output).with_event_time(rowtime);
                (Arc::new(factory), stream)
            }
            None => {
                if let Some(c) = calls
                    .iter()
                    .find(|c| matches!(c.frame, OverFrame::Range(_)))
                {
                    return Err(Error::user(format!(
                        "an OVER window framed {} needs ORDER BY a time attribute (the rowtime \
                         or a PROCTIME() column), ascending, over an insert-only input, as in \
                         Flink; other orders run with ROWS BETWEEN n (or UNBOUNDED) PRECEDING \
                         AND CURRENT ROW",
                        c.frame
                    )));
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
                let factory = OverAggregateFactory {
                    partition,
                    key_schema,
                    order,
                    calls,
                    input: input_arrow,
                    output: output.clone(),
                    state_ttl_ms: self.state_ttl_ms,
                };
                let stream = StreamSchema::updating(output, ChangelogMode::Retract);
                (Arc::new(factory), stream)
            }
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
            NodeKind::Operator(factory),
            stream,
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
