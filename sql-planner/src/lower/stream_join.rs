//! Lowering of regular joins: inner joins of insert-only inputs, and outer interval joins, onto
//! `StreamJoin`, with the time bounds that let it forget rows (and send an outer side's
//! unmatched rows padded as they go); other outer joins and joins of updating inputs onto
//! `ChangelogJoin`.
//!
//! Both inputs are hash-exchanged by the equi-join key columns (one subtask when a key is an
//! expression or there is none). A side's rows expire when the condition bounds its time from
//! below by the other side's rowtime or window column. After a watermark `wm` the other side's
//! future rows have `rowtime ≥ wm + 1` (a row at or below the watermark is late), and a window
//! aggregation (or window join), which emits a window once the watermark reaches its end − 1 ms
//! and never later, sends `window_end ≥ wm + 2`, `window_time ≥ wm + 1` and `window_start ≥
//! wm + 2 − size`. A condition `X.t ≥ Y.window_end − 10 s` then means rows of X with `t < wm +
//! 2 − 10 s` can meet no future row of Y: q7's bids.
//!
//! When both sides' rowtimes are bounded so (`a.rt BETWEEN b.rt − x AND b.rt + y`: Flink's
//! interval join), the result keeps the rowtimes as time attributes. A stored row may meet a new
//! one after the watermark passed its time, so the join holds its watermark back by the most
//! any output row can lag (as Flink's interval join does), and later windows see no late rows.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion_common::{DFSchema, ScalarValue};
use datafusion_expr::expr::{Between, BinaryExpr};
use datafusion_expr::{Expr, Join, Operator as SqlOp};
use kernel::graph::{NodeKind, Partitioning};
use kernel::operator::OperatorFactory;
use kernel::ops::changelog_join::{ChangelogJoinFactory, ChangelogJoinSide, RegularJoinType};
use kernel::ops::stream_join::{Expiry, StreamJoinFactory, StreamJoinSide};
use kernel::ops::window::WindowKind;
use kernel::types::{ChangelogMode, StreamSchema};
use kernel::Result;

use crate::lower::join::column_index;
use crate::lower::{Lowered, Lowering, WindowColumns};

/// A column of the joined inputs plus a constant, in milliseconds: `side.column + shift`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TimeTerm {
    side: usize,
    column: usize,
    shift: i64,
}

/// A day-time interval literal in milliseconds.
fn interval_ms(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            Some(i.days as i64 * 86_400_000 + i.nanoseconds / 1_000_000)
        }
        ScalarValue::IntervalDayTime(Some(i)) => {
            Some(i.days as i64 * 86_400_000 + i.milliseconds as i64)
        }
        ScalarValue::DurationMillisecond(Some(ms)) => Some(*ms),
        ScalarValue::DurationSecond(Some(s)) => Some(s * 1000),
        _ => None,
    }
}

/// `e` as a column of the paired inputs plus an interval, if it is one.
fn time_term(e: &Expr, paired: &DFSchema, left_width: usize) -> Option<TimeTerm> {
    match e {
        Expr::Column(_) => {
            let i = column_index(e, paired)?;
            Some(if i < left_width {
                TimeTerm {
                    side: 0,
                    column: i,
                    shift: 0,
                }
            } else {
                TimeTerm {
                    side: 1,
                    column: i - left_width,
                    shift: 0,
                }
            })
        }
        Expr::Cast(c) => time_term(&c.expr, paired, left_width),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let term = time_term(left, paired, left_width)?;
            let ms = interval_ms(right)?;
            let shift = match op {
                SqlOp::Plus => ms,
                SqlOp::Minus => -ms,
                _ => return None,
            };
            Some(TimeTerm {
                shift: term.shift + shift,
                ..term
            })
        }
        _ => None,
    }
}

/// The condition's conjuncts as `(greater, lesser)` pairs: `greater ≥ lesser` (or `>`).
fn lower_bounds(e: &Expr, out: &mut Vec<(Expr, Expr)>) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            SqlOp::And => {
                lower_bounds(left, out);
                lower_bounds(right, out);
            }
            SqlOp::GtEq | SqlOp::Gt => out.push((*left.clone(), *right.clone())),
            SqlOp::LtEq | SqlOp::Lt => out.push((*right.clone(), *left.clone())),
            _ => {}
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            out.push((*expr.clone(), *low.clone()));
            out.push((*high.clone(), *expr.clone()));
        }
        _ => {}
    }
}

