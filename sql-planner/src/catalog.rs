//! The session catalog: tables, views and functions, seen by DataFusion's SQL planner through
//! `ContextProvider`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{not_impl_err, plan_err, Column, Result as DfResult, TableReference};
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::{
    AggregateUDF, Expr, HigherOrderUDF, LogicalPlan, LogicalPlanBuilder, ScalarUDF,
    TableProviderFilterPushDown, TableSource, WindowUDF,
};
use datafusion_optimizer::analyzer::Analyzer;
use kernel::connector::{ColumnFilter, Connector, ConnectorLookup, Options, TableDescriptor};

use crate::script::{ColumnDef, TableDef};

/// A `CREATE TABLE` after planning its columns.
#[derive(Debug)]
pub(crate) struct FlinkTable {
    pub descriptor: TableDescriptor,
    pub connector: Arc<dyn ConnectorHandle>,
    /// Physical columns plus computed ones, over the raw scan; `None` without computed columns.
    pub plan: Option<LogicalPlan>,
    pub watermark: Option<WatermarkSpec>,
    /// What the raw scan yields: the physical columns, then a computed rowtime column (which
    /// the watermark assigner computes, so that the rowtime is a column from the source on,
    /// as a time attribute is in Flink).
    pub scan_schema: SchemaRef,
    /// `PRIMARY KEY (…) NOT ENFORCED`: what makes a table with a watermark a versioned table.
    pub primary_key: Vec<String>,
}

/// `Connector` is not `Debug`; this wrapper is.
pub(crate) trait ConnectorHandle: Send + Sync + std::fmt::Debug {
    fn get(&self) -> &dyn Connector;
}

pub(crate) struct Handle(pub Arc<dyn Connector>);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connector {}", self.0.name())
    }
}

impl ConnectorHandle for Handle {
    fn get(&self) -> &dyn Connector {
        self.0.as_ref()
    }
}

/// `WATERMARK FOR rowtime AS expr`, with computed columns expanded so the expression reads only
/// physical columns and the rowtime (unqualified).
#[derive(Debug, Clone)]
pub(crate) struct WatermarkSpec {
    pub rowtime: String,
    /// A computed rowtime's expression over physical columns (unqualified).
    pub rowtime_expr: Option<Expr>,
    /// The watermark is `max(expr) - delay_ms`.
    pub expr: Expr,
    pub delay_ms: i64,
}

/// Splits `x - INTERVAL '…'` (a fixed interval, no months) into `x` and the interval in
/// milliseconds; any other expression is kept whole with no delay.
fn split_delay(e: Expr) -> (Expr, i64) {
    use datafusion_common::ScalarValue;
    if let Expr::BinaryExpr(b) = &e {
        if b.op == datafusion_expr::Operator::Minus {
            let ms = match b.right.as_ref() {
                Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
                    (v.nanoseconds % 1_000_000 == 0)
                        .then(|| v.days as i64 * 86_400_000 + v.nanoseconds / 1_000_000)
                }
                Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
                    Some(v.days as i64 * 86_400_000 + v.milliseconds as i64)
                }
                _ => None,
            };
            if let Some(ms) = ms.filter(|ms| *ms >= 0) {
                return (b.left.as_ref().clone(), ms);
            }
        }
    }
    (e, 0)
}

/// What DataFusion scans for a table: its physical columns (and a computed rowtime).
#[derive(Debug)]
pub(crate) struct RawTableSource {
    pub table: Arc<FlinkTable>,
}

impl TableSource for RawTableSource {
    fn schema(&self) -> SchemaRef {
        self.table.scan_schema.clone()
    }

