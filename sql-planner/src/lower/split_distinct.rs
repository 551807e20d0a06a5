//! Split distinct aggregation, Flink's `table.optimizer.distinct-agg.split.enabled`: a
//! `GROUP BY` with `COUNT(DISTINCT …)` runs in two steps, so that one hot group's distinct
//! values (q15's single day) spread over every subtask instead of loading one.
//!
//! ```text
//! SplitDistinctExpand   every row once per distinct argument x_e: $e = e, $bucket = hash(x_e) % N
//! GroupAggregate        GROUP BY keys, $e, $bucket: COUNT(DISTINCT x_e) FILTER (… AND $e = e),
//!                       the other calls FILTER (… AND $e = 0)
//! GroupAggregate        GROUP BY keys: SUM of the counts and sums, MIN of the minima, MAX …
//! Calc                  the original columns, names and types
//! ```
//!
//! Only COUNT, COUNT(DISTINCT), SUM, MIN and MAX combine this way; an aggregation with any
//! other call is not split (its result is the same either way).

use std::sync::Arc;

use datafusion_common::{Column, DFSchema};
use datafusion_expr::expr::AggregateFunction;
use datafusion_expr::{lit, Aggregate, EmptyRelation, Expr, ExprSchemable, LogicalPlan};
use datafusion_functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion_functions_aggregate::sum::sum_udaf;
use kernel::graph::{NodeKind, Partitioning};
use kernel::ops::split_expand::{SplitExpandFactory, BUCKET, EXPAND_ID};
use kernel::types::StreamSchema;
use kernel::Result;

use crate::lower::{Lowered, Lowering};

/// How a call's partial results combine.
#[derive(Clone, Copy)]
enum Combine {
    Sum,
    Min,
    Max,
}

/// Per call, how its partial results combine, and the distinct arguments in order; `None`
/// when the aggregation has no distinct call or a call that does not combine.
fn split_shape(agg: &Aggregate) -> Option<(Vec<Combine>, Vec<Expr>)> {
    let mut combine = Vec::new();
    let mut distinct_args: Vec<Expr> = Vec::new();
    for e in &agg.aggr_expr {
        let Expr::AggregateFunction(f) = e.clone().unalias_nested().data else {
            return None;
        };
        if !f.params.order_by.is_empty() {
            return None;
        }
        let name = f.func.name();
        combine.push(match name {
            "count" => Combine::Sum,
            "sum" if !f.params.distinct => Combine::Sum,
            "min" => Combine::Min,
            "max" => Combine::Max,
            _ => return None,
        });
        if name == "count" && f.params.distinct {
            let [arg] = f.params.args.as_slice() else {
                return None;
            };
            if !distinct_args.contains(arg) {
                distinct_args.push(arg.clone());
            }
        }
    }
    (!distinct_args.is_empty()).then_some((combine, distinct_args))
}