/// How far above the watermark a rowtime or window column's future values lie (see the module
/// text).
fn time_floor(w: Option<&WindowColumns>, rowtime: Option<usize>, column: usize) -> Option<i64> {
    if rowtime == Some(column) {
        return Some(1);
    }
    let w = w?;
    let size = match w.spec.kind {
        WindowKind::Tumble { size }
        | WindowKind::Hop { size, .. }
        | WindowKind::Cumulate { size, .. } => size,
    };
    if w.end == Some(column) {
        Some(2)
    } else if w.time == Some(column) {
        Some(1)
    } else if w.start == Some(column) {
        Some(2 - size)
    } else {
        None
    }
}

/// Per side, the expiry the condition allows (the tightest, when several do).
fn expiries(
    filter: Option<&Expr>,
    paired: &DFSchema,
    left_width: usize,
    windows: [Option<WindowColumns>; 2],
    rowtimes: [Option<usize>; 2],
) -> [Option<Expiry>; 2] {
    let mut out: [Option<Expiry>; 2] = [None, None];
    let Some(filter) = filter else { return out };
    let mut bounds = Vec::new();
    lower_bounds(filter, &mut bounds);
    for (greater, lesser) in bounds {
        let (Some(g), Some(l)) = (
            time_term(&greater, paired, left_width),
            time_term(&lesser, paired, left_width),
        ) else {
            continue;
        };
        if g.side == l.side {
            continue;
        }
        // g.column + g.shift ≥ l.column + l.shift, and l.column ≥ wm + floor from now on:
        // rows of g's side with column < wm + floor + l.shift − g.shift meet nothing more.
        let Some(floor) = time_floor(windows[l.side].as_ref(), rowtimes[l.side], l.column) else {
            continue;
        };
        let offset = floor + l.shift - g.shift;
        let best = &mut out[g.side];
        if best.is_none_or(|e| e.column != g.column || offset > e.offset) {
            *best = Some(Expiry {
                column: g.column,
                offset,
            });
        }
    }
    out
}

