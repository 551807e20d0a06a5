//! Splits a Flink SQL script into statements and parses what sqlparser cannot: `CREATE TABLE`
//! with `ROW<…>` types, computed columns, `WATERMARK FOR`, `PARTITIONED BY` and `WITH`;
//! `CREATE FUNCTION … AS 'class'`; `SET 'k' = 'v'`; statement sets. Everything else goes to
//! sqlparser's own statement parser under the [`FlinkDialect`].

use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use sqlparser::ast::{Expr, Query, Statement};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

use crate::error::{Location, PlanError};
use crate::types::parse_flink_type;
use crate::FlinkDialect;

/// One column of a `CREATE TABLE`.
#[derive(Debug, Clone)]
pub enum ColumnDef {
    Physical {
        name: String,
        data_type: DataType,
        nullable: bool,
    },
    Computed {
        name: String,
        expr: Box<Expr>,
    },
}

impl ColumnDef {
    pub fn name(&self) -> &str {
        match self {
            ColumnDef::Physical { name, .. } | ColumnDef::Computed { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnDef>,
    /// `WATERMARK FOR <rowtime> AS <expr>`.
    pub watermark: Option<(String, Expr)>,
    pub primary_key: Vec<String>,
    pub partition_keys: Vec<String>,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub enum FlinkStatement {
    CreateTable(Box<TableDef>),
    CreateView {
        name: String,
        columns: Vec<String>,
        query: Box<Query>,
        if_not_exists: bool,
    },
    CreateFunction {
        name: String,
        class: String,
        if_not_exists: bool,
    },
    Set {
        key: String,
        value: String,
    },
    Insert(Box<Statement>),
    Select(Box<Query>),
}

#[derive(Debug, Clone)]
pub struct Located {
    pub statement: FlinkStatement,
    pub location: Location,
    /// The statement's SQL text, for stable operator ids.
    pub text: String,
}

fn word_at(p: &Parser, n: usize) -> Option<String> {
    match &p.peek_nth_token(n).token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

fn is_word(p: &Parser, n: usize, w: &str) -> bool {
    word_at(p, n).as_deref() == Some(w)
}

fn expect_word(p: &mut Parser, w: &str) -> Result<(), ParserError> {
    if is_word(p, 0, w) {
        p.next_token();
        Ok(())
    } else {
        let found = p.peek_token();
        p.expected(w, found)
    }
}

/// `IF NOT EXISTS`, if present.
fn if_not_exists(p: &mut Parser) -> bool {
    if is_word(p, 0, "IF") && is_word(p, 1, "NOT") && is_word(p, 2, "EXISTS") {
        for _ in 0..3 {
            p.next_token();
        }
        true
    } else {
        false
    }
}

/// The last part of a possibly qualified name (`catalog.db.table` → `table`).
fn object_name(p: &mut Parser) -> Result<String, ParserError> {
    let name = p.parse_object_name(false)?;
    let last = name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .map(|i| i.value.clone());
    last.ok_or_else(|| ParserError::ParserError(format!("invalid name {name}")))
}

fn string_literal(p: &mut Parser) -> Result<String, ParserError> {
    match p.next_token().token {
        Token::SingleQuotedString(s) => Ok(s),
        _ => {
            p.prev_token();
            let found = p.peek_token();
            p.expected("a quoted string", found)
        }
    }
}

/// `( 'key' = 'value' , … )`.
fn options(p: &mut Parser) -> Result<BTreeMap<String, String>, ParserError> {
    p.expect_token(&Token::LParen)?;
    let mut map = BTreeMap::new();
    if p.consume_token(&Token::RParen) {
        return Ok(map);
    }
    loop {
        let key = string_literal(p)?;
        p.expect_token(&Token::Eq)?;
        let value = string_literal(p)?;
        map.insert(key, value);
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    p.expect_token(&Token::RParen)?;
    Ok(map)
}

fn ident_list(p: &mut Parser) -> Result<Vec<String>, ParserError> {
    p.expect_token(&Token::LParen)?;
    let ids = p.parse_comma_separated(|p| p.parse_identifier())?;
    p.expect_token(&Token::RParen)?;
    Ok(ids.into_iter().map(|i| i.value).collect())
}

fn skip_comment(p: &mut Parser) -> Result<(), ParserError> {
    if is_word(p, 0, "COMMENT") {
        p.next_token();
        string_literal(p)?;
    }
    Ok(())
}

fn unsupported<T>(p: &Parser, what: &str) -> Result<T, ParserError> {
    let at = p.peek_token().span.start;
    Err(ParserError::ParserError(format!(
        "{what} is not supported yet at Line: {}, Column: {}",
        at.line, at.column
    )))
}

/// `CREATE [TEMPORARY] TABLE …`, positioned after `TABLE`.
fn create_table(p: &mut Parser) -> Result<TableDef, ParserError> {
    let if_not_exists = if_not_exists(p);
    let name = object_name(p)?;
    p.expect_token(&Token::LParen)?;
    let mut t = TableDef {
        name,
        if_not_exists,
        columns: vec![],
        watermark: None,
        primary_key: vec![],
        partition_keys: vec![],
        options: BTreeMap::new(),
    };
    loop {
        if is_word(p, 0, "WATERMARK") && is_word(p, 1, "FOR") {
            p.next_token();
            p.next_token();
            let rowtime = p.parse_identifier()?.value;
            expect_word(p, "AS")?;
            t.watermark = Some((rowtime, p.parse_expr()?));
        } else if is_word(p, 0, "PRIMARY") || is_word(p, 0, "CONSTRAINT") {
            if is_word(p, 0, "CONSTRAINT") {
                p.next_token();
                p.parse_identifier()?;
            }
            expect_word(p, "PRIMARY")?;
            expect_word(p, "KEY")?;
            t.primary_key = ident_list(p)?;
            expect_word(p, "NOT")?;
            expect_word(p, "ENFORCED")?;
        } else {
            let name = p.parse_identifier()?.value;
            if is_word(p, 0, "AS") {
                p.next_token();
                let expr = p.parse_expr()?;
                t.columns.push(ColumnDef::Computed {
                    name,
                    expr: Box::new(expr),
                });
            } else {
                let (data_type, nullable) = parse_flink_type(p)?;
                if is_word(p, 0, "METADATA") {
                    return unsupported(p, "METADATA columns");
                }
                if is_word(p, 0, "PRIMARY") {
                    p.next_token();
                    expect_word(p, "KEY")?;
                    expect_word(p, "NOT")?;
                    expect_word(p, "ENFORCED")?;
                    t.primary_key = vec![name.clone()];
                }
                t.columns.push(ColumnDef::Physical {
                    name,
                    data_type,
                    nullable,
                });
            }
            skip_comment(p)?;
        }
        if !p.consume_token(&Token::Comma) {
            break;
        }
    }
    p.expect_token(&Token::RParen)?;
    skip_comment(p)?;
    if is_word(p, 0, "PARTITIONED") {
        p.next_token();
        expect_word(p, "BY")?;
        t.partition_keys = ident_list(p)?;
    }
    if is_word(p, 0, "WITH") {
        p.next_token();
        t.options = options(p)?;
    }
    if is_word(p, 0, "LIKE") {
        return unsupported(p, "CREATE TABLE … LIKE");
    }
    Ok(t)
}

/// Parses a whole script.
pub fn parse_script(sql: &str) -> Result<Vec<Located>, PlanError> {
    let dialect = FlinkDialect;
    let mut p = Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(|e| PlanError::from_parser(e, Location::default()))?;
    let mut out = Vec::new();
    let mut in_statement_set = false;
    loop {
        while p.consume_token(&Token::SemiColon) {}
        let start_tok = p.peek_token();
        if start_tok.token == Token::EOF {
            break;
        }
        let location = Location {
            line: start_tok.span.start.line,
            column: start_tok.span.start.column,
        };
        let err = |e: ParserError| PlanError::from_parser(e, location);
        // Statement-set brackets: `EXECUTE STATEMENT SET BEGIN … END;` and
        // `BEGIN STATEMENT SET; … END;`.
        if is_word(&p, 0, "EXECUTE") && is_word(&p, 1, "STATEMENT") && is_word(&p, 2, "SET") {
            for _ in 0..3 {
                p.next_token();
            }
            expect_word(&mut p, "BEGIN").map_err(err)?;
            in_statement_set = true;
            continue;
        }
        if is_word(&p, 0, "BEGIN") && is_word(&p, 1, "STATEMENT") && is_word(&p, 2, "SET") {
            for _ in 0..3 {
                p.next_token();
            }
            in_statement_set = true;
            continue;
        }
        if in_statement_set && is_word(&p, 0, "END") {
            p.next_token();
            in_statement_set = false;
            continue;
        }
        let statement = parse_statement(&mut p, in_statement_set).map_err(err)?;
        let end = p.peek_token();
        match end.token {
            Token::SemiColon | Token::EOF => {}
            _ => {
                return Err(err(p
                    .expected::<()>("';' or end of input", end)
                    .unwrap_err()))
            }
        }
        let text = statement_text(sql, location, end.span.start);
        out.push(Located {
            statement,
            location,
            text,
        });
    }
    if in_statement_set {
        return Err(PlanError::at(
            "statement set is missing its END",
            Location::default(),
        ));
    }
    Ok(out)
}

fn parse_statement(p: &mut Parser, in_set: bool) -> Result<FlinkStatement, ParserError> {
    if in_set && !is_word(p, 0, "INSERT") {
        return unsupported(p, "a statement other than INSERT inside a statement set");
    }
    if is_word(p, 0, "CREATE") {
        let mut n = 1;
        let mut temporary = false;
        if is_word(p, n, "TEMPORARY") {
            temporary = true;
            n += 1;
        }
        if temporary && is_word(p, n, "SYSTEM") {
            n += 1;
        }
        match word_at(p, n).as_deref() {
            Some("TABLE") => {
                for _ in 0..=n {
                    p.next_token();
                }
                return Ok(FlinkStatement::CreateTable(Box::new(create_table(p)?)));
            }
            Some("FUNCTION") => {
                for _ in 0..=n {
                    p.next_token();
                }
                let if_not_exists = if_not_exists(p);
                let name = object_name(p)?;
                expect_word(p, "AS")?;
                let class = string_literal(p)?;
                if is_word(p, 0, "LANGUAGE") {
                    p.next_token();
                    let lang = p.parse_identifier()?.value.to_ascii_uppercase();
                    if lang != "JAVA" && lang != "SCALA" {
                        return unsupported(p, &format!("functions in LANGUAGE {lang}"));
                    }
                }
                return Ok(FlinkStatement::CreateFunction {
                    name,
                    class,
                    if_not_exists,
                });
            }
            Some("VIEW") => {
                return match p.parse_statement()? {
                    Statement::CreateView(v) => {
                        let name = v
                            .name
                            .0
                            .last()
                            .and_then(|x| x.as_ident())
                            .map(|i| i.value.clone())
                            .unwrap_or_default();
                        let columns = v.columns.iter().map(|c| c.name.value.clone()).collect();
                        Ok(FlinkStatement::CreateView {
                            name,
                            columns,
                            query: v.query,
                            if_not_exists: v.if_not_exists,
                        })
                    }
                    other => Err(ParserError::ParserError(format!(
                        "expected CREATE VIEW, got {other}"
                    ))),
                };
            }
            _ => return unsupported(p, "this CREATE statement"),
        }
    }
    if is_word(p, 0, "SET") {
        p.next_token();
        let key = match p.peek_token().token {
            Token::SingleQuotedString(_) => string_literal(p)?,
            _ => p.parse_object_name(false)?.to_string(),
        };
        p.expect_token(&Token::Eq)?;
        let value = match p.peek_token().token {
            Token::SingleQuotedString(_) => string_literal(p)?,
            _ => p.parse_expr()?.to_string(),
        };
        return Ok(FlinkStatement::Set { key, value });
    }
    match p.parse_statement()? {
        s @ Statement::Insert(_) => Ok(FlinkStatement::Insert(Box::new(s))),
        Statement::Query(q) => Ok(FlinkStatement::Select(q)),
        other => {
            let kind = other
                .to_string()
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            Err(ParserError::ParserError(format!(
                "statement '{kind} …' is not supported"
            )))
        }
    }
}

/// The SQL text between two locations.
fn statement_text(sql: &str, start: Location, end: sqlparser::tokenizer::Location) -> String {
    let offset = |line: u64, col: u64| -> usize {
        let mut off = 0;
        for (i, l) in sql.split_inclusive('\n').enumerate() {
            if i as u64 + 1 == line {
                return off
                    + l.char_indices()
                        .nth(col.saturating_sub(1) as usize)
                        .map_or(l.len(), |(b, _)| b);
            }
            off += l.len();
        }
        sql.len()
    };
    let a = offset(start.line, start.column);
    let b = if end.line == 0 {
        sql.len()
    } else {
        offset(end.line, end.column)
    };
    sql.get(a..b.max(a)).unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DDL: &str = "CREATE TABLE datagen (
        event_type int,
        bid ROW<auction BIGINT, `dateTime` TIMESTAMP(3)>,
        `dateTime` AS CASE WHEN event_type = 2 THEN bid.`dateTime` END,
        WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
    ) WITH ('connector' = 'nexmark', 'events.num' = '10');";

    #[test]
    fn flink_create_table_parses() {
        let s = parse_script(DDL).unwrap();
        let FlinkStatement::CreateTable(t) = &s[0].statement else {
            panic!("not a table")
        };
        assert_eq!(t.columns.len(), 3);
        assert!(matches!(t.columns[2], ColumnDef::Computed { .. }));
        assert_eq!(t.watermark.as_ref().unwrap().0, "dateTime");
        assert_eq!(t.options["connector"], "nexmark");
    }

    #[test]
    fn partitioned_tables_functions_sets_and_statement_sets() {
        let sql = "SET 'parallelism.default' = '2';
            CREATE TABLE t (a BIGINT, dt STRING) PARTITIONED BY (dt) WITH ('connector' = 'blackhole');
            CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar';
            EXECUTE STATEMENT SET BEGIN
              INSERT INTO t SELECT 1, 'x';
              INSERT INTO t SELECT 2, 'y';
            END;";
        let s = parse_script(sql).unwrap();
        assert_eq!(s.len(), 5);
        assert!(
            matches!(&s[0].statement, FlinkStatement::Set { key, value } if key == "parallelism.default" && value == "2")
        );
        let FlinkStatement::CreateTable(t) = &s[1].statement else {
            panic!()
        };
        assert_eq!(t.partition_keys, vec!["dt"]);
        assert!(
            matches!(&s[2].statement, FlinkStatement::CreateFunction { class, .. } if class.ends_with("CountChar"))
        );
        assert!(matches!(s[4].statement, FlinkStatement::Insert(_)));
        assert_eq!(s[4].location.line, 6);
    }

    #[test]
    fn errors_carry_line_and_column() {
        let err = parse_script("CREATE TABLE t (\n  a BIGINT,\n  b FOOTYPE\n)").unwrap_err();
        assert_eq!(err.location.map(|l| l.line), Some(3), "{err}");
        let err = parse_script("SELECT 1;\nDROP TABLE x;").unwrap_err();
        assert!(
            err.to_string().contains("not supported") && err.to_string().contains("line 2"),
            "{err}"
        );
    }
}