    /// Filters the connector can apply while reading are pushed down as Inexact: the source
    /// may skip rows, and the filter still runs after it.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let columns = self.table.connector.get().filterable_columns();
        Ok(filters
            .iter()
            .map(|f| match column_filter(f, columns) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }
}

/// What DataFusion scans for `t FOR SYSTEM_TIME AS OF …`: the table as of a time, which only a
/// lookup join (the scan on the right of a JOIN) can serve. The rewrite names such a reference
/// [`VERSIONED_PREFIX`] + the table's name.
#[derive(Debug)]
pub(crate) struct VersionedSource {
    pub table: Arc<FlinkTable>,
}

/// The name prefix marking a table referenced `FOR SYSTEM_TIME AS OF`.
pub(crate) const VERSIONED_PREFIX: &str = "$as_of$";

impl TableSource for VersionedSource {
    fn schema(&self) -> SchemaRef {
        self.table.descriptor.schema.clone()
    }
}

/// `column = literal`, `literal = column` or `column IN (literals)` on one of `columns`
/// (casts on the column are looked through), as a connector filter.
pub(crate) fn column_filter(e: &Expr, columns: &[&str]) -> Option<ColumnFilter> {
    fn column(e: &Expr) -> Option<&Column> {
        match e {
            Expr::Column(c) => Some(c),
            Expr::Cast(c) => column(&c.expr),
            Expr::TryCast(c) => column(&c.expr),
            _ => None,
        }
    }
    let (col, values) = match e {
        Expr::BinaryExpr(b) if b.op == datafusion_expr::Operator::Eq => {
            match (b.left.as_ref(), b.right.as_ref()) {
                (l, Expr::Literal(v, _)) => (column(l)?, vec![v.clone()]),
                (Expr::Literal(v, _), r) => (column(r)?, vec![v.clone()]),
                _ => return None,
            }
        }
        Expr::InList(l) if !l.negated => {
            let values = l
                .list
                .iter()
                .map(|x| match x {
                    Expr::Literal(v, _) => Some(v.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            (column(&l.expr)?, values)
        }
        _ => return None,
    };
    columns.contains(&col.name.as_str()).then(|| ColumnFilter {
        column: col.name.clone(),
        values,
    })
}

/// A view, or a table with computed columns: DataFusion inlines its plan.
#[derive(Debug)]
pub(crate) struct ViewSource {
    pub plan: LogicalPlan,
    pub schema: SchemaRef,
}

impl TableSource for ViewSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn get_logical_plan(&self) -> Option<std::borrow::Cow<'_, LogicalPlan>> {
        Some(std::borrow::Cow::Borrowed(&self.plan))
    }
}

pub(crate) struct Catalog {
    pub tables: HashMap<String, Arc<FlinkTable>>,
    pub views: HashMap<String, Arc<ViewSource>>,
    pub functions: HashMap<String, Arc<ScalarUDF>>,
    pub aggregates: HashMap<String, Arc<AggregateUDF>>,
    pub options: ConfigOptions,
    pub planners: Vec<Arc<dyn ExprPlanner>>,
}

impl Catalog {
    pub fn new() -> Self {
        let mut functions = HashMap::new();
        for f in datafusion_functions::all_default_functions() {
            for name in std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned()) {
                functions.insert(name, f.clone());
            }
        }
        for f in crate::functions::flink_builtins() {
            functions.insert(f.name().to_string(), f);
        }
        let mut aggregates = HashMap::new();
        let flink_aggregates = [crate::functions::FlinkAvg::udaf()];
        for f in datafusion_functions_aggregate::all_default_aggregate_functions()
            .into_iter()
            .chain(flink_aggregates)
        {
            for name in std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned()) {
                aggregates.insert(name, f.clone());
            }
        }
        let mut options = ConfigOptions::default();
        options.sql_parser.enable_ident_normalization = false;
        options.sql_parser.parse_float_as_decimal = true;
        let planners: Vec<Arc<dyn ExprPlanner>> = vec![
            Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
            Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
        ];
        Catalog {
            tables: HashMap::new(),
            views: HashMap::new(),
            functions,
            aggregates,
            options,
            planners,
        }
    }

