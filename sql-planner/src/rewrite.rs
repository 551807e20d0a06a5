//! AST rewrites that give queries Flink's semantics where DataFusion's differ.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions, BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, JoinConstraint, JoinOperator, ObjectName,
    Query, Select, SelectItem, SetExpr, Statement, TableAlias, TableFactor, TableFunctionArgs,
    TableVersion, TableWithJoins, Value,
};

use crate::catalog::VERSIONED_PREFIX;
use crate::functions::AS_OF;

use crate::dialect::TABLE_ARG_FUNCTION;

/// Rewrites every SELECT of the statement, including views, subqueries and CTEs:
/// - Flink names an unaliased `a.b.c` select item `c` (the field), where DataFusion would name
///   a nested field access `a[b][c]`: such items get that alias;
/// - a window table function `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), …))`, which DataFusion
///   cannot plan, becomes the table function call `TUMBLE('t', 'ts', …)` with positional
///   arguments (see `window_tvf.rs`);
/// - a legacy group window, `GROUP BY …, TUMBLE(ts, …)`, becomes that window table function
///   (see `legacy_window.rs`);
/// - a WHERE condition on the alias of a window function of the same SELECT becomes QUALIFY;
/// - a table `FOR SYSTEM_TIME AS OF t`, which DataFusion would read as the table itself, is
///   renamed so that the catalog gives a source only a lookup join can use.
///
/// The error says which construct cannot be rewritten.
pub fn flink_semantics(stmt: &mut Statement) -> Result<(), String> {
    match stmt {
        Statement::Query(q) => query(q),
        Statement::Insert(i) => match i.source.as_mut() {
            Some(q) => query(q),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

fn query(q: &mut Query) -> Result<(), String> {
    if let Some(with) = q.with.as_mut() {
        for cte in &mut with.cte_tables {
            query(&mut cte.query)?;
        }
    }
    set_expr(&mut q.body)
}

fn set_expr(e: &mut SetExpr) -> Result<(), String> {
    match e {
        SetExpr::Select(s) => {
            crate::legacy_window::rewrite(s)?;
            filters_on_window_aliases(s);
            for item in &mut s.projection {
                if let SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) = item {
                    if let Some(last) = parts.last().cloned() {
                        let expr = Expr::CompoundIdentifier(std::mem::take(parts));
                        *item = SelectItem::ExprWithAlias { expr, alias: last };
                    }
                }
            }
            for t in &mut s.from {
                table_with_joins(t)?;
            }
            Ok(())
        }
        SetExpr::Query(q) => query(q),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr(left)?;
            set_expr(right)
        }
        _ => Ok(()),
    }
}

/// The conjuncts of `s`'s WHERE that name the alias of an OVER window function of the same
/// SELECT (`SELECT *, ROW_NUMBER() OVER (…) AS rownum FROM … WHERE rownum <= 1`, as Nexmark's
/// q6 writes its Top-1) move to QUALIFY, which filters after the window functions: WHERE
/// cannot see them, and that is what such a filter means.
fn filters_on_window_aliases(s: &mut Select) {
    let aliases: Vec<String> = s
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias {
                expr: Expr::Function(f),
                alias,
            } if f.over.is_some() => Some(alias.value.clone()),
            _ => None,
        })
        .collect();
    let Some(selection) = s.selection.take() else {
        return;
    };
    if aliases.is_empty() {
        s.selection = Some(selection);
        return;
    }
    let names_alias = |e: &Expr| {
        let mut found = false;
        let _ = visit_expressions(e, |e| {
            if let Expr::Identifier(id) = e {
                found |= aliases.contains(&id.value);
            }
            ControlFlow::<()>::Continue(())
        });
        found
    };
    let (mut keep, mut moved) = (Vec::new(), Vec::new());
    for c in conjuncts(selection) {
        if names_alias(&c) {
            moved.push(c);
        } else {
            keep.push(c);
        }
    }
    let and = |parts: Vec<Expr>| {
        parts.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        })
    };
    s.selection = and(keep);
    if let Some(moved) = and(moved) {
        s.qualify = and(s.qualify.take().into_iter().chain([moved]).collect());
    }
}

/// `e` split at its top-level ANDs.
fn conjuncts(e: Expr) -> Vec<Expr> {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut out = conjuncts(*left);
            out.extend(conjuncts(*right));
            out
        }
        Expr::Nested(inner)
            if matches!(
                *inner,
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            conjuncts(*inner)
        }
        other => vec![other],
    }
}

fn table_with_joins(t: &mut TableWithJoins) -> Result<(), String> {
    table_factor(&mut t.relation)?;
    for j in &mut t.joins {
        if let Some((as_of, table)) = table_factor(&mut j.relation)? {
            mark_as_of(&mut j.join_operator, as_of, &table);
        }
    }
    Ok(())
}

