//! Lowering of window aggregations: `GROUP BY …, window_start, window_end` over a window table
//! function becomes one `WindowAggregate` operator at parallelism 1, or a local and a global
//! one joined by a hash exchange on the keys (Flink's two-phase window aggregation).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_expr::expr::Cast;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{lit, Aggregate, Expr, LogicalPlan};
use datafusion_physical_expr::aggregate::LoweredAggregateBuilder;
use kernel::graph::{NodeKind, Partitioning};
use kernel::ops::window::{
    partial_schema, AggregatePhase, WindowAggregateCall, WindowAggregateFactory, WindowOutput,
};
use kernel::types::StreamSchema;
use kernel::{Error, Result};

use crate::lower::{flatten, substitute, Lowered, Lowering};
use crate::window_tvf::{WindowTvf, WINDOW_COLUMNS};

/// The window table function a plan reads, if it is one (under aliases).
pub(crate) fn window_tvf(plan: &LogicalPlan) -> Option<&WindowTvf> {
    match plan {
        LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<WindowTvf>(),
        LogicalPlan::SubqueryAlias(a) => window_tvf(&a.input),
        _ => None,
    }
}

/// `count(*)` reaches the lowering with a wildcard argument: count a constant instead.
fn count_star(e: Expr) -> Result<Expr> {
    Ok(e.transform(|x| match x {
        #[allow(deprecated)]
        Expr::Wildcard { .. } => Ok(Transformed::yes(lit(1i64))),
        other => Ok(Transformed::no(other)),
    })?
    .data)
}

