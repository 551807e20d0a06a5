//! Lowering of unbounded group aggregations (`GROUP BY` with no window): one
//! `GroupAggregate` operator per key hash, its result an updating stream (Flink's retract
//! changelog). Keys that are expressions (`DATE_FORMAT(dateTime, 'yyyy-MM-dd')`) are computed
//! by a Calc before the exchange, so rows can be hashed by them.

use std::sync::Arc;

use arrow::datatypes::{Field, SchemaRef};
use datafusion_common::DFSchema;
use datafusion_expr::expr::{AggregateFunction, Cast};
use datafusion_expr::{Aggregate, Expr, ExprSchemable};
use kernel::graph::{NodeKind, Partitioning};
use kernel::ops::group_agg::{
    canonical_arg, AggregateKind, GroupAggregateCall, GroupAggregateFactory,
};
use kernel::types::{ChangelogMode, StreamSchema};
use kernel::{Error, Result};

use crate::lower::join::column_index;
use crate::lower::{Lowered, Lowering};

/// The kind of an aggregate function, by its DataFusion name.
fn kind(f: &AggregateFunction) -> Result<AggregateKind> {
    let name = f.func.name();
    let distinct = f.params.distinct;
    Ok(match name {
        "count" if distinct => AggregateKind::CountDistinct,
        "count" => AggregateKind::Count,
        "sum" | "avg" if distinct => {
            return Err(Error::user(format!(
                "{}(DISTINCT …) is not supported yet in a GROUP BY aggregation",
                name.to_uppercase()
            )))
        }
        "sum" => AggregateKind::Sum,
        "avg" => AggregateKind::Avg,
        // DISTINCT changes nothing for MIN and MAX.
        "min" => AggregateKind::Min,
        "max" => AggregateKind::Max,
        other => {
            return Err(Error::user(format!(
                "the aggregate function {}() is not supported yet in a GROUP BY aggregation",
                other.to_uppercase()
            )))
        }
    })
}

/// True for `COUNT(*)`'s argument: the wildcard, or a constant that is never NULL.
pub(crate) fn counts_rows(args: &[Expr]) -> bool {
    match args {
        [] => true,
        #[allow(deprecated)]
        [Expr::Wildcard { .. }] => true,
        [Expr::Literal(v, _)] => !v.is_null(),
        _ => false,
    }
}