    fn exists(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.views.contains_key(name)
    }

    /// Plans a table declaration; `None` when it exists and `IF NOT EXISTS` was given.
    /// `plan_expr` plans a column expression against a schema.
    pub fn table_from_def(
        &self,
        def: &TableDef,
        registry: &dyn ConnectorLookup,
        plan_expr: &dyn Fn(&sqlparser::ast::Expr, &datafusion_common::DFSchema) -> DfResult<Expr>,
    ) -> kernel::Result<Option<FlinkTable>> {
        if self.exists(&def.name) {
            if def.if_not_exists {
                return Ok(None);
            }
            return Err(kernel::Error::user(format!(
                "table or view '{}' already exists",
                def.name
            )));
        }
        let physical: Vec<Field> = def
            .columns
            .iter()
            .filter_map(|c| match c {
                ColumnDef::Physical {
                    name,
                    data_type,
                    nullable,
                } => Some(Field::new(name, data_type.clone(), *nullable)),
                ColumnDef::Computed { .. } => None,
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for c in &def.columns {
            if !seen.insert(c.name()) {
                return Err(kernel::Error::user(format!(
                    "table '{}' declares column '{}' twice",
                    def.name,
                    c.name()
                )));
            }
        }
        let descriptor = TableDescriptor {
            name: def.name.clone(),
            schema: Arc::new(Schema::new(physical)),
            partition_keys: def.partition_keys.clone(),
            options: Options::new(def.options.clone()).with_legacy_keys_renamed(),
        };
        let connector = registry.for_table(&descriptor)?;
        let mut table = FlinkTable {
            scan_schema: descriptor.schema.clone(),
            primary_key: def.primary_key.clone(),
            descriptor,
            connector: Arc::new(Handle(connector)),
            plan: None,
            watermark: None,
        };

        let has_computed = def
            .columns
            .iter()
            .any(|c| matches!(c, ColumnDef::Computed { .. }));
        if has_computed || def.watermark.is_some() {
            // Plan computed columns over a scan of the physical ones.
            let raw = Arc::new(RawTableSource {
                table: Arc::new(FlinkTable {
                    plan: None,
                    watermark: None,
                    ..table.shallow()
                }),
            });
            let scan = LogicalPlanBuilder::scan(def.name.clone(), raw, None)?.build()?;
            let with_computed = computed_columns(def, scan, None, plan_expr)?;
            if let Some((rowtime, wm)) = &def.watermark {
                let field = with_computed
                    .schema()
                    .field_with_unqualified_name(rowtime)
                    .map_err(|_| {
                        kernel::Error::user(format!(
                            "WATERMARK FOR '{rowtime}': table '{}' has no such column",
                            def.name
                        ))
                    })?;
                if !matches!(field.data_type(), DataType::Timestamp(..)) {
                    return Err(kernel::Error::user(format!(
                        "WATERMARK FOR '{rowtime}': the rowtime column must be a TIMESTAMP, not {}",
                        kernel::types::sql_type_name(field.data_type())
                    )));
                }
                let e = plan_expr(wm, with_computed.schema()).map_err(|e| {
                    kernel::Error::user(format!("watermark of table '{}': {e}", def.name))
                })?;
                // Type coercion (INT = BIGINT, timestamp - interval) happens in the analyzer:
                // run it over the watermark and the computed columns it may read.
                let probe = LogicalPlanBuilder::from(with_computed.clone())
                    .project(vec![e.alias("__watermark")])?
                    .build()?;
                let analyzed =
                    Analyzer::new().execute_and_check(probe, &self.options, |_, _| {})?;
                let (wm_expr, mut computed) = coerced_exprs(&analyzed)?;
                let rowtime_expr = match computed.remove(rowtime) {
                    Some(e) => Some(expand_computed(e, &computed)?),
                    None => None,
                };
                let expanded = expand_computed(wm_expr, &computed)?;
                let (expr, delay_ms) = split_delay(expanded);
                if rowtime_expr.is_some() {
                    // The raw scan yields the rowtime; the table's plan reads it as a column.
                    let mut fields = table.descriptor.schema.fields().to_vec();
                    fields.push(Arc::new(field.as_ref().clone().with_name(rowtime)));
                    table.scan_schema = Arc::new(Schema::new(fields));
                    let raw = Arc::new(RawTableSource {
                        table: Arc::new(table.shallow()),
                    });
                    let scan = LogicalPlanBuilder::scan(def.name.clone(), raw, None)?.build()?;
                    table.plan = Some(computed_columns(def, scan, Some(rowtime), plan_expr)?);
                }
                table.watermark = Some(WatermarkSpec {
                    rowtime: rowtime.clone(),
                    rowtime_expr,
                    expr,
                    delay_ms,
                });
            }
            if has_computed && table.plan.is_none() {
                table.plan = Some(with_computed);
            }
        }
        Ok(Some(table))
    }

    pub fn add_view(
        &mut self,
        name: &str,
        plan: LogicalPlan,
        if_not_exists: bool,
    ) -> kernel::Result<()> {
        if self.exists(name) {
            if if_not_exists {
                return Ok(());
            }
            return Err(kernel::Error::user(format!(
                "table or view '{name}' already exists"
            )));
        }
        let schema = Arc::new(plan.schema().as_arrow().clone());
        self.views
            .insert(name.to_string(), Arc::new(ViewSource { plan, schema }));
        Ok(())
    }
}

impl FlinkTable {
    /// A copy sharing the descriptor and connector, for the raw scan's source.
    fn shallow(&self) -> FlinkTable {
        FlinkTable {
            descriptor: self.descriptor.clone(),
            connector: self.connector.clone(),
            plan: None,
            watermark: None,
            scan_schema: self.scan_schema.clone(),
            primary_key: self.primary_key.clone(),
        }
    }
}

/// The table's columns in declared order over `scan`: physical ones read, computed ones
/// planned, except `scanned` (a computed rowtime the scan yields), which is read too.
fn computed_columns(
    def: &TableDef,
    scan: LogicalPlan,
    scanned: Option<&String>,
    plan_expr: &dyn Fn(&sqlparser::ast::Expr, &datafusion_common::DFSchema) -> DfResult<Expr>,
) -> kernel::Result<LogicalPlan> {
    let mut exprs = Vec::new();
    let column = |name: &str| {
        Expr::Column(Column::new(
            Some(TableReference::bare(def.name.clone())),
            name,
        ))
    };
    for c in &def.columns {
        match c {
            ColumnDef::Physical { name, .. } => exprs.push(column(name)),
            ColumnDef::Computed { name, .. } if Some(name) == scanned => exprs.push(column(name)),
            ColumnDef::Computed { name, expr } => {
                let e = plan_expr(expr, scan.schema()).map_err(|e| {
                    kernel::Error::user(format!(
                        "computed column '{name}' of table '{}': {e}",
                        def.name
                    ))
                })?;
                exprs.push(e.alias(name));
            }
        }
    }
    Ok(LogicalPlanBuilder::from(scan).project(exprs)?.build()?)
}

/// From an analyzed `Projection(watermark) ← Projection(columns) ← scan`: the watermark
/// expression and the computed columns by name, all type-coerced.
fn coerced_exprs(analyzed: &LogicalPlan) -> DfResult<(Expr, HashMap<String, Expr>)> {
    let LogicalPlan::Projection(outer) = analyzed else {
        return plan_err!("unexpected watermark plan");
    };
    let LogicalPlan::Projection(inner) = outer.input.as_ref() else {
        return plan_err!("unexpected table plan");
    };
    let wm = outer.expr[0].clone().unalias();
    let mut computed = HashMap::new();
    for e in &inner.expr {
        if let Expr::Alias(a) = e {
            computed.insert(a.name.clone(), a.expr.as_ref().clone());
        }
    }
    Ok((wm, computed))
}

/// Replaces references to computed columns with their expressions and drops qualifiers.
fn expand_computed(e: Expr, computed: &HashMap<String, Expr>) -> DfResult<Expr> {
    let expanded = e
        .transform(|e| match &e {
            Expr::Column(c) if computed.contains_key(&c.name) => {
                Ok(Transformed::yes(computed[&c.name].clone()))
            }
            _ => Ok(Transformed::no(e)),
        })?
        .data;
    Ok(expanded
        .transform(|e| match &e {
            Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
                Column::new_unqualified(&c.name),
            ))),
            _ => Ok(Transformed::no(e)),
        })?
        .data)
}

