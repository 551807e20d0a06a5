//! Lowering: an optimized DataFusion logical plan → nodes of the kernel's job graph.
//!
//! Scans become sources (with a watermark assigner when the table declares one), filters and
//! projections become Calc operators (a projection over a filter is fused into one), and the
//! `INSERT` target becomes a sink. Operators of equal parallelism joined by forward edges are
//! chained by the runtime, so they cost nested calls, not queues. Plan nodes eddy does not run
//! yet are refused with the construct's name.

mod group_agg;
mod join;
mod lookup_join;
mod over_agg;
mod rank;
mod split_distinct;
mod stream_join;
mod temporal_join;
#[cfg(test)]
mod tests;
mod window;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion_common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion_common::{Column, DFSchema, DFSchemaRef};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{and, Cast, Expr, ExprSchemable, LogicalPlan, WriteOp};
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr};
use kernel::connector::{Connector, ConnectorLookup, Options, TableDescriptor};
use kernel::graph::{JobGraph, Node, NodeId, NodeKind, Partitioning};
use kernel::ops::window::WindowSpec;
use kernel::ops::{CalcFactory, WatermarkAssignerFactory};
use kernel::types::StreamSchema;
use kernel::{Error, Result};

use crate::catalog::{column_filter, RawTableSource, VersionedSource, VERSIONED_PREFIX};
use crate::functions::CURRENT_WATERMARK;

/// The column a Calc appends for `CURRENT_WATERMARK`.
const WATERMARK_COLUMN: &str = "$current_watermark";

pub(crate) struct Lowering<'a> {
    pub graph: &'a mut JobGraph,
    pub parallelism: usize,
    /// Hash of the statement's text, for stable operator uids.
    pub statement: u64,
    pub(crate) props: ExecutionProps,
    counter: usize,
    /// `table.exec.window-agg.buffer-size-limit`.
    pub window_buffer_groups: usize,
    /// `table.exec.state.ttl`, when set (and not zero).
    pub state_ttl_ms: Option<i64>,
    /// `state.backend.gemini.memory-budget` is set: joins whose state only grows keep their
    /// rows in state tables, which spill to disk, instead of in memory.
    pub joins_in_state_tables: bool,
    /// The job's state may be checkpointed or restored: plan the same operators at every
    /// parallelism, so that state taken at one restores at another (window aggregations
    /// then run in two phases at parallelism 1 too, as Flink plans them).
    pub parallelism_independent: bool,
    /// `table.exec.mini-batch.*`, when enabled.
    pub mini_batch: Option<kernel::ops::group_agg::MiniBatch>,
    /// `table.optimizer.distinct-agg.split.bucket-num`, when split distinct aggregation is on.
    pub split_distinct_buckets: Option<u32>,
    /// Every sink writes through this connector instead of its table's own (`eddy run
    /// --materialize`).
    pub sink_connector: Option<Arc<dyn Connector>>,
    /// The files and directories the job reads, by table: a sink must not write there.
    pub reads: Vec<(String, PathBuf)>,
    /// The files and directories the job's sinks write, by table.
    pub writes: Vec<(String, PathBuf)>,
}

/// A lowered plan node: the graph node producing it and its logical schema.
pub(crate) struct Lowered {
    pub node: NodeId,
    pub schema: DFSchemaRef,
    /// The window columns the rows carry, when they come from a window aggregation or join.
    pub window: Option<WindowColumns>,
}

/// Which columns of a stream hold the window its rows belong to, and which windows they are:
/// what lets a later aggregation or join work window by window (Flink's window properties).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowColumns {
    pub spec: WindowSpec,
    pub start: Option<usize>,
    pub end: Option<usize>,
    pub time: Option<usize>,
}

impl WindowColumns {
    /// The window columns after a projection `exprs` over the stream: a column passed through
    /// unchanged keeps its role at its new position.
    fn project(&self, exprs: &[Expr], schema: &DFSchema) -> Option<WindowColumns> {
        let at = |role| projected_position(role, exprs, schema);
        let w = WindowColumns {
            spec: self.spec,
            start: at(self.start),
            end: at(self.end),
            time: at(self.time),
        };
        (w.start.is_some() || w.end.is_some() || w.time.is_some()).then_some(w)
    }
}

