//! Lowering of `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` under a filter bounding it
//! (`WHERE rn <= N`, `rn < N`, `rn = 1`): Flink's Top-N, and with N = 1 on a time attribute
//! its deduplication, over insert-only or updating input. One `Rank` operator per
//! partition-key hash; its result is updating.

use std::sync::Arc;

use arrow::compute::SortOptions;
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::{DFSchemaRef, ScalarValue};
use datafusion_expr::utils::{conjunction, split_conjunction};
use datafusion_expr::{BinaryExpr, Expr, Operator as SqlOp, Window, WindowFunctionDefinition};
use kernel::graph::{NodeKind, Partitioning};
use kernel::ops::rank::RankFactory;
use kernel::types::{ChangelogMode, StreamSchema};
use kernel::{Error, Result};

use crate::functions::{is_proctime, ROW_NUMBER};
use crate::lower::join::column_index;
use crate::lower::over_agg::window_function;
use crate::lower::{is_identity, Lowered, Lowering};

/// The N of a conjunct bounding column `rn`: `rn <= N`, `rn < N + 1`, `rn = 1`, or mirrored.
fn rank_limit(e: &Expr, rn: usize, schema: &datafusion_common::DFSchema) -> Option<usize> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let int = |e: &Expr| match e {
        Expr::Literal(v, _) => match v.cast_to(&arrow::datatypes::DataType::Int64).ok()? {
            ScalarValue::Int64(Some(n)) => Some(n),
            _ => None,
        },
        _ => None,
    };
    let (op, n) = if column_index(left, schema) == Some(rn) {
        (*op, int(right)?)
    } else if column_index(right, schema) == Some(rn) {
        (op.swap()?, int(left)?)
    } else {
        return None;
    };
    let n = match op {
        SqlOp::LtEq => n,
        SqlOp::Lt => n - 1,
        SqlOp::Eq if n == 1 => 1,
        _ => return None,
    };
    (n >= 1).then_some(n as usize)
}

impl Lowering<'_> {
    /// `exprs` over the rows of `window` that pass `filter`: a Top-N when the window is one
    /// ROW_NUMBER() and the filter bounds it.
    pub(crate) fn rank(
        &mut self,
        window: &Window,
        filter: Option<&Expr>,
        exprs: &[Expr],
        out: DFSchemaRef,
    ) -> Result<Lowered> {
        if crate::lower::over_agg::is_over_aggregate(window) {
            return self.over_aggregate(window, filter, exprs, out);
        }
        let refuse = |why: &str| {
            Error::user(format!(
                "ROW_NUMBER() OVER (…) {why}; eddy runs it as Top-N or deduplication: \
                 ROW_NUMBER() OVER (PARTITION BY … ORDER BY …) filtered by rn <= N"
            ))
        };
        let [Some(f)] = window
            .window_expr
            .iter()
            .map(window_function)
            .collect::<Vec<_>>()[..]
        else {
            return Err(refuse(
                "with other window functions beside it is not supported",
            ));
        };
        let is_row_number =
            matches!(&f.fun, WindowFunctionDefinition::WindowUDF(u) if u.name() == ROW_NUMBER);
        if !is_row_number {
            return Err(Error::user(format!(
                "the OVER window function {} is not supported yet",
                f.fun
            )));
        }
        let input_schema = window.input.schema().clone();
        let rn = input_schema.fields().len();
        let mut limit = None;
        let mut rest = Vec::new();
        for c in filter.map(split_conjunction).unwrap_or_default() {
            match rank_limit(c, rn, &window.schema) {
                Some(n) => limit = Some(limit.map_or(n, |l: usize| l.min(n))),
                None => rest.push(c.clone()),
            }
        }
        let Some(limit) = limit else {
            return Err(refuse(
                "without a filter rn <= N on its result is not supported yet",
            ));
        };
        let input = self.lower(&window.input)?;
        // Over an updating input (a Top-N of an aggregate's results) every row is kept.
        let updating_input = self.is_updating(&input);
        let event_time = self.graph.nodes[input.node].output.event_time;

        let mut partition = Vec::new();
        let mut columns = Vec::new();
        let mut key_fields = Vec::new();
        for (i, p) in f.params.partition_by.iter().enumerate() {
            let Some(c) = column_index(p, &input_schema) else {
                return Err(refuse(&format!(
                    "partitioned by '{p}', not a column, is not supported yet"
                )));
            };
            columns.push(c);
            partition.push(self.physical(p, &input_schema)?);
            key_fields.push(Field::new(
                format!("$key{i}"),
                input_schema.field(c).data_type().clone(),
                true,
            ));
        }
        // Ordered by a processing-time attribute is arrival order; by the rowtime, newest
        // first on ties for keep-last deduplication (Flink keeps the later of equal times).
        let mut order = Vec::new();
        let mut newer_wins_ties = false;
        for s in &f.params.order_by {
            let descending = !s.asc;
            let column = column_index(&s.expr, &input_schema);
            if column.is_some_and(|c| is_proctime(input_schema.field(c))) {
                newer_wins_ties |= descending;
                continue;
            }
            if limit == 1 && column.is_some() && column == event_time && descending {
                newer_wins_ties = true;
            }
            order.push((
                self.physical(&s.expr, &input_schema)?,
                SortOptions {
                    descending,
                    nulls_first: s.nulls_first,
                },
            ));
        }
        // The row number is a column of the result only when something reads it.
        let reads_rn = exprs.iter().chain(&rest).any(|e| {
            e.column_refs()
                .iter()
                .any(|c| window.schema.index_of_column(c).ok() == Some(rn))
        });
        let input_arrow: SchemaRef = Arc::new(input_schema.as_arrow().clone());
        let (rank_schema, output): (DFSchemaRef, SchemaRef) = if reads_rn {
            (
                window.schema.clone(),
                Arc::new(window.schema.as_arrow().clone()),
            )
        } else {
            (input_schema.clone(), input_arrow.clone())
        };
        let factory = RankFactory {
            partition,
            key_schema: Arc::new(Schema::new(key_fields)),
            order,
            limit,
            rank_column: reads_rn,
            newer_wins_ties,
            input: input_arrow,
            output: output.clone(),
            state_ttl_ms: self.state_ttl_ms,
            updating_input,
        };
        let upstream = self.graph.nodes[input.node].parallelism;
        let (parallelism, partitioning) = if !columns.is_empty() && self.parallelism > 1 {
            (self.parallelism, Partitioning::Hash(columns))
        } else if upstream == 1 {
            (1, Partitioning::Forward)
        } else {
            (1, Partitioning::Single)
        };
        let title = if limit == 1 { "Deduplicate" } else { "Rank" };
        let id = self.add(
            "rank",
            format!("{title}: top {limit}"),
            parallelism,
            NodeKind::Operator(Arc::new(factory)),
            StreamSchema::updating(output, ChangelogMode::Retract),
        );
        self.graph.connect(input.node, id, 0, partitioning);
        let ranked = Lowered {
            node: id,
            schema: rank_schema,
            window: None,
        };
        let filter = conjunction(rest);
        if filter.is_none() && is_identity(exprs, &ranked.schema) {
            return Ok(Lowered {
                schema: out,
                ..ranked
            });
        }
        self.calc(ranked, filter.as_ref(), exprs, out)
    }
}
