//! The Flink SQL dialect for sqlparser.

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName,
};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// Flink's SQL as far as sqlparser's hooks reach: backquoted identifiers, `FILTER (WHERE …)`
/// on aggregates, `name => value` arguments, and the `TABLE t` argument of window table
/// functions, which becomes the pseudo-call `TABLE(t)` for the planner to recognise.
/// Flink's DDL, which no dialect hook reaches, is parsed by the script front end.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlinkDialect;

impl Dialect for FlinkDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '$'
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_named_fn_args_with_rarrow_operator(&self) -> bool {
        true
    }

    fn supports_group_by_expr(&self) -> bool {
        true
    }

    /// `t FOR SYSTEM_TIME AS OF …`: temporal and lookup joins.
    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        // `TABLE name` (not `TABLE(`): a table argument of a window TVF.
        if parser.peek_keyword(Keyword::TABLE)
            && matches!(parser.peek_nth_token(1).token, Token::Word(_))
        {
            parser.next_token();
            return Some(parser.parse_object_name(false).map(table_pseudo_call));
        }
        None
    }
}

/// The name of the pseudo-function standing for a `TABLE t` argument.
pub const TABLE_ARG_FUNCTION: &str = "TABLE";

fn table_pseudo_call(name: ObjectName) -> Expr {
    let idents: Vec<Ident> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().cloned())
        .collect();
    let arg = if idents.len() == 1 {
        Expr::Identifier(idents[0].clone())
    } else {
        Expr::CompoundIdentifier(idents)
    };
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(TABLE_ARG_FUNCTION)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_tvf_with_table_argument_parses() {
        let sql =
            "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))";
        let stmts = Parser::parse_sql(&FlinkDialect, sql).expect("parses");
        let text = stmts[0].to_string();
        assert!(
            text.contains("TUMBLE(TABLE(bid), DESCRIPTOR(`dateTime`)"),
            "{text}"
        );
    }

    #[test]
    fn backquoted_identifiers_keep_their_case() {
        let stmts = Parser::parse_sql(&FlinkDialect, "SELECT `dateTime` FROM bid").unwrap();
        assert!(stmts[0].to_string().contains("`dateTime`"));
    }
}