/// Where column `column` of `schema` lands after the projection `exprs`: the position of the
/// first expression passing it through unchanged, if any.
pub(crate) fn projected_position(
    column: Option<usize>,
    exprs: &[Expr],
    schema: &DFSchema,
) -> Option<usize> {
    let c = column?;
    exprs
        .iter()
        .position(|e| match e.clone().unalias_nested().data {
            Expr::Column(col) => schema.index_of_column(&col).ok() == Some(c),
            _ => false,
        })
}

/// A table `name` of the query `input`'s columns, written by `connector` with no options:
/// the sink of a bare SELECT, or of every INSERT under `--materialize`.
fn query_table(name: &str, input: &Lowered, connector: &str) -> TableDescriptor {
    let options = BTreeMap::from([("connector".to_string(), connector.to_string())]);
    TableDescriptor {
        name: name.to_string(),
        schema: Arc::new(input.schema.as_arrow().clone()),
        partition_keys: vec![],
        options: Options::new(options),
    }
}

/// The construct a plan node stands for, for "not supported yet" errors.
fn construct(plan: &LogicalPlan) -> String {
    match plan {
        LogicalPlan::Aggregate(_) => "GROUP BY aggregation".into(),
        LogicalPlan::Window(_) => "OVER window function".into(),
        LogicalPlan::Join(_) => "JOIN".into(),
        LogicalPlan::Sort(_) => "ORDER BY".into(),
        LogicalPlan::Limit(_) => "LIMIT".into(),
        LogicalPlan::Union(_) => "UNION".into(),
        LogicalPlan::Distinct(_) => "SELECT DISTINCT".into(),
        LogicalPlan::Values(_) => "VALUES".into(),
        LogicalPlan::EmptyRelation(_) => "a SELECT without FROM".into(),
        LogicalPlan::Unnest(_) => "UNNEST".into(),
        LogicalPlan::Subquery(_) => "a subquery".into(),
        LogicalPlan::RecursiveQuery(_) => "WITH RECURSIVE".into(),
        other => format!(
            "the '{}' plan node",
            other.display().to_string().split(':').next().unwrap_or("?")
        ),
    }
}

fn unsupported(plan: &LogicalPlan) -> Error {
    Error::user(format!("{} is not supported yet", construct(plan)))
}

impl<'a> Lowering<'a> {
    pub fn new(graph: &'a mut JobGraph, parallelism: usize, statement: u64) -> Self {
        Lowering {
            graph,
            parallelism,
            statement,
            props: ExecutionProps::new(),
            counter: 0,
            window_buffer_groups: kernel::ops::window::DEFAULT_BUFFER_GROUPS,
            state_ttl_ms: None,
            joins_in_state_tables: false,
            parallelism_independent: false,
            mini_batch: None,
            split_distinct_buckets: None,
            sink_connector: None,
            reads: Vec::new(),
            writes: Vec::new(),
        }
    }

    pub(crate) fn add(
        &mut self,
        kind_name: &str,
        name: String,
        parallelism: usize,
        kind: NodeKind,
        output: StreamSchema,
    ) -> NodeId {
        self.counter += 1;
        let uid = format!("{:016x}-{}-{}", self.statement, kind_name, self.counter);
        self.graph.add_node(Node {
            uid,
            name,
            parallelism,
            kind,
            output,
        })
    }

