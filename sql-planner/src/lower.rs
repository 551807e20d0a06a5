//! Lowering: an optimized DataFusion logical plan → nodes of the kernel's job graph.
//!
//! Scans become sources (with a watermark assigner when the table declares one), filters and
//! projections become Calc operators (a projection over a filter is fused into one), and the
//! `INSERT` target becomes a sink. Operators of equal parallelism joined by forward edges are
//! chained by the runtime, so they cost nested calls, not queues. Plan nodes eddy does not run
//! yet are refused with the construct's name.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion_common::{DFSchema, DFSchemaRef};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{Expr, LogicalPlan, WriteOp};
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr};
use kernel::connectors::{Options, TableDescriptor};
use kernel::graph::{JobGraph, Node, NodeId, NodeKind, Partitioning};
use kernel::ops::{CalcFactory, WatermarkAssignerFactory};
use kernel::types::StreamSchema;
use kernel::{Error, Result};

use crate::catalog::RawTableSource;

pub(crate) struct Lowering<'a> {
    pub graph: &'a mut JobGraph,
    pub parallelism: usize,
    /// Hash of the statement's text, for stable operator uids.
    pub statement: u64,
    props: ExecutionProps,
    counter: usize,
}

/// A lowered plan node: the graph node producing it and its logical schema.
struct Lowered {
    node: NodeId,
    schema: DFSchemaRef,
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
        }
    }

    fn add(
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

    fn physical(&self, e: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
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
        let sink = table.connector.get().sink(&table.descriptor)?;
        let input = self.lower(&dml.input)?;
        self.add_sink(input, sink, &table.descriptor)
    }

    /// Lowers a bare `SELECT`: its rows go to a `print` sink, as Flink's SQL client shows them.
    pub fn select(
        &mut self,
        plan: &LogicalPlan,
        registry: &kernel::connectors::ConnectorRegistry,
    ) -> Result<()> {
        let input = self.lower(plan)?;
        let mut options = BTreeMap::new();
        options.insert("connector".to_string(), "print".to_string());
        let descriptor = TableDescriptor {
            name: "select".into(),
            schema: Arc::new(input.schema.as_arrow().clone()),
            partition_keys: vec![],
            options: Options::new(options),
        };
        let sink = registry.for_table(&descriptor)?.sink(&descriptor)?;
        self.add_sink(input, sink, &descriptor)
    }

    fn add_sink(
        &mut self,
        input: Lowered,
        sink: Arc<dyn kernel::operator::OperatorFactory>,
        table: &TableDescriptor,
    ) -> Result<()> {
        let upstream = self.graph.nodes[input.node].parallelism;
        let parallelism = table
            .options
            .parse::<usize>(&table.name, "sink.parallelism", "a parallelism")?
            .unwrap_or(upstream);
        let partitioning = if parallelism == upstream {
            Partitioning::Forward
        } else {
            Partitioning::Rebalance
        };
        let output = StreamSchema::append_only(Arc::new(input.schema.as_arrow().clone()));
        let id = self.add(
            "sink",
            format!("Sink: {}", table.name),
            parallelism,
            NodeKind::Operator(sink),
            output,
        );
        self.graph.connect(input.node, id, 0, partitioning);
        Ok(())
    }

    fn lower(&mut self, plan: &LogicalPlan) -> Result<Lowered> {
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan),
            LogicalPlan::SubqueryAlias(a) => {
                let inner = self.lower(&a.input)?;
                Ok(Lowered {
                    node: inner.node,
                    schema: a.schema.clone(),
                })
            }
            LogicalPlan::Filter(f) => {
                let input = self.lower(&f.input)?;
                let identity: Vec<Expr> = f
                    .input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                self.calc(
                    input,
                    Some(&f.predicate),
                    &identity,
                    f.input.schema().clone(),
                )
            }
            LogicalPlan::Projection(p) => {
                if let LogicalPlan::Filter(f) = p.input.as_ref() {
                    let input = self.lower(&f.input)?;
                    return self.calc(input, Some(&f.predicate), &p.expr, p.schema.clone());
                }
                let input = self.lower(&p.input)?;
                if is_identity(&p.expr, &input.schema) {
                    return Ok(Lowered {
                        node: input.node,
                        schema: p.schema.clone(),
                    });
                }
                self.calc(input, None, &p.expr, p.schema.clone())
            }
            other => Err(unsupported(other)),
        }
    }

    fn calc(
        &mut self,
        input: Lowered,
        filter: Option<&Expr>,
        exprs: &[Expr],
        out: DFSchemaRef,
    ) -> Result<Lowered> {
        let filter = filter
            .map(|f| self.physical(f, &input.schema))
            .transpose()?;
        let projection = exprs
            .iter()
            .map(|e| self.physical(e, &input.schema))
            .collect::<Result<Vec<_>>>()?;
        let output: SchemaRef = Arc::new(out.as_arrow().clone());
        let factory = CalcFactory {
            filter,
            projection,
            output: output.clone(),
        };
        let parallelism = self.graph.nodes[input.node].parallelism;
        let name = if factory.filter.is_some() {
            "Calc (filter, project)"
        } else {
            "Calc (project)"
        };
        let id = self.add(
            "calc",
            name.to_string(),
            parallelism,
            NodeKind::Operator(Arc::new(factory)),
            StreamSchema::append_only(output),
        );
        self.graph.connect(input.node, id, 0, Partitioning::Forward);
        Ok(Lowered {
            node: id,
            schema: out,
        })
    }

    fn scan(&mut self, scan: &datafusion_expr::TableScan) -> Result<Lowered> {
        let Some(raw) = scan.source.downcast_ref::<RawTableSource>() else {
            return Err(Error::internal(format!(
                "scan of '{}' has no eddy table behind it",
                scan.table_name
            )));
        };
        if !scan.filters.is_empty() || scan.fetch.is_some() {
            return Err(Error::internal("scan with pushed-down filters or fetch"));
        }
        let table = raw.table.clone();
        let d = &table.descriptor;
        let parallelism = d
            .options
            .parse::<usize>(&d.name, "scan.parallelism", "a parallelism")?
            .unwrap_or(self.parallelism);
        let mut projection: Vec<usize> = scan
            .projection
            .clone()
            .unwrap_or_else(|| (0..d.schema.fields().len()).collect());
        let wanted = projection.len();
        // The watermark may read columns the query does not: read them too, drop them after.
        if let Some(wm) = &table.watermark {
            for c in wm.expr.column_refs() {
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
        let source = table.connector.get().source(d, Some(&projection))?;
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
            let unqualified = DFSchema::try_from(Schema::clone(&read))?;
            let expr = self.physical(&wm.expr, &unqualified)?;
            let project = (projection.len() > wanted).then(|| (0..wanted).collect());
            let passed: SchemaRef = Arc::new(d.schema.project(&projection[..wanted])?);
            let rowtime = passed.index_of(&wm.rowtime).ok();
            let factory = WatermarkAssignerFactory { expr, project };
            let out = StreamSchema::append_only(passed).with_event_time(rowtime);
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
        })
    }
}

/// True when `exprs` select the input's columns in order, unchanged (renames allowed: the
/// output names come from the plan's schema, the data is the same).
fn is_identity(exprs: &[Expr], input: &DFSchema) -> bool {
    fn column(e: &Expr) -> Option<&datafusion_common::Column> {
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