/// `filter AND extra`, or `extra` alone.
fn and_filter(filter: Option<&Expr>, extra: Expr) -> Expr {
    match filter {
        Some(f) => f.clone().and(extra),
        None => extra,
    }
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

impl Lowering<'_> {
    /// `agg` over the lowered `input` as a split distinct aggregation, when its calls allow;
    /// `None` when they do not.
    pub(crate) fn split_distinct(
        &mut self,
        agg: &Aggregate,
        input: &Lowered,
        buckets: u32,
    ) -> Result<Option<Lowered>> {
        let Some((combine, distinct_args)) = split_shape(agg) else {
            return Ok(None);
        };
        let expanded = self.split_expand(input, &distinct_args, buckets)?;

        // Partial: per keys, argument and bucket.
        let keys = agg.group_expr.len();
        let mut group: Vec<Expr> = agg
            .group_expr
            .iter()
            .enumerate()
            .map(|(i, g)| g.clone().unalias_nested().data.alias(format!("$k{i}")))
            .collect();
        group.extend([column(EXPAND_ID), column(BUCKET)]);
        let mut partial_calls = Vec::new();
        for (i, e) in agg.aggr_expr.iter().enumerate() {
            let Expr::AggregateFunction(mut f) = e.clone().unalias_nested().data else {
                unreachable!("split_shape saw only aggregate calls");
            };
            let copy = match (f.func.name(), f.params.distinct) {
                ("count", true) => distinct_args
                    .iter()
                    .position(|a| Some(a) == f.params.args.first())
                    .expect("every distinct argument is listed"),
                _ => 0,
            };
            let filter = and_filter(
                f.params.filter.as_deref(),
                column(EXPAND_ID).eq(lit(copy as i32)),
            );
            f.params.filter = Some(Box::new(filter));
            partial_calls.push(Expr::AggregateFunction(f).alias(format!("$p{i}")));
        }
        let partial = Aggregate::try_new(over(&expanded.schema), group, partial_calls)?;
        let partial_lowered = self.plain_group_aggregate(&partial, expanded)?;

        // Final: per keys, the partial results combined.
        let final_group: Vec<Expr> = (0..keys).map(|i| column(&format!("$k{i}"))).collect();
        let final_calls: Vec<Expr> = combine
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let udaf = match c {
                    Combine::Sum => sum_udaf(),
                    Combine::Min => min_udaf(),
                    Combine::Max => max_udaf(),
                };
                let arg = column(&format!("$p{i}"));
                Expr::AggregateFunction(AggregateFunction::new_udf(
                    udaf,
                    vec![arg],
                    false,
                    None,
                    vec![],
                    None,
                ))
                .alias(format!("$f{i}"))
            })
            .collect();
        let fin = Aggregate::try_new(over(&partial.schema), final_group, final_calls)?;
        let fin_lowered = self.plain_group_aggregate(&fin, partial_lowered)?;

        // The original columns: names, qualifiers and types.
        let mut exprs = Vec::with_capacity(agg.schema.fields().len());
        for (i, (qualifier, field)) in agg.schema.iter().enumerate() {
            let (_, from) = fin.schema.qualified_field(i);
            let mut e = column(from.name());
            if e.get_type(&fin.schema)? != *field.data_type() {
                e = e.cast_to(field.data_type(), &fin.schema)?;
            }
            exprs.push(e.alias_qualified(qualifier.cloned(), field.name()));
        }
        self.calc(fin_lowered, None, &exprs, agg.schema.clone())
            .map(Some)
    }

    /// The expand step: `input`'s columns, `$e` and `$bucket`, once per distinct argument.
    fn split_expand(&mut self, input: &Lowered, args: &[Expr], buckets: u32) -> Result<Lowered> {
        let physical = args
            .iter()
            .map(|a| self.physical(a, &input.schema))
            .collect::<Result<Vec<_>>>()?;
        let input_arrow = Arc::new(input.schema.as_arrow().clone());
        let output = SplitExpandFactory::output(&input_arrow);
        let mut schema = input.schema.as_ref().clone();
        let extra = output.fields()[output.fields().len() - 2..].to_vec();
        schema.merge(&DFSchema::from_unqualified_fields(
            extra.into(),
            Default::default(),
        )?);
        let upstream = &self.graph.nodes[input.node];
        let (parallelism, changelog) = (upstream.parallelism, upstream.output.changelog);
        let factory = SplitExpandFactory {
            args: physical,
            buckets,
            input: input_arrow,
        };
        let id = self.add(
            "split-expand",
            "SplitDistinctExpand".into(),
            parallelism,
            NodeKind::Operator(Arc::new(factory)),
            StreamSchema::updating(output, changelog),
        );
        self.graph.connect(input.node, id, 0, Partitioning::Forward);
        Ok(Lowered {
            node: id,
            schema: Arc::new(schema),
            window: None,
        })
    }
}

/// A placeholder input of `schema`, for building an `Aggregate` over an already lowered node.
fn over(schema: &Arc<DFSchema>) -> Arc<LogicalPlan> {
    Arc::new(LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: false,
        schema: schema.clone(),
    }))
}
