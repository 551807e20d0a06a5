//! Lowering of window aggregations: `GROUP BY …, window_start, window_end` over a window table
//! function, or over the window columns of an upstream window aggregation or join, becomes one
//! `WindowAggregate` operator at parallelism 1, or a local and a global one joined by a hash
//! exchange on the keys (Flink's two-phase window aggregation).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::DFSchemaRef;
use datafusion_expr::expr::Cast;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{lit, Aggregate, Expr, LogicalPlan};
use datafusion_physical_expr::aggregate::LoweredAggregateBuilder;
use datafusion_physical_expr::expressions::Column as PhysicalColumn;
use datafusion_physical_expr::PhysicalExpr;
use kernel::graph::{NodeKind, Partitioning};
use kernel::ops::window::{
    partial_schema, AggregatePhase, SessionAggregateFactory, TimeAttribute, WindowAggregateCall,
    WindowAggregateFactory, WindowKind, WindowOutput, WindowSpec,
};
use kernel::types::StreamSchema;
use kernel::{Error, Result};

use crate::functions::is_proctime;
use crate::lower::{flatten, substitute, Lowered, Lowering, WindowColumns};
use crate::window_tvf::{TvfWindows, WindowTvf, WINDOW_COLUMNS};

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

/// The outputs of the window columns, in `WINDOW_COLUMNS` order.
const WINDOW_OUTPUTS: [WindowOutput; 3] = [
    WindowOutput::WindowStart,
    WindowOutput::WindowEnd,
    WindowOutput::WindowTime,
];

/// What a window aggregation reads: the columns its expressions are over, which of them are
/// window columns, and how rows are assigned to windows.
struct WindowedInput {
    /// The schema the aggregate's expressions are rewritten onto.
    schema: DFSchemaRef,
    /// Per column of `schema`: the window column it is, if any.
    roles: Vec<Option<WindowOutput>>,
    /// The schema of the rows the operator receives (a prefix of `schema`, or it).
    rows: DFSchemaRef,
    /// The row's time in milliseconds, over `rows`; `None` for processing time (`PROCTIME()`).
    time: Option<Expr>,
    assign: Assign,
}

/// How rows are assigned to windows.
#[derive(Clone, Copy, PartialEq)]
enum Assign {
    /// Sliced by `spec`; the results name the windows of `windows` (`spec` itself, or the
    /// upstream windows of a window-attached aggregation).
    Sliced {
        spec: WindowSpec,
        windows: WindowSpec,
    },
    /// Session windows of the group keys.
    Session { gap: i64 },
}

impl WindowedInput {
    /// The window column an expression is, if it is one.
    fn role(&self, e: &Expr) -> Option<WindowOutput> {
        match e {
            Expr::Column(c) => self
                .schema
                .index_of_column(c)
                .ok()
                .and_then(|i| self.roles[i]),
            _ => None,
        }
    }

    fn reads_window(&self, e: &Expr) -> bool {
        e.column_refs().iter().any(|c| {
            self.schema
                .index_of_column(c)
                .is_ok_and(|i| self.roles[i].is_some())
        })
    }
}