impl Lowering<'_> {
    /// A regular join's node: rows with equal keys meet in one subtask, so both inputs are
    /// hashed by their key columns, or the join runs on one subtask when a key is an expression
    /// or there is none. A regular join's results carry no time attribute and no window.
    pub(crate) fn regular_join_node(
        &mut self,
        join: &Join,
        key_columns: Option<(Vec<usize>, Vec<usize>)>,
        (left, right): (Lowered, Lowered),
        name: String,
        factory: Arc<dyn OperatorFactory>,
        output: StreamSchema,
    ) -> Lowered {
        let (parallelism, lpart, rpart) = match key_columns {
            Some((l, r)) if self.parallelism > 1 => (
                self.parallelism,
                Partitioning::Hash(l),
                Partitioning::Hash(r),
            ),
            _ => {
                let one = |l: &Lowered| {
                    if self.graph.nodes[l.node].parallelism == 1 {
                        Partitioning::Forward
                    } else {
                        Partitioning::Single
                    }
                };
                (1, one(&left), one(&right))
            }
        };
        let id = self.add(
            "join",
            name,
            parallelism,
            NodeKind::Operator(factory),
            output,
        );
        self.graph.connect(left.node, id, 0, lpart);
        self.graph.connect(right.node, id, 1, rpart);
        Lowered {
            node: id,
            schema: join.schema.clone(),
            window: None,
        }
    }

    /// An outer join, or a join of updating inputs: a retract changelog of +I and -D rows.
    /// `append_only`: an inner join of append-only inputs, whose result is append-only too
    /// (rows in state tables rather than `StreamJoin`'s memory).
    pub(crate) fn changelog_join(
        &mut self,
        join: &Join,
        join_type: RegularJoinType,
        left: Lowered,
        right: Lowered,
        append_only: bool,
    ) -> Result<Lowered> {
        let keys = self.join_keys(&join.on, &left, &right)?;
        let filter = self.join_condition(join, &left, &right.schema)?;
        let output: SchemaRef = Arc::new(join.schema.as_arrow().clone());
        let side = |l: &Lowered, keys| ChangelogJoinSide {
            keys,
            schema: Arc::new(Schema::clone(l.schema.as_arrow())),
        };
        let factory = ChangelogJoinFactory {
            join_type,
            left: side(&left, keys.left),
            right: side(&right, keys.right),
            key_schema: keys.schema,
            filter,
            output: output.clone(),
            state_ttl_ms: self.state_ttl_ms,
            append_only,
        };
        let schema = if append_only {
            StreamSchema::append_only(output)
        } else {
            StreamSchema::updating(output, ChangelogMode::Retract)
        };
        Ok(self.regular_join_node(
            join,
            keys.columns,
            (left, right),
            format!("ChangelogJoin: {join_type:?}"),
            Arc::new(factory),
            schema,
        ))
    }

    /// A join of two append-only inputs: inner, or an outer interval join, onto `StreamJoin`;
    /// an outer join whose sides do not both expire by rowtime onto `ChangelogJoin`. With a
    /// state memory budget set, an inner join that is not an interval join (its rows are
    /// kept until a TTL or an expiry that may never come: q9, q20) goes onto `ChangelogJoin`
    /// too, whose rows live in gemini-state and spill to disk past the budget, where
    /// `StreamJoin` would hold every row in memory.
    pub(crate) fn stream_join(
        &mut self,
        join: &Join,
        join_type: RegularJoinType,
        left: Lowered,
        right: Lowered,
    ) -> Result<Lowered> {
        let paired = left.schema.join(&right.schema)?;
        let width = left.schema.fields().len();
        let rowtimes = [&left, &right].map(|l| self.graph.nodes[l.node].output.event_time);
        let [lexp, rexp] = expiries(
            join.filter.as_ref(),
            &paired,
            width,
            [left.window, right.window],
            rowtimes,
        );
        // An interval join: both rowtimes bounded by each other's. Output rows lag the
        // watermark by at most 1 − offset on each side (see the module text).
        let on_rowtime = |e: Option<Expiry>, rowtime| e.filter(|e| Some(e.column) == rowtime);
        let interval = on_rowtime(lexp, rowtimes[0]).zip(on_rowtime(rexp, rowtimes[1]));
        if join_type != RegularJoinType::Inner && interval.is_none() {
            // Unmatched rows could never be sent as final: pad now, retract on a match.
            return self.changelog_join(join, join_type, left, right, false);
        }
        if join_type == RegularJoinType::Inner && interval.is_none() && self.joins_in_state_tables {
            return self.changelog_join(join, join_type, left, right, true);
        }
        let keys = self.join_keys(&join.on, &left, &right)?;
        let filter = self.join_condition(join, &left, &right.schema)?;
        let watermark_delay = interval.map_or(0, |(l, r)| (1 - l.offset).max(1 - r.offset).max(0));
        // The rowtime kept is that of a side never padded with nulls.
        let rowtime = match join_type {
            RegularJoinType::Inner | RegularJoinType::Left => interval.and(rowtimes[0]),
            RegularJoinType::Right => interval.and(rowtimes[1].map(|r| width + r)),
            RegularJoinType::Full => None,
        };
        let output: SchemaRef = Arc::new(join.schema.as_arrow().clone());
        let side = |l: &Lowered, keys, expiry| StreamJoinSide {
            keys,
            schema: Arc::new(Schema::clone(l.schema.as_arrow())),
            expiry,
        };
        let factory = StreamJoinFactory {
            join_type,
            left: side(&left, keys.left, lexp),
            right: side(&right, keys.right, rexp),
            key_schema: keys.schema,
            filter,
            output: output.clone(),
            watermark_delay,
            state_ttl_ms: self.state_ttl_ms,
        };
        let name = if interval.is_some() {
            format!("IntervalJoin: {join_type:?}")
        } else {
            "StreamJoin: Inner".to_string()
        };
        Ok(self.regular_join_node(
            join,
            keys.columns,
            (left, right),
            name,
            Arc::new(factory),
            StreamSchema::append_only(output).with_event_time(rowtime),
        ))
    }
}
