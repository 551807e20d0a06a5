//! Lowering of event-time temporal joins: `s JOIN t FOR SYSTEM_TIME AS OF s.rowtime ON s.k =
//! t.k`, where `t` is a versioned table (Flink's term: a primary key and a watermark). The
//! table is read as a stream of versions, its rowtime read even when the query selects it not;
//! both inputs are hashed by the keys, which must include the table's primary key (as Flink
//! requires), so that all versions of a row meet its stream rows in one subtask. The result
//! keeps the stream's rowtime as its time attribute.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_expr::logical_plan::TableScanBuilder;
use datafusion_expr::{Join, JoinType, LogicalPlan};
use kernel::ops::temporal_join::TemporalJoinFactory;
use kernel::types::StreamSchema;
use kernel::{Error, Result};

use crate::catalog::{FlinkTable, RawTableSource, VersionedSource};
use crate::lower::join::{column_index, split_as_of};
use crate::lower::{Lowered, Lowering};

/// `plan` (the join's right side) reading the versioned table as a stream, with its rowtime.
fn read_versions(
    plan: &LogicalPlan,
    table: &Arc<FlinkTable>,
    rowtime: &str,
) -> Result<LogicalPlan> {
    Ok(plan
        .clone()
        .transform_up(|p| match p {
            LogicalPlan::TableScan(s) if s.source.downcast_ref::<VersionedSource>().is_some() => {
                let time = table.scan_schema.index_of(rowtime)?;
                let mut projection = s
                    .projection
                    .clone()
                    .unwrap_or_else(|| (0..table.scan_schema.fields().len()).collect());
                if !projection.contains(&time) {
                    projection.push(time);
                }
                let source = Arc::new(RawTableSource {
                    table: table.clone(),
                });
                let scan = TableScanBuilder::new(s.table_name.clone(), source)
                    .with_projection(Some(projection))
                    .with_filters(s.filters.clone())
                    .with_fetch(s.fetch)
                    .build()?;
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            other => Ok(Transformed::yes(other.recompute_schema()?)),
        })?
        .data)
}

impl Lowering<'_> {
    /// `join.right` is a scan of `versioned`, a table with a watermark.
    pub(crate) fn temporal_join(
        &mut self,
        join: &Join,
        versioned: &VersionedSource,
    ) -> Result<Lowered> {
        let table = &versioned.table;
        let name = &table.descriptor.name;
        let rowtime = &table
            .watermark
            .as_ref()
            .ok_or_else(|| Error::internal(format!("table '{name}' has no watermark")))?
            .rowtime;
        let left_outer = match join.join_type {
            JoinType::Inner => false,
            JoinType::Left => true,
            other => {
                return Err(Error::user(format!(
                    "a {other} join with table '{name}' FOR SYSTEM_TIME AS OF: a temporal join \
                     is INNER or LEFT"
                )))
            }
        };
        if table.primary_key.is_empty() {
            return Err(Error::user(format!(
                "table '{name}' FOR SYSTEM_TIME AS OF has a watermark but no PRIMARY KEY: an \
                 event-time temporal join needs a versioned table (PRIMARY KEY (…) NOT ENFORCED)"
            )));
        }
        let (as_of, _) = split_as_of(join.filter.as_ref());
        let left = self.lower(&join.left)?;
        self.append_only(&left, "an event-time temporal join")?;
        let rowtime_of_left = self.graph.nodes[left.node].output.event_time;
        let as_of_column = as_of.as_ref().and_then(|e| column_index(e, &left.schema));
        let left_time = match (rowtime_of_left, as_of_column) {
            (Some(t), Some(c)) if t == c => t,
            (Some(t), None) if as_of.is_none() => t,
            _ => {
                return Err(Error::user(format!(
                    "table '{name}' has a watermark, so FOR SYSTEM_TIME AS OF makes an \
                     event-time temporal join, which must be AS OF the left input's rowtime \
                     attribute{}",
                    match as_of {
                        Some(e) => format!(", not '{e}'"),
                        None => String::new(),
                    }
                )))
            }
        };
        let right = self.lower(&read_versions(&join.right, table, rowtime)?)?;
        let right_time = self.graph.nodes[right.node]
            .output
            .event_time
            .ok_or_else(|| {
                Error::internal(format!("the versions of '{name}' lost their rowtime"))
            })?;
        let keys = self.join_keys(&join.on, &left, &right)?;
        let right_columns = keys
            .columns
            .as_ref()
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        for pk in &table.primary_key {
            let at = right.schema.fields().iter().position(|f| f.name() == pk);
            if at.is_none_or(|c| !right_columns.contains(&c)) {
                return Err(Error::user(format!(
                    "a temporal join with table '{name}' must equate its primary key column \
                     '{pk}' with the left input's (ON … = {pk})"
                )));
            }
        }
        let filter = self.join_condition(join, &left, &right.schema)?;
        let output: SchemaRef = Arc::new(join.schema.as_arrow().clone());
        let factory = TemporalJoinFactory {
            left_keys: keys.left,
            right_keys: keys.right,
            key_schema: keys.schema,
            left_schema: Arc::new(Schema::clone(left.schema.as_arrow())),
            left_time,
            right_schema: Arc::new(Schema::clone(right.schema.as_arrow())),
            right_time,
            filter,
            left_outer,
            output: output.clone(),
        };
        Ok(self.regular_join_node(
            join,
            keys.columns,
            (left, right),
            format!("TemporalJoin: {name}"),
            Arc::new(factory),
            // The stream's columns come first: its rowtime stays where it was.
            StreamSchema::append_only(output).with_event_time(Some(left_time)),
        ))
    }
}
