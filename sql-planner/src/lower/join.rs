//! Lowering of joins. A join of two windowed inputs (window aggregations, or joins of them)
//! whose condition equates both `window_start`s and both `window_end`s is Flink's window join:
//! one `WindowJoin` operator, both inputs hash-exchanged by the other join keys. Any other
//! join is a regular join (`lower_stream_join.rs`): an inner join of insert-only inputs only
//! grows (`StreamJoin`); outer joins and joins of updating inputs retract rows
//! (`ChangelogJoin`).

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::{DFSchema, JoinType, NullEquality};
use datafusion_expr::utils::{conjunction, split_conjunction};
use datafusion_expr::{Expr, Join};
use datafusion_physical_expr::PhysicalExpr;
use kernel::graph::{NodeKind, Partitioning};
use kernel::ops::changelog_join::RegularJoinType;
use kernel::ops::window::{JoinSide, WindowJoinFactory, WindowJoinType};
use kernel::types::StreamSchema;
use kernel::{Error, Result};

use crate::functions::AS_OF;
use crate::lower::lookup_join::versioned_scan;
use crate::lower::{Lowered, Lowering, WindowColumns};

/// The column of `schema` an expression is, if it is a bare column.
pub(crate) fn column_index(e: &Expr, schema: &DFSchema) -> Option<usize> {
    match e {
        Expr::Column(c) => schema.index_of_column(c).ok(),
        _ => None,
    }
}

fn join_type(t: JoinType) -> Result<WindowJoinType> {
    Ok(match t {
        JoinType::Inner => WindowJoinType::Inner,
        JoinType::Left => WindowJoinType::Left,
        JoinType::Right => WindowJoinType::Right,
        JoinType::Full => WindowJoinType::Full,
        JoinType::LeftSemi => WindowJoinType::LeftSemi,
        JoinType::LeftAnti => WindowJoinType::LeftAnti,
        JoinType::RightSemi => WindowJoinType::RightSemi,
        JoinType::RightAnti => WindowJoinType::RightAnti,
        other => {
            return Err(Error::user(format!(
                "a {other} join is not supported in a window join"
            )))
        }
    })
}

/// A window join's equalities besides its window ones, when the condition equates both
/// inputs' window_start and window_end (else `None`: not a window join).
fn window_join_keys(
    join: &Join,
    left: &Lowered,
    right: &Lowered,
    lw: WindowColumns,
    rw: WindowColumns,
) -> Option<Vec<(Expr, Expr)>> {
    let (mut starts, mut ends) = (false, false);
    let mut keys = Vec::new();
    for (l, r) in &join.on {
        let pair = (
            column_index(l, &left.schema),
            column_index(r, &right.schema),
        );
        if pair.0.is_some() && pair == (lw.start, rw.start) {
            starts = true;
        } else if pair.0.is_some() && pair == (lw.end, rw.end) {
            ends = true;
        } else {
            keys.push((l.clone(), r.clone()));
        }
    }
    (starts && ends).then_some(keys)
}

/// The equi-join keys of a join, lowered.
pub(crate) struct JoinKeys {
    pub left: Vec<Arc<dyn PhysicalExpr>>,
    pub right: Vec<Arc<dyn PhysicalExpr>>,
    /// Names and types of the keys, those of the left side's.
    pub schema: SchemaRef,
    /// The key columns of each side, when every key is a bare column (and there is one):
    /// what a hash exchange can partition by.
    pub columns: Option<(Vec<usize>, Vec<usize>)>,
}

/// The AS OF expression the rewrite's `$as_of` marker carries, and the condition without it.
pub(crate) fn split_as_of(filter: Option<&Expr>) -> (Option<Expr>, Option<Expr>) {
    let Some(filter) = filter else {
        return (None, None);
    };
    let mut as_of = None;
    let mut rest = Vec::new();
    for c in split_conjunction(filter) {
        match c {
            Expr::ScalarFunction(f) if f.func.name() == AS_OF => {
                as_of = as_of.or_else(|| f.args.first().cloned());
            }
            other => rest.push(other.clone()),
        }
    }
    (as_of, conjunction(rest))
}