impl Lowering<'_> {
    /// An unbounded `GROUP BY` over the lowered `input`: split in two steps when split
    /// distinct aggregation is on and the calls allow, else one `GroupAggregate`.
    pub(crate) fn group_aggregate(&mut self, agg: &Aggregate, input: Lowered) -> Result<Lowered> {
        for g in &agg.group_expr {
            if matches!(g, Expr::GroupingSet(_)) {
                return Err(Error::user(
                    "GROUPING SETS, ROLLUP and CUBE are not supported yet",
                ));
            }
        }
        if let Some(buckets) = self.split_distinct_buckets {
            if let Some(split) = self.split_distinct(agg, &input, buckets)? {
                return Ok(split);
            }
        }
        self.plain_group_aggregate(agg, input)
    }

    /// One `GroupAggregate` for `agg` over the lowered `input`.
    pub(crate) fn plain_group_aggregate(
        &mut self,
        agg: &Aggregate,
        input: Lowered,
    ) -> Result<Lowered> {
        let upstream = &self.graph.nodes[input.node];
        let retracting = upstream.output.is_updating();
        let upstream_parallelism = upstream.parallelism;
        let keys: Vec<Expr> = agg
            .group_expr
            .iter()
            .map(|g| g.clone().unalias_nested().data)
            .collect();
        let hashed = self.parallelism > 1 && !keys.is_empty();
        let key_columns: Option<Vec<usize>> = keys
            .iter()
            .map(|k| column_index(k, &input.schema))
            .collect();
        // Keys that are expressions are computed first, so that the exchange can hash them.
        let (input, key_exprs, key_columns) = match key_columns {
            None if hashed => {
                let input = self.with_key_columns(input, &keys)?;
                let exprs = input.schema.columns()[..keys.len()]
                    .iter()
                    .cloned()
                    .map(Expr::Column)
                    .collect();
                (input, exprs, Some((0..keys.len()).collect()))
            }
            columns => (input, keys, columns),
        };
        let schema = input.schema.clone();

        let mut key_fields = Vec::new();
        let mut physical_keys = Vec::new();
        for (i, k) in key_exprs.iter().enumerate() {
            let field = k.to_field(&schema)?.1;
            key_fields.push(Field::new(
                format!("$key{i}"),
                field.data_type().clone(),
                true,
            ));
            physical_keys.push(self.physical(k, &schema)?);
        }
        let mut calls = Vec::new();
        for (i, e) in agg.aggr_expr.iter().enumerate() {
            calls.push(self.group_call(e, &schema, agg, agg.group_expr.len() + i)?);
        }
        let output: SchemaRef = Arc::new(agg.schema.as_arrow().clone());
        let factory = GroupAggregateFactory {
            keys: physical_keys,
            key_schema: Arc::new(arrow::datatypes::Schema::new(key_fields)),
            calls,
            output: output.clone(),
            input: Arc::new(schema.as_arrow().clone()),
            retracting,
            state_ttl_ms: self.state_ttl_ms,
            mini_batch: self.mini_batch,
        };
        let (parallelism, partitioning) = match key_columns {
            Some(cols) if hashed => (self.parallelism, Partitioning::Hash(cols)),
            _ if upstream_parallelism == 1 => (1, Partitioning::Forward),
            _ => (1, Partitioning::Single),
        };
        let id = self.add(
            "group-agg",
            "GroupAggregate".into(),
            parallelism,
            NodeKind::Operator(Arc::new(factory)),
            StreamSchema::updating(output, ChangelogMode::Retract),
        );
        self.graph.connect(input.node, id, 0, partitioning);
        Ok(Lowered {
            node: id,
            schema: agg.schema.clone(),
            window: None,
        })
    }

    /// A Calc putting the values of `keys` before the input's columns (`$key0`, …).
    fn with_key_columns(&mut self, input: Lowered, keys: &[Expr]) -> Result<Lowered> {
        let mut fields = Vec::new();
        let mut exprs = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let field = k.to_field(&input.schema)?.1;
            fields.push(Field::new(
                format!("$key{i}"),
                field.data_type().clone(),
                field.is_nullable(),
            ));
            exprs.push(k.clone().alias(format!("$key{i}")));
        }
        let mut schema = DFSchema::from_unqualified_fields(fields.into(), Default::default())?;
        schema.merge(&input.schema);
        exprs.extend(input.schema.columns().into_iter().map(Expr::Column));
        self.calc(input, None, &exprs, Arc::new(schema))
    }

    /// One aggregate call over `schema`; `at` is its result's column in the aggregate's schema.
    fn group_call(
        &self,
        e: &Expr,
        schema: &DFSchema,
        agg: &Aggregate,
        at: usize,
    ) -> Result<GroupAggregateCall> {
        let e = e.clone().unalias_nested().data;
        let Expr::AggregateFunction(f) = &e else {
            return Err(Error::internal(format!("'{e}' is no aggregate call")));
        };
        if !f.params.order_by.is_empty() {
            return Err(Error::user(format!(
                "ORDER BY inside an aggregate ('{e}') is not supported yet"
            )));
        }
        let kind = kind(f)?;
        let arg = match (kind, f.params.args.as_slice()) {
            (AggregateKind::Count, args) if counts_rows(args) => None,
            (_, [a]) => {
                let t = a.get_type(schema)?;
                let canonical = canonical_arg(&t);
                let a = if canonical == t {
                    a.clone()
                } else {
                    Expr::Cast(Cast::new(Box::new(a.clone()), canonical))
                };
                Some(self.physical(&a, schema)?)
            }
            _ => {
                return Err(Error::user(format!(
                    "'{e}': aggregates of more than one argument are not supported yet"
                )))
            }
        };
        let filter = f
            .params
            .filter
            .as_ref()
            .map(|x| self.physical(x, schema))
            .transpose()?;
        Ok(GroupAggregateCall {
            kind,
            arg,
            filter,
            output: agg.schema.field(at).data_type().clone(),
        })
    }
}