impl Lowering<'_> {
    /// Lowers an aggregation; only window aggregations run so far: over a window table
    /// function, or over rows that carry their window (window-attached, as q5's maximum of
    /// counts per window).
    pub(crate) fn aggregate(&mut self, agg: &Aggregate) -> Result<Lowered> {
        let (base, filter, exprs) = flatten(&agg.input)?;
        if let Some(tvf) = window_tvf(base) {
            let to_base = |e: &Expr| substitute(e.clone(), agg.input.schema(), &exprs);
            let filter = filter.map(|f| to_base(&f)).transpose()?;
            let width = tvf.input_width();
            let schema = base.schema().clone();
            let roles = (0..schema.fields().len())
                .map(|i| i.checked_sub(width).map(|w| WINDOW_OUTPUTS[w]))
                .collect();
            let rows = tvf.input.schema().clone();
            // The event time, in milliseconds.
            let mut time = Expr::Column(tvf.time.clone());
            let (_, time_field) = rows.qualified_field_from_column(&tvf.time)?;
            let proctime = is_proctime(time_field);
            if let DataType::Timestamp(unit, tz) = time_field.data_type() {
                if *unit != TimeUnit::Millisecond {
                    time = Expr::Cast(Cast::new(
                        Box::new(time),
                        DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
                    ));
                }
            }
            let windowed = WindowedInput {
                schema,
                roles,
                rows: rows.clone(),
                time: (!proctime).then_some(time),
                assign: match tvf.windows {
                    TvfWindows::Sliced(spec) => Assign::Sliced {
                        spec,
                        windows: spec,
                    },
                    TvfWindows::Session { gap } => Assign::Session { gap },
                },
            };
            if filter.as_ref().is_some_and(|f| windowed.reads_window(f)) {
                return Err(Error::user(
                    "a WHERE condition on window_start, window_end or window_time before the \
                     aggregation is not supported yet",
                ));
            }
            let mut input = self.lower(&tvf.input)?;
            self.append_only(&input, "a window table function")?;
            if let Some(f) = &filter {
                let all: Vec<Expr> = rows.columns().into_iter().map(Expr::Column).collect();
                input = self.calc(input, Some(f), &all, rows.clone())?;
            }
            let group: Vec<Expr> = agg.group_expr.iter().map(to_base).collect::<Result<_>>()?;
            let calls: Vec<Expr> = agg.aggr_expr.iter().map(to_base).collect::<Result<_>>()?;
            return self.window_aggregate(agg, &windowed, input, &group, &calls);
        }
        let input = self.lower(&agg.input)?;
        let schema = agg.input.schema().clone();
        let attached = input.window.filter(|w| {
            let grouped = |role: Option<usize>| {
                role.is_some_and(|c| {
                    agg.group_expr
                        .iter()
                        .any(|g| match g.clone().unalias_nested().data {
                            Expr::Column(col) => schema.index_of_column(&col).ok() == Some(c),
                            _ => false,
                        })
                })
            };
            grouped(w.start) && grouped(w.end)
        });
        let Some(w) = attached else {
            return self.group_aggregate(agg, input);
        };
        let mut roles = vec![None; schema.fields().len()];
        for (role, column) in WINDOW_OUTPUTS.into_iter().zip([w.start, w.end, w.time]) {
            if let Some(c) = column {
                roles[c] = Some(role);
            }
        }
        let end = Expr::Column(schema.columns()[w.end.expect("checked above")].clone());
        // A row's time is its window's end − 1 ms, which the end grid slices into that window.
        let time = Expr::Cast(Cast::new(Box::new(end), DataType::Int64)) - lit(1i64);
        let windowed = WindowedInput {
            schema: schema.clone(),
            roles,
            rows: schema,
            time: Some(time),
            assign: Assign::Sliced {
                spec: w.spec.end_grid(),
                windows: w.spec,
            },
        };
        let group = agg.group_expr.clone();
        let calls = agg.aggr_expr.clone();
        self.window_aggregate(agg, &windowed, input, &group, &calls)
    }

    /// The window aggregation operator(s) over `input`: `group` and `calls` are the
    /// aggregate's expressions rewritten onto `windowed.schema`.
    fn window_aggregate(
        &mut self,
        agg: &Aggregate,
        windowed: &WindowedInput,
        input: Lowered,
        group: &[Expr],
        aggregates: &[Expr],
    ) -> Result<Lowered> {
        let rows = &windowed.rows;
        let arrow_input: SchemaRef = Arc::new(rows.as_arrow().clone());
        let mut outputs = Vec::new();
        let mut keys = Vec::new();
        let mut key_fields = Vec::new();
        for g in group {
            let g = g.clone().unalias_nested().data;
            match windowed.role(&g) {
                Some(window_column) => outputs.push(window_column),
                None if windowed.reads_window(&g) => {
                    return Err(Error::user(format!(
                        "grouping by '{g}', an expression of the window columns, is not supported"
                    )))
                }
                None => {
                    let key = self.physical(&g, rows)?;
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
        for (i, a) in aggregates.iter().enumerate() {
            let e = count_star(a.clone())?;
            if windowed.reads_window(&e) {
                return Err(Error::user(format!(
                    "an aggregate of the window columns ('{e}') is not supported"
                )));
            }
            let name = agg.schema.field(agg.group_expr.len() + i).name().clone();
            let lowered = LoweredAggregateBuilder::new(
                &e,
                rows,
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
        let time = match &windowed.time {
            Some(t) => TimeAttribute::Rowtime(self.physical(t, rows)?),
            None => TimeAttribute::Proctime,
        };
        let key_schema: SchemaRef = Arc::new(Schema::new(key_fields));
        let output: SchemaRef = Arc::new(agg.schema.as_arrow().clone());
        let position = |o: WindowOutput| outputs.iter().position(|x| *x == o);
        let proctime = matches!(time, TimeAttribute::Proctime);
        // A processing-time window's window_time is no event time.
        let rowtime = position(WindowOutput::WindowTime).filter(|_| !proctime);
        let (spec, windows) = match windowed.assign {
            Assign::Sliced { spec, windows } => (spec, windows),
            Assign::Session { gap } => {
                let factory = SessionAggregateFactory {
                    gap,
                    keys,
                    key_schema,
                    time,
                    calls,
                    outputs,
                    output: output.clone(),
                    buffer_rows: self.window_buffer_groups,
                };
                return self.session_aggregate(input, factory, agg, rowtime);
            }
        };
        let window = WindowColumns {
            spec: windows,
            start: position(WindowOutput::WindowStart),
            end: position(WindowOutput::WindowEnd),
            time: rowtime,
        };
        let buffer_groups = self.window_buffer_groups;
        let factory = |phase, output: SchemaRef| WindowAggregateFactory {
            spec,
            windows,
            phase,
            keys: keys.clone(),
            key_schema: key_schema.clone(),
            time: time.clone(),
            calls: calls.clone(),
            outputs: outputs.clone(),
            output,
            buffer_groups,
        };
        let upstream = self.graph.nodes[input.node].parallelism;
        let title = if proctime {
            format!("{:?} on processing time", spec.kind)
        } else if spec == windows {
            format!("{:?}", spec.kind)
        } else {
            format!("attached to {:?}", windows.kind)
        };
        let one_phase_suffices =
            self.parallelism == 1 && upstream == 1 && !self.parallelism_independent;
        let node = if proctime || one_phase_suffices {
            // Processing-time windows run in one phase, as in Flink: a local phase's slices
            // would reach the global one after its clock passed them.
            let (parallelism, partitioning) = self.one_phase(&input, &keys);
            let id = self.add(
                "window-agg",
                format!("WindowAggregate: {title}"),
                parallelism,
                NodeKind::Operator(Arc::new(factory(AggregatePhase::Single, output.clone()))),
                StreamSchema::append_only(output).with_event_time(window.time),
            );
            self.graph.connect(input.node, id, 0, partitioning);
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
            let tumbling = matches!(spec.kind, WindowKind::Tumble { .. });
            let (parallelism, partitioning) = if !keys.is_empty() {
                (
                    self.parallelism,
                    Partitioning::Hash((0..keys.len()).collect()),
                )
            } else if tumbling {
                // Without keys, a window that is one slice is whole in its slice's partials:
                // spread the windows over the subtasks by their end.
                (self.parallelism, Partitioning::Hash(vec![0]))
            } else {
                // Other windows merge several slices: every partial goes to one subtask, as
                // in Flink.
                (1, Partitioning::Single)
            };
            let global = self.add(
                "window-agg-global",
                format!("GlobalWindowAggregate: {title}"),
                parallelism,
                NodeKind::Operator(Arc::new(factory(AggregatePhase::Global, output.clone()))),
                StreamSchema::append_only(output).with_event_time(window.time),
            );
            self.graph.connect(local, global, 0, partitioning);
            global
        };
        Ok(Lowered {
            node,
            schema: agg.schema.clone(),
            // Later window operators follow event time; processing-time windows end here.
            window: (!proctime).then_some(window),
        })
    }

    /// Where a one-phase aggregation runs: hashed by its keys when they are input columns,
    /// else on one subtask.
    fn one_phase(&self, input: &Lowered, keys: &[Arc<dyn PhysicalExpr>]) -> (usize, Partitioning) {
        let upstream = self.graph.nodes[input.node].parallelism;
        let columns: Option<Vec<usize>> = keys
            .iter()
            .map(|k| k.downcast_ref::<PhysicalColumn>().map(|c| c.index()))
            .collect();
        match columns {
            Some(cols) if !cols.is_empty() && self.parallelism > 1 => {
                (self.parallelism, Partitioning::Hash(cols))
            }
            _ if upstream == 1 => (1, Partitioning::Forward),
            _ => (1, Partitioning::Single),
        }
    }

    /// A session window aggregation: one phase, each key's rows brought to one subtask.
    fn session_aggregate(
        &mut self,
        input: Lowered,
        factory: SessionAggregateFactory,
        agg: &Aggregate,
        rowtime: Option<usize>,
    ) -> Result<Lowered> {
        let (parallelism, partitioning) = self.one_phase(&input, &factory.keys);
        let output = factory.output.clone();
        let id = self.add(
            "session-agg",
            format!("SessionWindowAggregate: gap {} ms", factory.gap),
            parallelism,
            NodeKind::Operator(Arc::new(factory)),
            StreamSchema::append_only(output).with_event_time(rowtime),
        );
        self.graph.connect(input.node, id, 0, partitioning);
        // Session windows differ per key: later window aggregations and joins cannot use them.
        Ok(Lowered {
            node: id,
            schema: agg.schema.clone(),
            window: None,
        })
    }
}