impl ContextProvider for Catalog {
    fn get_table_source(&self, name: TableReference) -> DfResult<Arc<dyn TableSource>> {
        let t = name.table();
        if let Some(t) = t.strip_prefix(VERSIONED_PREFIX) {
            return match self.tables.get(t) {
                // A bounded table is looked up (a lookup join); one with a watermark is a
                // versioned table (an event-time temporal join).
                Some(table) if table.plan.is_none() => Ok(Arc::new(VersionedSource {
                    table: table.clone(),
                })),
                Some(_) => not_impl_err!(
                    "FOR SYSTEM_TIME AS OF a table with computed columns ('{t}') is not \
                     supported yet"
                ),
                None if self.views.contains_key(t) => not_impl_err!(
                    "FOR SYSTEM_TIME AS OF a view ('{t}') is not supported yet: name a table"
                ),
                None => plan_err!("table '{t}' not found"),
            };
        }
        if let Some(v) = self.views.get(t) {
            return Ok(v.clone());
        }
        if let Some(table) = self.tables.get(t) {
            if let Some(plan) = &table.plan {
                let raw = Arc::new(RawTableSource {
                    table: table.clone(),
                });
                // Re-root the computed projection on a scan whose source is the full table.
                let rebuilt = rebase_scan(plan, raw)?;
                let schema = Arc::new(rebuilt.schema().as_arrow().clone());
                return Ok(Arc::new(ViewSource {
                    plan: rebuilt,
                    schema,
                }));
            }
            return Ok(Arc::new(RawTableSource {
                table: table.clone(),
            }));
        }
        let mut known: Vec<&String> = self.tables.keys().chain(self.views.keys()).collect();
        known.sort();
        let known: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
        plan_err!(
            "table or view '{t}' not found; known: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    }

    fn get_table_function_source(
        &self,
        name: &str,
        args: Vec<Expr>,
    ) -> DfResult<Arc<dyn TableSource>> {
        crate::window_tvf::window_tvf_source(name, &args, &|t| {
            self.get_table_source(TableReference::bare(t))
        })
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.functions
            .get(name)
            .or_else(|| self.functions.get(&name.to_ascii_lowercase()))
            .cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregates
            .get(name)
            .or_else(|| self.aggregates.get(&name.to_ascii_lowercase()))
            .cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        name.eq_ignore_ascii_case(crate::functions::ROW_NUMBER)
            .then(crate::functions::RowNumber::udwf)
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.functions.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        vec![]
    }

    fn udaf_names(&self) -> Vec<String> {
        self.aggregates.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        vec![crate::functions::ROW_NUMBER.to_string()]
    }
}

/// The same plan with its table scan's source replaced (the scan reads the full table entry).
fn rebase_scan(plan: &LogicalPlan, raw: Arc<RawTableSource>) -> DfResult<LogicalPlan> {
    Ok(plan
        .clone()
        .transform(|p| match p {
            LogicalPlan::TableScan(mut s) => {
                s.source = raw.clone();
                Ok(Transformed::yes(LogicalPlan::TableScan(s)))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data)
}
