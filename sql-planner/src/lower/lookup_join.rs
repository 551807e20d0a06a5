//! Lowering of lookup joins: `stream JOIN t FOR SYSTEM_TIME AS OF stream.proc_time ON …`, where
//! `t` is a bounded table (Flink's processing-time temporal join against a lookup source, as
//! Nexmark q13 enriches bids from a side-input file). The stream stays where it is (no
//! exchange): every subtask loads the table and looks its rows up.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::{DFSchema, JoinType};
use datafusion_expr::{Expr, Join, LogicalPlan, Operator, TableScan};
use datafusion_physical_expr::expressions::BinaryExpr;
use kernel::connector::parse_duration_ms;
use kernel::graph::{NodeKind, Partitioning};
use kernel::ops::lookup_join::LookupJoinFactory;
use kernel::types::StreamSchema;
use kernel::{Error, Result};

use crate::catalog::VersionedSource;
use crate::functions::is_proctime;
use crate::lower::join::{column_index, split_as_of};
use crate::lower::{Lowered, Lowering};

/// How long a loaded lookup table is used before it is read again, when the table does not
/// say (`lookup.join.cache.ttl`; Flink's default for filesystem tables).
const DEFAULT_CACHE_TTL_MS: i64 = 60 * 60 * 1000;

/// The scan of a table referenced `FOR SYSTEM_TIME AS OF`, if `plan` is one (under aliases,
/// and under filters the optimizer pushed down onto the table, which are collected).
pub(crate) fn versioned_scan<'p>(
    plan: &'p LogicalPlan,
    filters: &mut Vec<(&'p Expr, &'p DFSchema)>,
) -> Option<(&'p TableScan, &'p VersionedSource)> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => versioned_scan(&a.input, filters),
        LogicalPlan::Filter(f) => {
            filters.push((&f.predicate, f.input.schema()));
            versioned_scan(&f.input, filters)
        }
        LogicalPlan::TableScan(s) => s.source.downcast_ref::<VersionedSource>().map(|v| (s, v)),
        _ => None,
    }
}

impl Lowering<'_> {
    /// A lookup join: `join.right` is the looked-up table's scan.
    pub(crate) fn lookup_join(
        &mut self,
        join: &Join,
        scan: &TableScan,
        versioned: &VersionedSource,
        table_filters: &[(&Expr, &DFSchema)],
    ) -> Result<Lowered> {
        let d = &versioned.table.descriptor;
        let left_outer = match join.join_type {
            JoinType::Inner => false,
            JoinType::Left => true,
            other => {
                return Err(Error::user(format!(
                    "a {other} join with table '{}' FOR SYSTEM_TIME AS OF: a lookup join is \
                     INNER or LEFT",
                    d.name
                )))
            }
        };
        if join.on.is_empty() {
            return Err(Error::user(format!(
                "a lookup join needs an equality between the stream and a column of table '{}' \
                 (FOR SYSTEM_TIME AS OF)",
                d.name
            )));
        }
        let left = self.lower(&join.left)?;
        // As in Flink, AS OF names the stream's processing-time attribute: the table is read
        // as it is when each row arrives.
        let (as_of, _) = split_as_of(join.filter.as_ref());
        if let Some(e) = as_of {
            let proctime =
                column_index(&e, &left.schema).is_some_and(|c| is_proctime(left.schema.field(c)));
            if !proctime {
                return Err(Error::user(format!(
                    "a lookup join with table '{}' must be FOR SYSTEM_TIME AS OF the left \
                     input's processing-time attribute (a PROCTIME() column), not '{e}'; an \
                     event-time temporal join needs '{}' to have a PRIMARY KEY and a watermark",
                    d.name, d.name
                )));
            }
        }
        let right_schema: &DFSchema = join.right.schema();
        let all: Vec<usize> = (0..d.schema.fields().len()).collect();
        let projection = scan.projection.clone().unwrap_or(all);
        let table_schema: SchemaRef = Arc::new(d.schema.project(&projection)?);
        let larrow = Arc::new(left.schema.as_arrow().clone());
        let (mut stream_keys, mut table_keys, mut fields) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (l, r)) in join.on.iter().enumerate() {
            let pl = self.physical(l, &left.schema)?;
            let pr = self.physical(r, right_schema)?;
            fields.push(Field::new(format!("$key{i}"), pl.data_type(&larrow)?, true));
            stream_keys.push(pl);
            table_keys.push(pr);
        }
        let filter = self.join_condition(join, &left, right_schema)?;
        // Filters over the table alone read the scan's columns, in the scan's order.
        let table_filter = table_filters
            .iter()
            .map(|(f, schema)| self.physical(f, schema))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .reduce(|a, b| Arc::new(BinaryExpr::new(a, Operator::And, b)) as _);
        let reload_after_ms = match d.options.get("lookup.join.cache.ttl") {
            None => Some(DEFAULT_CACHE_TTL_MS),
            Some(v) => {
                let ms = parse_duration_ms(v).ok_or_else(|| {
                    Error::user(format!(
                        "table '{}': option 'lookup.join.cache.ttl' = '{v}' is not a duration",
                        d.name
                    ))
                })?;
                (ms > 0).then_some(ms as i64)
            }
        };
        let output: SchemaRef = Arc::new(join.schema.as_arrow().clone());
        let upstream = self.graph.nodes[left.node].output.clone();
        let out = if upstream.is_updating() {
            StreamSchema::updating(output.clone(), upstream.changelog)
        } else {
            // The stream's columns come first: its time attribute stays where it was.
            StreamSchema::append_only(output.clone()).with_event_time(upstream.event_time)
        };
        let connector = versioned.table.connector.get();
        if let Some(path) = connector.location(d)? {
            self.reads.push((d.name.clone(), path));
        }
        let factory = LookupJoinFactory {
            table_name: d.name.clone(),
            table: connector.lookup_source(d, Some(&projection))?,
            table_schema,
            table_filter,
            stream_keys,
            table_keys,
            key_schema: Arc::new(Schema::new(fields)),
            stream_schema: Arc::new(Schema::clone(left.schema.as_arrow())),
            filter,
            left_outer,
            output,
            reload_after_ms,
        };
        let id = self.add(
            "lookup-join",
            format!("LookupJoin: {}", d.name),
            self.graph.nodes[left.node].parallelism,
            NodeKind::Operator(Arc::new(factory)),
            out,
        );
        self.graph.connect(left.node, id, 0, Partitioning::Forward);
        Ok(Lowered {
            node: id,
            schema: join.schema.clone(),
            window: left.window,
        })
    }
}