impl Lowering<'_> {
    /// Lowers an aggregation; only window aggregations run so far.
    pub(crate) fn aggregate(&mut self, agg: &Aggregate) -> Result<Lowered> {
        let (base, filter, exprs) = flatten(&agg.input)?;
        let Some(tvf) = window_tvf(base) else {
            return Err(Error::user(
                "GROUP BY aggregation is not supported yet, except by window_start and \
                 window_end of a window table function (TUMBLE, HOP, CUMULATE)",
            ));
        };
        let width = tvf.input_width();
        let tvf_schema = base.schema().clone();
        // The window column an expression is, if it is one.
        let window_column = |e: &Expr| match e {
            Expr::Column(c) => tvf_schema
                .index_of_column(c)
                .ok()
                .filter(|&i| i >= width)
                .map(|i| i - width),
            _ => None,
        };
        let reads_window = |e: &Expr| {
            e.column_refs()
                .iter()
                .any(|c| tvf_schema.index_of_column(c).is_ok_and(|i| i >= width))
        };
        let to_base = |e: &Expr| substitute(e.clone(), agg.input.schema(), &exprs);

        let input_schema = tvf.input.schema().clone();
        let arrow_input: SchemaRef = Arc::new(input_schema.as_arrow().clone());
        let mut outputs = Vec::new();
        let mut keys = Vec::new();
        let mut key_fields = Vec::new();
        for g in &agg.group_expr {
            let g = to_base(g)?.unalias_nested().data;
            match window_column(&g) {
                Some(0) => outputs.push(WindowOutput::WindowStart),
                Some(1) => outputs.push(WindowOutput::WindowEnd),
                Some(_) => outputs.push(WindowOutput::WindowTime),
                None if reads_window(&g) => {
                    return Err(Error::user(format!(
                        "grouping by '{g}', an expression of the window columns, is not supported"
                    )))
                }
                None => {
                    let key = self.physical(&g, &input_schema)?;
                    key_fields.push(Field::new(
                        format!("$key{}", keys.len()),
                        key.data_type(&arrow_input)?,
                        true,
                    ));
                    outputs.push(WindowOutput::Key(keys.len()));
                    keys.push(key);
                }
            }
        }
        for needed in [WindowOutput::WindowStart, WindowOutput::WindowEnd] {
            if !outputs.contains(&needed) {
                return Err(Error::user(format!(
                    "a window aggregation must GROUP BY {} and {}",
                    WINDOW_COLUMNS[0], WINDOW_COLUMNS[1]
                )));
            }
        }
        let mut calls = Vec::new();
        for (i, a) in agg.aggr_expr.iter().enumerate() {
            let e = count_star(to_base(a)?)?;
            if reads_window(&e) {
                return Err(Error::user(format!(
                    "an aggregate of the window columns ('{e}') is not supported"
                )));
            }
            let name = agg.schema.field(agg.group_expr.len() + i).name().clone();
            let lowered = LoweredAggregateBuilder::new(
                &e,
                &input_schema,
                &arrow_input,
                &self.props,
                &PhysicalPlanningContext::default(),
            )
            .with_name(name)
            .build()?;
            if !lowered.order_bys.is_empty() {
                return Err(Error::user(format!(
                    "ORDER BY inside an aggregate ('{e}') is not supported yet"
                )));
            }
            outputs.push(WindowOutput::Aggregate(calls.len()));
            calls.push(WindowAggregateCall {
                function: lowered.aggregate,
                filter: lowered.filter,
            });
        }
        let filter = filter.map(|f| to_base(&f)).transpose()?;
        if filter.as_ref().is_some_and(reads_window) {
            return Err(Error::user(
                "a WHERE condition on window_start, window_end or window_time before the \
                 aggregation is not supported yet",
            ));
        }

        // The event time, in milliseconds.
        let mut time = Expr::Column(tvf.time.clone());
        let (_, time_field) = input_schema.qualified_field_from_column(&tvf.time)?;
        if let DataType::Timestamp(unit, tz) = time_field.data_type() {
            if *unit != TimeUnit::Millisecond {
                time = Expr::Cast(Cast::new(
                    Box::new(time),
                    DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
                ));
            }
        }
        let time = self.physical(&time, &input_schema)?;

        let mut input = self.lower(&tvf.input)?;
        if let Some(f) = &filter {
            let all: Vec<Expr> = input_schema
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            input = self.calc(input, Some(f), &all, input_schema.clone())?;
        }
        let key_schema: SchemaRef = Arc::new(Schema::new(key_fields));
        let output: SchemaRef = Arc::new(agg.schema.as_arrow().clone());
        let rowtime = outputs.iter().position(|o| *o == WindowOutput::WindowTime);
        let factory = |phase, output: SchemaRef| WindowAggregateFactory {
            spec: tvf.spec,
            phase,
            keys: keys.clone(),
            key_schema: key_schema.clone(),
            time: time.clone(),
            calls: calls.clone(),
            outputs: outputs.clone(),
            output,
        };
        let upstream = self.graph.nodes[input.node].parallelism;
        let title = format!("{:?}", tvf.spec.kind);
        let node = if self.parallelism == 1 && upstream == 1 {
            let id = self.add(
                "window-agg",
                format!("WindowAggregate: {title}"),
                1,
                NodeKind::Operator(Arc::new(factory(AggregatePhase::Single, output.clone()))),
                StreamSchema::append_only(output).with_event_time(rowtime),
            );
            self.graph.connect(input.node, id, 0, Partitioning::Forward);
            id
        } else {
            let partial = partial_schema(&key_schema, &calls)?;
            let local = self.add(
                "window-agg-local",
                format!("LocalWindowAggregate: {title}"),
                upstream,
                NodeKind::Operator(Arc::new(factory(AggregatePhase::Local, partial.clone()))),
                StreamSchema::append_only(partial),
            );
            self.graph
                .connect(input.node, local, 0, Partitioning::Forward);
            // Without keys every partial goes to one subtask, as in Flink.
            let (parallelism, partitioning) = if keys.is_empty() {
                (1, Partitioning::Single)
            } else {
                (
                    self.parallelism,
                    Partitioning::Hash((0..keys.len()).collect()),
                )
            };
            let global = self.add(
                "window-agg-global",
                format!("GlobalWindowAggregate: {title}"),
                parallelism,
                NodeKind::Operator(Arc::new(factory(AggregatePhase::Global, output.clone()))),
                StreamSchema::append_only(output).with_event_time(rowtime),
            );
            self.graph.connect(local, global, 0, partitioning);
            global
        };
        Ok(Lowered {
            node,
            schema: agg.schema.clone(),
        })
    }
}