/// Adds `$as_of(time, table.c)` to the ON condition, `c` a column of `table` the condition
/// reads (see `functions/as_of.rs`); without one, the condition is left as it is.
fn mark_as_of(op: &mut JoinOperator, as_of: Expr, table: &Ident) {
    let (JoinOperator::Join(JoinConstraint::On(on))
    | JoinOperator::Inner(JoinConstraint::On(on))
    | JoinOperator::Left(JoinConstraint::On(on))
    | JoinOperator::LeftOuter(JoinConstraint::On(on))) = op
    else {
        return;
    };
    let mut column = None;
    let _ = visit_expressions(on, |e| {
        if let Expr::CompoundIdentifier(parts) = e {
            if parts.len() == 2 && parts[0].value == table.value {
                column = Some(e.clone());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    let Some(column) = column else { return };
    let arg = |e: Expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(e));
    let marker = Expr::Function(Function {
        name: ObjectName::from(vec![Ident::with_quote('"', AS_OF)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![arg(as_of), arg(column)],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    });
    let condition = std::mem::replace(on, Expr::Value(Value::Boolean(true).into()));
    *on = Expr::BinaryOp {
        left: Box::new(condition),
        op: BinaryOperator::And,
        right: Box::new(marker),
    };
}

/// Rewrites a table factor; for a table `FOR SYSTEM_TIME AS OF e`, returns `e` and the name
/// its columns are qualified by.
fn table_factor(f: &mut TableFactor) -> Result<Option<(Expr, Ident)>, String> {
    match f {
        TableFactor::TableFunction { expr, alias } => {
            if let Some(args) = window_tvf_call(expr) {
                let Expr::Function(call) = expr else {
                    unreachable!("window_tvf_call takes functions only")
                };
                *f = table_function_call(call.name.clone(), alias.take(), args);
            }
        }
        TableFactor::Table {
            name,
            alias,
            version: version @ Some(_),
            ..
        } => {
            let Some(TableVersion::ForSystemTimeAsOf(as_of)) = version.take() else {
                return Err(format!(
                    "table '{name}': only FOR SYSTEM_TIME AS OF selects a table's version"
                ));
            };
            // The table under a name that tells the catalog it is looked up (a lookup join);
            // its columns keep their qualifier through the alias.
            let Some(table) = name.0.last().and_then(|p| p.as_ident()).cloned() else {
                return Err(format!("table '{name}' FOR SYSTEM_TIME AS OF has no name"));
            };
            if alias.is_none() {
                *alias = Some(TableAlias {
                    explicit: false,
                    name: table.clone(),
                    columns: vec![],
                    at: None,
                });
            }
            *name = ObjectName::from(vec![Ident::with_quote(
                '`',
                format!("{VERSIONED_PREFIX}{}", table.value),
            )]);
            let qualifier = alias.as_ref().map_or(table, |a| a.name.clone());
            return Ok(Some((as_of, qualifier)));
        }
        TableFactor::Derived { subquery, .. } => query(subquery)?,
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => self::table_with_joins(table_with_joins)?,
        _ => {}
    }
    Ok(None)
}

/// A table factor calling table function `name` with positional `args`: the form DataFusion
/// plans through the catalog's `get_table_function_source`.
pub(crate) fn table_function_call(
    name: ObjectName,
    alias: Option<TableAlias>,
    args: Vec<FunctionArg>,
) -> TableFactor {
    TableFactor::Table {
        name,
        alias,
        args: Some(TableFunctionArgs {
            args,
            settings: None,
        }),
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    }
}

/// The arguments of a window table function call in Flink's positional order, `TABLE t` and
/// `DESCRIPTOR(c)` as the strings `'t'` and `'c'`; `None` if `expr` is no such call. Named
/// arguments (`SIZE => INTERVAL …`) are put in their places.
fn window_tvf_call(expr: &Expr) -> Option<Vec<FunctionArg>> {
    let Expr::Function(call) = expr else {
        return None;
    };
    let params = crate::window_tvf::parameters(&call.name.to_string())?;
    let FunctionArguments::List(list) = &call.args else {
        return None;
    };
    let mut slots: Vec<Option<Expr>> = vec![None; params.len()];
    for (i, arg) in list.args.iter().enumerate() {
        let (slot, e) = match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => (i, e),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            }
            | FunctionArg::ExprNamed {
                arg: FunctionArgExpr::Expr(e),
                name: Expr::Identifier(name),
                ..
            } => (
                params
                    .iter()
                    .position(|p| p.eq_ignore_ascii_case(&name.value))?,
                e,
            ),
            _ => return None,
        };
        *slots.get_mut(slot)? = Some(name_argument(e).unwrap_or_else(|| e.clone()));
    }
    // Trailing optional parameters may be left out; a gap may not.
    let given = slots.iter().rposition(Option::is_some).map_or(0, |p| p + 1);
    slots[..given]
        .iter()
        .map(|s| {
            s.clone()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
        })
        .collect()
}

/// `TABLE t` (the dialect's pseudo-call) or `DESCRIPTOR(c)` as the string `'t'` or `'c'`.
fn name_argument(e: &Expr) -> Option<Expr> {
    let Expr::Function(f) = e else {
        return None;
    };
    let name = f.name.to_string();
    if !name.eq_ignore_ascii_case(TABLE_ARG_FUNCTION) && !name.eq_ignore_ascii_case("DESCRIPTOR") {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice() else {
        return None;
    };
    let text = match arg {
        Expr::Identifier(id) => id.value.clone(),
        Expr::CompoundIdentifier(ids) => ids.last()?.value.clone(),
        _ => return None,
    };
    Some(Expr::Value(Value::SingleQuotedString(text).into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::parser::Parser;

    #[test]
    fn nested_fields_are_named_by_their_last_part() {
        let mut s = Parser::parse_sql(
            &crate::FlinkDialect,
            "SELECT bid.auction, x.y AS z, (SELECT a.b FROM t) FROM (SELECT p.q FROM u) v",
        )
        .unwrap()
        .remove(0);
        flink_semantics(&mut s).unwrap();
        let text = s.to_string();
        assert!(
            text.contains("bid.auction AS auction")
                && text.contains("x.y AS z")
                && text.contains("p.q AS q"),
            "{text}"
        );
    }
}
