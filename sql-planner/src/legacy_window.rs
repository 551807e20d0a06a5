//! Flink's legacy group windows, `GROUP BY k, TUMBLE(ts, INTERVAL …)` with `TUMBLE_START(ts,
//! INTERVAL …)` in the select list (and `HOP`, `SESSION`, `_END`, `_ROWTIME` alike), rewritten
//! onto the window table functions before planning:
//!
//! ```sql
//! SELECT k, count(*), SESSION_START(ts, INTERVAL '10' SECOND) FROM t
//! GROUP BY k, SESSION(ts, INTERVAL '10' SECOND)
//! -- becomes
//! SELECT k, count(*), window_start FROM TABLE(SESSION(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND)) t
//! GROUP BY k, window_start, window_end
//! ```
//!
//! (the table function arrives in the form `rewrite::window_tvf_call` leaves TVFs in). The
//! windows are the same: a legacy `HOP(ts, slide, size)` takes the TVF's argument order, and
//! a session is per group key in both.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    Ident, ObjectName, Select, SelectItem, TableAlias, TableFactor, Value,
};

/// The legacy window functions and the auxiliary functions that name their windows' columns.
const WINDOWS: [&str; 3] = ["TUMBLE", "HOP", "SESSION"];
const AUXILIARY: [(&str, &str); 4] = [
    ("_START", "window_start"),
    ("_END", "window_end"),
    ("_ROWTIME", "window_time"),
    ("_PROCTIME", "window_time"),
];

/// The positional arguments of a call, if all are plain expressions.
fn arguments(e: &Expr) -> Option<(String, Vec<Expr>)> {
    let Expr::Function(f) = e else {
        return None;
    };
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let args = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((f.name.to_string().to_ascii_uppercase(), args))
}

/// The column name an expression is (`ts`, `t.ts`).
fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(id.value.clone()),
        Expr::CompoundIdentifier(ids) => ids.last().map(|i| i.value.clone()),
        Expr::Nested(inner) => column_name(inner),
        _ => None,
    }
}

fn string(s: String) -> FunctionArg {
    FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(
        Value::SingleQuotedString(s).into(),
    )))
}

/// Rewrites a SELECT grouped by a legacy window; leaves others alone. The error says what
/// cannot be rewritten.
pub(crate) fn rewrite(select: &mut Select) -> Result<(), String> {
    let GroupByExpr::Expressions(group, _) = &mut select.group_by else {
        return Ok(());
    };
    let calls: Vec<usize> = group
        .iter()
        .enumerate()
        .filter(|(_, g)| arguments(g).is_some_and(|(name, _)| WINDOWS.contains(&name.as_str())))
        .map(|(i, _)| i)
        .collect();
    let at = match calls.as_slice() {
        [] => return Ok(()),
        [one] => *one,
        _ => return Err("GROUP BY holds more than one group window".into()),
    };
    let (function, args) = arguments(&group[at]).expect("found above");
    let expected = if function == "HOP" { 3 } else { 2 };
    if args.len() != expected {
        return Err(format!(
            "GROUP BY {function}(…) takes {expected} arguments (the time column, then {}), got {}",
            if function == "HOP" {
                "the slide and the size"
            } else if function == "SESSION" {
                "the gap"
            } else {
                "the size"
            },
            args.len()
        ));
    }
    let Some(time) = column_name(&args[0]) else {
        return Err(format!(
            "GROUP BY {function}(…): the first argument must be a time column, got {}",
            args[0]
        ));
    };
    // The window's rows: one table, as the table function reads one.
    let [from] = select.from.as_mut_slice() else {
        return Err(format!(
            "GROUP BY {function}(…) over several tables is not supported yet"
        ));
    };
    if !from.joins.is_empty() {
        return Err(format!(
            "GROUP BY {function}(…) over a join is not supported yet"
        ));
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &mut from.relation
    else {
        return Err(format!(
            "GROUP BY {function}(…) over a subquery is not supported yet; name the rows with \
             a view"
        ));
    };
    let table = name.to_string();
    let alias = alias.take().unwrap_or_else(|| TableAlias {
        explicit: true,
        name: name
            .0
            .last()
            .and_then(|p| p.as_ident().cloned())
            .unwrap_or_else(|| Ident::new(table.clone())),
        columns: vec![],
        at: None,
    });
    let mut tvf_args = vec![string(table), string(time)];
    tvf_args.extend(
        args[1..]
            .iter()
            .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e.clone()))),
    );
    from.relation = crate::rewrite::table_function_call(
        ObjectName::from(vec![Ident::new(function.clone())]),
        Some(alias),
        tvf_args,
    );
    group.splice(
        at..=at,
        [
            Expr::Identifier(Ident::new("window_start")),
            Expr::Identifier(Ident::new("window_end")),
        ],
    );
    // `TUMBLE_START(ts, …)` and the like become the window columns.
    let mut wrong: Option<String> = None;
    let mut auxiliary = |e: &mut Expr| {
        if let Some((name, _)) = arguments(e) {
            for (suffix, column) in AUXILIARY {
                let Some(window) = name.strip_suffix(suffix) else {
                    continue;
                };
                if window == function {
                    *e = Expr::Identifier(Ident::new(column));
                } else if WINDOWS.contains(&window) {
                    wrong.get_or_insert(format!("{name} in a query grouped by {function}"));
                }
            }
        }
        ControlFlow::<()>::Continue(())
    };
    for item in &mut select.projection {
        match item {
            SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                let _ = visit_expressions_mut(expr, &mut auxiliary);
            }
            _ => {}
        }
    }
    if let Some(having) = select.having.as_mut() {
        let _ = visit_expressions_mut(having, &mut auxiliary);
    }
    match wrong {
        Some(w) => Err(w),
        None => Ok(()),
    }
}