    pub(crate) fn physical(&self, e: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(
            e,
            schema,
            &self.props,
            &PhysicalPlanningContext::default(),
        )?)
    }

    /// Lowers an `INSERT INTO` plan: the query, then the target table's sink.
    pub fn insert(&mut self, plan: &LogicalPlan) -> Result<()> {
        let LogicalPlan::Dml(dml) = plan else {
            return Err(Error::internal(format!(
                "expected an INSERT plan, got {}",
                plan.display()
            )));
        };
        if !matches!(
            dml.op,
            WriteOp::Insert(datafusion_expr::dml::InsertOp::Append)
        ) {
            return Err(Error::user(format!(
                "{} is not supported; only INSERT INTO",
                dml.op
            )));
        }
        let Some(target) = dml.target.downcast_ref::<RawTableSource>() else {
            return Err(Error::user(format!(
                "cannot INSERT INTO '{}': it is a view",
                dml.table_name
            )));
        };
        let table = target.table.clone();
        let input = self.lower(&dml.input)?;
        if let Some(redirect) = self.sink_connector.clone() {
            return self.redirected_sink(input, &table.descriptor.name, redirect.as_ref());
        }
        let connector = table.connector.get();
        if self.graph.nodes[input.node].output.is_updating() && !connector.accepts_updates() {
            return Err(Error::user(format!(
                "table '{}' (connector '{}') only takes appended rows, but the query's result \
                 is updated as rows arrive (it is a GROUP BY aggregation or reads one); write \
                 it to a sink that takes updates ('print', 'blackhole'), or run it with \
                 --materialize",
                table.descriptor.name,
                connector.name()
            )));
        }
        if let Some(path) = connector.location(&table.descriptor)? {
            self.writes.push((table.descriptor.name.clone(), path));
        }
        self.add_sink(input, connector, &table.descriptor)
    }

    /// Lowers a bare `SELECT`: its rows go to a `print` sink, as Flink's SQL client shows them.
    pub fn select(&mut self, plan: &LogicalPlan, connectors: &dyn ConnectorLookup) -> Result<()> {
        let input = self.lower(plan)?;
        if let Some(redirect) = self.sink_connector.clone() {
            return self.redirected_sink(input, "select", redirect.as_ref());
        }
        let descriptor = query_table("select", &input, "print");
        let connector = connectors.for_table(&descriptor)?;
        self.add_sink(input, connector.as_ref(), &descriptor)
    }

    /// The sink of table `name` written through `connector` instead of its own, with the
    /// query's columns.
    fn redirected_sink(
        &mut self,
        input: Lowered,
        name: &str,
        connector: &dyn Connector,
    ) -> Result<()> {
        let descriptor = query_table(name, &input, connector.name());
        self.add_sink(input, connector, &descriptor)
    }

    fn add_sink(
        &mut self,
        input: Lowered,
        connector: &dyn Connector,
        table: &TableDescriptor,
    ) -> Result<()> {
        let sink = connector.sink(table)?;
        let upstream = self.graph.nodes[input.node].parallelism;
        let parallelism = connector.sink_parallelism(table)?.unwrap_or(upstream);
        // A sink of another parallelism than its input takes rows round-robin; a sink of one
        // subtask takes them all, in each upstream subtask's order.
        let partitioning = match parallelism {
            p if p == upstream => Partitioning::Forward,
            1 => Partitioning::Single,
            _ => Partitioning::Rebalance,
        };
        let output = StreamSchema::append_only(Arc::new(input.schema.as_arrow().clone()));
        let id = self.add(
            "sink",
            format!("Sink: {}", table.name),
            parallelism,
            NodeKind::Sink(sink),
            output,
        );
        self.graph.connect(input.node, id, 0, partitioning);
        Ok(())
    }

    pub(crate) fn lower(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan),
            LogicalPlan::Projection(_) | LogicalPlan::Filter(_) | LogicalPlan::SubqueryAlias(_) => {
                // A run of stateless nodes becomes one Calc over the run's input.
                let (base, filter, exprs) = flatten(plan)?;
                // The AS OF marker always holds; the optimizer may have copied it below the
                // join (a join key of the other side substituted), where it would cost a filter.
                let (_, filter) = join::split_as_of(filter.as_ref());
                if let LogicalPlan::Window(window) = base {
                    return self.rank(window, filter.as_ref(), &exprs, plan.schema().clone());
                }
                let input = self.lower(base)?;
                if filter.is_none() && is_identity(&exprs, &input.schema) {
                    return Ok(Lowered {
                        node: input.node,
                        schema: plan.schema().clone(),
                        window: input.window,
                    });
                }
                self.calc(input, filter.as_ref(), &exprs, plan.schema().clone())
            }
            LogicalPlan::Aggregate(agg) => self.aggregate(agg),
            LogicalPlan::Join(join) => self.join(join),
            other if window::window_tvf(other).is_some() => Err(Error::user(
                "a window table function must be followed by GROUP BY window_start, \
                 window_end (a window aggregation); other uses are not supported yet",
            )),
            other => Err(unsupported(other)),
        }
    }

    /// Whether `input`'s rows may be updated or deleted later (its edge carries the op column).
    pub(crate) fn is_updating(&self, input: &Lowered) -> bool {
        self.graph.nodes[input.node].output.is_updating()
    }

    /// Refuses an updating `input` to an operator that takes appended rows only.
    pub(crate) fn append_only(&self, input: &Lowered, what: &str) -> Result<()> {
        if self.is_updating(input) {
            return Err(Error::user(format!(
                "{what} over an updating input (the result of a GROUP BY aggregation, or of a \
                 query reading one) is not supported yet"
            )));
        }
        Ok(())
    }

    pub(crate) fn calc(
        &mut self,
        input: Lowered,
        filter: Option<&Expr>,
        exprs: &[Expr],
        out: DFSchemaRef,
    ) -> Result<Lowered> {
        let mut all: Vec<Expr> = filter.into_iter().cloned().collect();
        all.extend(exprs.iter().cloned());
        let (all, watermark_column) = self.current_watermark_calls(&input, all)?;
        let mut schema = input.schema.as_ref().clone();
        if let Some(ty) = &watermark_column {
            let field = Field::new(WATERMARK_COLUMN, ty.clone(), true);
            schema.merge(&DFSchema::from_unqualified_fields(
                vec![field].into(),
                Default::default(),
            )?);
        }
        let mut physical = all
            .iter()
            .map(|e| self.physical(e, &schema))
            .collect::<Result<Vec<_>>>()?;
        let filter = filter.map(|_| physical.remove(0));
        let output: SchemaRef = Arc::new(out.as_arrow().clone());
        let factory = CalcFactory {
            filter,
            projection: physical,
            output: output.clone(),
            watermark_column,
        };
        let parallelism = self.graph.nodes[input.node].parallelism;
        let window = input.window.and_then(|w| w.project(exprs, &input.schema));
        // The rowtime passed through keeps its role (a window's window_time is its rowtime).
        let input_rowtime = self.graph.nodes[input.node].output.event_time;
        let rowtime = window
            .and_then(|w| w.time)
            .or_else(|| projected_position(input_rowtime, exprs, &input.schema));
        let name = if factory.filter.is_some() {
            "Calc (filter, project)"
        } else {
            "Calc (project)"
        };
        let changelog = self.graph.nodes[input.node].output.changelog;
        let id = self.add(
            "calc",
            name.to_string(),
            parallelism,
            NodeKind::Operator(Arc::new(factory)),
            StreamSchema::updating(output, changelog).with_event_time(rowtime),
        );
        self.graph.connect(input.node, id, 0, Partitioning::Forward);
        Ok(Lowered {
            node: id,
            schema: out,
            window,
        })
    }

    /// Rewrites `CURRENT_WATERMARK(rowtime)` calls into reads of the column a Calc appends;
    /// with the type of that column (millisecond timestamps) if there were any.
    fn current_watermark_calls(
        &self,
        input: &Lowered,
        exprs: Vec<Expr>,
    ) -> Result<(Vec<Expr>, Option<DataType>)> {
        let rowtime = self.graph.nodes[input.node].output.event_time;
        let mut calls = Vec::new();
        for e in &exprs {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    if f.func.name() == CURRENT_WATERMARK {
                        calls.push(f.args[0].clone());
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        let Some(first) = calls.first() else {
            return Ok((exprs, None));
        };
        for arg in &calls {
            let column = match arg {
                Expr::Column(c) => input.schema.index_of_column(c).ok(),
                _ => None,
            };
            if column.is_none() || column != rowtime {
                return Err(Error::user(format!(
                    "CURRENT_WATERMARK({arg}): the argument must be the rowtime attribute of the \
                     input (the column its WATERMARK is declared for)"
                )));
            }
        }
        let ty = first.get_type(&input.schema)?;
        let DataType::Timestamp(_, zone) = &ty else {
            return Err(Error::user(format!(
                "CURRENT_WATERMARK({first}) is not a TIMESTAMP"
            )));
        };
        let column = DataType::Timestamp(TimeUnit::Millisecond, zone.clone());
        let read = Expr::Cast(Cast::new(
            Box::new(Expr::Column(Column::from_name(WATERMARK_COLUMN))),
            ty.clone(),
        ));
        let exprs = exprs
            .into_iter()
            .map(|e| {
                e.transform_up(|e| match &e {
                    Expr::ScalarFunction(f) if f.func.name() == CURRENT_WATERMARK => {
                        Ok(Transformed::yes(read.clone()))
                    }
                    _ => Ok(Transformed::no(e)),
                })
                .map(|t| t.data)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((exprs, Some(column)))
    }

    fn scan(&mut self, scan: &datafusion_expr::TableScan) -> Result<Lowered> {
        if scan.source.downcast_ref::<VersionedSource>().is_some() {
            return Err(Error::user(format!(
                "table '{}' FOR SYSTEM_TIME AS OF can only be the right side of a JOIN (a \
                 lookup join), with its conditions in the ON clause",
                scan.table_name.table().trim_start_matches(VERSIONED_PREFIX)
            )));
        }
        let Some(raw) = scan.source.downcast_ref::<RawTableSource>() else {
            return Err(Error::internal(format!(
                "scan of '{}' has no eddy table behind it",
                scan.table_name
            )));
        };
        if scan.fetch.is_some() {
            return Err(Error::internal("scan with a pushed-down LIMIT"));
        }
        let table = raw.table.clone();
        let d = &table.descriptor;
        let parallelism = d
            .options
            .parse::<usize>(&d.name, "scan.parallelism", "a parallelism")?
            .unwrap_or(self.parallelism);
        // The scan's columns: the physical ones, then a computed rowtime the watermark
        // assigner appends (see `FlinkTable::scan_schema`).
        let physical = d.schema.fields().len();
        let wanted: Vec<usize> = scan
            .projection
            .clone()
            .unwrap_or_else(|| (0..table.scan_schema.fields().len()).collect());
        let mut projection: Vec<usize> = wanted.iter().copied().filter(|&i| i < physical).collect();
        // The watermark and the rowtime may read columns the query does not: read them too,
        // drop them after.
        if let Some(wm) = &table.watermark {
            for c in wm
                .expr
                .column_refs()
                .into_iter()
                .chain(wm.rowtime_expr.iter().flat_map(|e| e.column_refs()))
            {
                if wm.rowtime_expr.is_some() && c.name == wm.rowtime {
                    continue; // the computed rowtime
                }
                let idx = d.schema.index_of(&c.name).map_err(|_| {
                    Error::user(format!(
                        "watermark of '{}' reads unknown column '{}'",
                        d.name, c.name
                    ))
                })?;
                if !projection.contains(&idx) {
                    projection.push(idx);
                }
            }
        }
        let connector = table.connector.get();
        let filters = scan
            .filters
            .iter()
            .map(|f| {
                column_filter(f, connector.filterable_columns()).ok_or_else(|| {
                    Error::internal(format!(
                        "filter {f} was pushed into a scan that cannot apply it"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(path) = connector.location(d)? {
            self.reads.push((d.name.clone(), path));
        }
        let source = connector.source(d, Some(&projection), &filters)?;
        let read: SchemaRef = Arc::new(d.schema.project(&projection)?);
        let out = StreamSchema::append_only(read.clone());
        let mut node = self.add(
            "source",
            format!("Source: {}", d.name),
            parallelism,
            NodeKind::Source(source),
            out,
        );
        if let Some(wm) = &table.watermark {
            let unqualified = |s: &SchemaRef| DFSchema::try_from(Schema::clone(s));
            let rowtime = match &wm.rowtime_expr {
                Some(e) => Some(self.physical(e, &unqualified(&read)?)?),
                None => None,
            };
            let extended: SchemaRef = match rowtime {
                Some(_) => {
                    let mut fields = read.fields().to_vec();
                    fields.push(table.scan_schema.fields()[physical].clone());
                    Arc::new(Schema::new(fields))
                }
                None => read.clone(),
            };
            let expr = self.physical(&wm.expr, &unqualified(&extended)?)?;
            // Each wanted column's place in the extended batch.
            let place: Vec<usize> = wanted
                .iter()
                .map(|&i| {
                    if i < physical {
                        projection.iter().position(|&p| p == i).expect("read")
                    } else {
                        projection.len()
                    }
                })
                .collect();
            let identity = place.len() == extended.fields().len()
                && place.iter().enumerate().all(|(i, &p)| i == p);
            let passed: SchemaRef = Arc::new(extended.project(&place)?);
            let event_time = passed.index_of(&wm.rowtime).ok();
            let factory = WatermarkAssignerFactory {
                expr,
                rowtime,
                extended,
                project: (!identity).then_some(place),
                delay_ms: wm.delay_ms,
            };
            let out = StreamSchema::append_only(passed).with_event_time(event_time);
            let id = self.add(
                "watermark",
                format!("WatermarkAssigner: {}", d.name),
                parallelism,
                NodeKind::Operator(Arc::new(factory)),
                out,
            );
            self.graph.connect(node, id, 0, Partitioning::Forward);
            node = id;
        }
        Ok(Lowered {
            node,
            schema: scan.projected_schema.clone(),
            window: None,
        })
    }
}

/// Cheap enough to compute twice: a column, a literal, or a field of one.
fn is_cheap(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(..) => true,
        Expr::Alias(a) => is_cheap(&a.expr),
        Expr::ScalarFunction(f) if f.func.name() == "get_field" => f.args.iter().all(is_cheap),
        _ => false,
    }
}

/// Replaces references to the columns of `schema` in `e` with `subs[column index]`.
pub(crate) fn substitute(e: Expr, schema: &DFSchema, subs: &[Expr]) -> Result<Expr> {
    Ok(e.transform(|x| match &x {
        Expr::Column(c) => match schema.index_of_column(c) {
            Ok(i) => Ok(Transformed::yes(subs[i].clone())),
            Err(_) => Ok(Transformed::no(x)),
        },
        _ => Ok(Transformed::no(x)),
    })?
    .data)
}

/// How often each column of `schema` is referenced by `exprs` and `filter`.
fn reference_counts(exprs: &[Expr], filter: &Option<Expr>, schema: &DFSchema) -> Vec<usize> {
    let mut counts = vec![0; schema.fields().len()];
    for e in exprs.iter().chain(filter) {
        let _ = e.apply(|x| {
            if let Expr::Column(c) = x {
                if let Ok(i) = schema.index_of_column(c) {
                    counts[i] += 1;
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    counts
}

/// Flattens a run of projections, filters and aliases at the top of `plan` into one filter
/// and one projection over the run's input, which is returned first. The run stops before a
/// projection whose costly expression would then be computed more than once.
pub(crate) fn flatten(plan: &LogicalPlan) -> Result<(&LogicalPlan, Option<Expr>, Vec<Expr>)> {
    let mut exprs: Vec<Expr> = plan
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let mut filter: Option<Expr> = None;
    let mut cur = plan;
    loop {
        let (schema, subs, next): (&DFSchema, Vec<Expr>, &LogicalPlan) = match cur {
            LogicalPlan::Projection(p) => {
                let subs: Vec<Expr> = p.expr.iter().map(|e| e.clone().unalias()).collect();
                let refs = reference_counts(&exprs, &filter, &p.schema);
                if refs.iter().zip(&subs).any(|(n, e)| *n > 1 && !is_cheap(e)) {
                    break;
                }
                (&p.schema, subs, &p.input)
            }
            LogicalPlan::SubqueryAlias(a) => {
                let subs = a
                    .input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                (&a.schema, subs, &a.input)
            }
            LogicalPlan::Filter(f) => {
                // Rows pass only if they pass both; the filter keeps its input's columns.
                let p = f.predicate.clone();
                filter = Some(match filter.take() {
                    None => p,
                    Some(outer) => and(p, outer),
                });
                cur = &f.input;
                continue;
            }
            _ => break,
        };
        exprs = exprs
            .into_iter()
            .map(|e| substitute(e, schema, &subs))
            .collect::<Result<_>>()?;
        filter = filter.map(|f| substitute(f, schema, &subs)).transpose()?;
        cur = next;
    }
    Ok((cur, filter, exprs))
}

/// True when `exprs` select the input's columns in order, unchanged (renames allowed: the
/// output names come from the plan's schema, the data is the same).
pub(crate) fn is_identity(exprs: &[Expr], input: &DFSchema) -> bool {
    fn column(e: &Expr) -> Option<&Column> {
        match e {
            Expr::Column(c) => Some(c),
            Expr::Alias(a) => column(&a.expr),
            _ => None,
        }
    }
    exprs.len() == input.fields().len()
        && exprs
            .iter()
            .enumerate()
            .all(|(i, e)| column(e).and_then(|c| input.index_of_column(c).ok()) == Some(i))
}
