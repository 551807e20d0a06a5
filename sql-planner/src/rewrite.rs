//! AST rewrites that give queries Flink's semantics where DataFusion's differ.

use sqlparser::ast::{Expr, Query, SelectItem, SetExpr, Statement, TableFactor, TableWithJoins};

/// Flink names an unaliased `a.b.c` select item `c` (the field), where DataFusion would name a
/// nested field access `a[b][c]`. Adds that alias to every such item, in every SELECT of the
/// statement, including views, subqueries and CTEs.
pub fn name_nested_fields(stmt: &mut Statement) {
    match stmt {
        Statement::Query(q) => query(q),
        Statement::Insert(i) => {
            if let Some(q) = i.source.as_mut() {
                query(q);
            }
        }
        _ => {}
    }
}

fn query(q: &mut Query) {
    if let Some(with) = q.with.as_mut() {
        for cte in &mut with.cte_tables {
            query(&mut cte.query);
        }
    }
    set_expr(&mut q.body);
}

fn set_expr(e: &mut SetExpr) {
    match e {
        SetExpr::Select(s) => {
            for item in &mut s.projection {
                if let SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) = item {
                    if let Some(last) = parts.last().cloned() {
                        let expr = Expr::CompoundIdentifier(std::mem::take(parts));
                        *item = SelectItem::ExprWithAlias { expr, alias: last };
                    }
                }
            }
            for t in &mut s.from {
                table_with_joins(t);
            }
        }
        SetExpr::Query(q) => query(q),
        SetExpr::SetOperation { left, right, .. } => {
            set_expr(left);
            set_expr(right);
        }
        _ => {}
    }
}

fn table_with_joins(t: &mut TableWithJoins) {
    table_factor(&mut t.relation);
    for j in &mut t.joins {
        table_factor(&mut j.relation);
    }
}

fn table_factor(f: &mut TableFactor) {
    match f {
        TableFactor::Derived { subquery, .. } => query(subquery),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => self::table_with_joins(table_with_joins),
        _ => {}
    }
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
        name_nested_fields(&mut s);
        let text = s.to_string();
        assert!(
            text.contains("bid.auction AS auction")
                && text.contains("x.y AS z")
                && text.contains("p.q AS q"),
            "{text}"
        );
    }
}