impl Lowering<'_> {
    /// Lowers the key pairs `(left expression, right expression)` of a join.
    pub(crate) fn join_keys(
        &self,
        pairs: &[(Expr, Expr)],
        left: &Lowered,
        right: &Lowered,
    ) -> Result<JoinKeys> {
        let larrow: SchemaRef = Arc::new(left.schema.as_arrow().clone());
        let mut keys = JoinKeys {
            left: Vec::new(),
            right: Vec::new(),
            schema: Arc::new(Schema::empty()),
            columns: None,
        };
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (i, (l, r)) in pairs.iter().enumerate() {
            let (pl, pr) = (
                self.physical(l, &left.schema)?,
                self.physical(r, &right.schema)?,
            );
            fields.push(Field::new(format!("$key{i}"), pl.data_type(&larrow)?, true));
            keys.left.push(pl);
            keys.right.push(pr);
            columns.push(column_index(l, &left.schema).zip(column_index(r, &right.schema)));
        }
        keys.schema = Arc::new(Schema::new(fields));
        keys.columns = (!columns.is_empty())
            .then(|| columns.into_iter().collect::<Option<Vec<_>>>())
            .flatten()
            .map(|c| c.into_iter().unzip());
        Ok(keys)
    }

    /// A join's condition besides its equalities, over the left columns then the right ones.
    pub(crate) fn join_condition(
        &self,
        join: &Join,
        left: &Lowered,
        right: &DFSchema,
    ) -> Result<Option<Arc<dyn PhysicalExpr>>> {
        let paired = left.schema.join(right)?;
        // The rewrite's AS OF marker is no condition.
        let (_, condition) = split_as_of(join.filter.as_ref());
        condition.map(|f| self.physical(&f, &paired)).transpose()
    }

    pub(crate) fn join(&mut self, join: &Join) -> Result<Lowered> {
        if join.null_equality == NullEquality::NullEqualsNull || join.null_aware {
            return Err(Error::user(
                "a join whose keys match NULL to NULL (IS NOT DISTINCT FROM, or NOT IN over \
                 nullable columns) is not supported yet",
            ));
        }
        let mut table_filters = Vec::new();
        if let Some((scan, versioned)) = versioned_scan(&join.right, &mut table_filters) {
            if versioned.table.watermark.is_some() {
                return self.temporal_join(join, versioned);
            }
            return self.lookup_join(join, scan, versioned, &table_filters);
        }
        let left = self.lower(&join.left)?;
        let right = self.lower(&join.right)?;
        let updating = self.is_updating(&left) || self.is_updating(&right);
        if let (Some(lw), Some(rw), false) = (left.window, right.window, updating) {
            if let Some(keys) = window_join_keys(join, &left, &right, lw, rw) {
                return self.window_join(join, left, right, lw, rw, &keys);
            }
        }
        let join_type = match join.join_type {
            JoinType::Inner => RegularJoinType::Inner,
            JoinType::Left => RegularJoinType::Left,
            JoinType::Right => RegularJoinType::Right,
            JoinType::Full => RegularJoinType::Full,
            other => {
                return Err(Error::user(format!(
                    "a semi or anti join ({other}, from EXISTS or IN with a subquery) is not \
                     supported yet, except as a window join (both inputs window aggregations, \
                     the condition equating their window_start and window_end)"
                )))
            }
        };
        if updating {
            return self.changelog_join(join, join_type, left, right, false);
        }
        self.stream_join(join, join_type, left, right)
    }

    /// A window join: the condition equates both inputs' window_start and window_end; `keys`
    /// are its other equalities.
    fn window_join(
        &mut self,
        join: &Join,
        left: Lowered,
        right: Lowered,
        lw: WindowColumns,
        rw: WindowColumns,
        keys: &[(Expr, Expr)],
    ) -> Result<Lowered> {
        let ty = join_type(join.join_type)?;
        if lw.spec != rw.spec {
            return Err(Error::user(format!(
                "a window join needs the same windows on both sides, not {:?} and {:?}",
                lw.spec.kind, rw.spec.kind
            )));
        }
        let (lend, rend) = (lw.end.expect("equated"), rw.end.expect("equated"));

        let keys = self.join_keys(keys, &left, &right)?;
        let filter = self.join_condition(join, &left, &right.schema)?;
        let output: SchemaRef = Arc::new(join.schema.as_arrow().clone());
        // Both sides' rows of a key must meet in one subtask: hash by the key columns, or by
        // the window end when a key is an expression (or there is none), which keeps a window
        // whole.
        let (lhash, rhash) = keys.columns.unwrap_or((vec![lend], vec![rend]));
        let side = |lowered: &Lowered, keys: Vec<_>, end: usize, hashed: &[usize]| JoinSide {
            keys,
            window_end: end,
            schema: Arc::new(Schema::clone(lowered.schema.as_arrow())),
            hashed: hashed.to_vec(),
        };
        let factory = WindowJoinFactory {
            join_type: ty,
            left: side(&left, keys.left, lend, &lhash),
            right: side(&right, keys.right, rend, &rhash),
            key_schema: keys.schema,
            filter,
            output: output.clone(),
            buffer_rows: self.window_buffer_groups,
        };
        // The result's window columns: those of the side whose rows are always there.
        let width = left.schema.fields().len();
        let shifted = |w: WindowColumns| WindowColumns {
            spec: w.spec,
            start: w.start.map(|c| c + width),
            end: w.end.map(|c| c + width),
            time: w.time.map(|c| c + width),
        };
        let window = match ty {
            WindowJoinType::Inner
            | WindowJoinType::Left
            | WindowJoinType::LeftSemi
            | WindowJoinType::LeftAnti => Some(lw),
            WindowJoinType::Right => Some(shifted(rw)),
            WindowJoinType::RightSemi | WindowJoinType::RightAnti => Some(rw),
            WindowJoinType::Full => None,
        };
        let id = self.add(
            "window-join",
            format!("WindowJoin: {ty:?}"),
            self.parallelism,
            NodeKind::Operator(Arc::new(factory)),
            StreamSchema::append_only(output).with_event_time(window.and_then(|w| w.time)),
        );
        self.graph
            .connect(left.node, id, 0, Partitioning::Hash(lhash));
        self.graph
            .connect(right.node, id, 1, Partitioning::Hash(rhash));
        Ok(Lowered {
            node: id,
            schema: join.schema.clone(),
            window,
        })
    }
}
