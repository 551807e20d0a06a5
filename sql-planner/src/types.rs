//! Flink SQL data types → Arrow.
//!
//! sqlparser cannot parse `ROW<name TYPE, …>`, so types are parsed here from the token stream,
//! including nested `ROW`, `ARRAY<…>` and `MAP<…, …>` (where `>>` closes two levels).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// Parses one Flink type and an optional `NOT NULL` / `NULL`; returns the type and its
/// nullability.
pub fn parse_flink_type(parser: &mut Parser) -> Result<(DataType, bool), ParserError> {
    let mut tp = TypeParser {
        p: parser,
        pending_gt: 0,
    };
    let t = tp.data_type()?;
    if tp.pending_gt > 0 {
        return Err(ParserError::ParserError("unbalanced '>' in type".into()));
    }
    let nullable = tp.nullability()?;
    Ok((t, nullable))
}

struct TypeParser<'a, 'b> {
    p: &'a mut Parser<'b>,
    /// `>` already consumed as half of a `>>` token.
    pending_gt: usize,
}

fn word(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

impl TypeParser<'_, '_> {
    fn err<T>(&self, what: &str) -> Result<T, ParserError> {
        let found = self.p.peek_token();
        self.p.expected(what, found)
    }

    fn peek_word(&self, n: usize) -> Option<String> {
        word(&self.p.peek_nth_token(n).token)
    }

    fn nullability(&mut self) -> Result<bool, ParserError> {
        if self.pending_gt > 0 {
            return Ok(true);
        }
        if self.peek_word(0).as_deref() == Some("NOT")
            && self.peek_word(1).as_deref() == Some("NULL")
        {
            self.p.next_token();
            self.p.next_token();
            return Ok(false);
        }
        if self.peek_word(0).as_deref() == Some("NULL") {
            self.p.next_token();
        }
        Ok(true)
    }

    fn expect_gt(&mut self) -> Result<(), ParserError> {
        if self.pending_gt > 0 {
            self.pending_gt -= 1;
            return Ok(());
        }
        match self.p.peek_token().token {
            Token::Gt => {
                self.p.next_token();
                Ok(())
            }
            Token::ShiftRight => {
                self.p.next_token();
                self.pending_gt += 1;
                Ok(())
            }
            _ => self.err(">"),
        }
    }

    /// `(n)` or `(n, m)` after a type name, if present.
    fn params(&mut self) -> Result<Vec<u64>, ParserError> {
        if self.pending_gt > 0 || !self.p.consume_token(&Token::LParen) {
            return Ok(vec![]);
        }
        let v = self.p.parse_comma_separated(|p| p.parse_literal_uint())?;
        self.p.expect_token(&Token::RParen)?;
        Ok(v)
    }

    fn data_type(&mut self) -> Result<DataType, ParserError> {
        let Some(name) = self.peek_word(0) else {
            return self.err("a data type");
        };
        let at = self.p.peek_token().span.start;
        self.p.next_token();
        Ok(match name.as_str() {
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "TINYINT" => DataType::Int8,
            "SMALLINT" => DataType::Int16,
            "INT" | "INTEGER" => DataType::Int32,
            "BIGINT" => DataType::Int64,
            "FLOAT" | "REAL" => DataType::Float32,
            "DOUBLE" => {
                if self.peek_word(0).as_deref() == Some("PRECISION") {
                    self.p.next_token();
                }
                DataType::Float64
            }
            "DECIMAL" | "DEC" | "NUMERIC" => {
                let ps = self.params()?;
                let p = ps.first().copied().unwrap_or(10);
                let s = ps.get(1).copied().unwrap_or(0);
                if !(1..=38).contains(&p) || s > p {
                    return Err(ParserError::ParserError(format!(
                        "DECIMAL({p}, {s}) is out of range (precision 1..38)"
                    )));
                }
                DataType::Decimal128(p as u8, s as i8)
            }
            "CHAR" | "CHARACTER" | "VARCHAR" | "STRING" | "TEXT" => {
                if self.peek_word(0).as_deref() == Some("VARYING") {
                    self.p.next_token();
                }
                self.params()?;
                DataType::Utf8
            }
            "BINARY" | "VARBINARY" | "BYTES" => {
                self.params()?;
                DataType::Binary
            }
            "DATE" => DataType::Date32,
            "TIME" => {
                self.params()?;
                DataType::Time32(TimeUnit::Millisecond)
            }
            "TIMESTAMP" | "TIMESTAMP_LTZ" => {
                let p = self.params()?.first().copied().unwrap_or(6);
                let mut ltz = name == "TIMESTAMP_LTZ";
                if self.peek_word(0).as_deref() == Some("WITHOUT") {
                    for _ in 0..3 {
                        self.p.next_token();
                    }
                } else if self.peek_word(0).as_deref() == Some("WITH")
                    && self.peek_word(1).as_deref() == Some("LOCAL")
                {
                    for _ in 0..4 {
                        self.p.next_token();
                    }
                    ltz = true;
                }
                let unit = match p {
                    0 => TimeUnit::Second,
                    1..=3 => TimeUnit::Millisecond,
                    4..=6 => TimeUnit::Microsecond,
                    _ => TimeUnit::Nanosecond,
                };
                DataType::Timestamp(unit, ltz.then(|| Arc::from("UTC")))
            }
            "ROW" => {
                let close = if self.pending_gt == 0 && self.p.consume_token(&Token::Lt) {
                    None
                } else if self.pending_gt == 0 && self.p.consume_token(&Token::LParen) {
                    Some(Token::RParen)
                } else {
                    return self.err("< or ( after ROW");
                };
                let mut fields = Vec::new();
                loop {
                    let fname = self.p.parse_identifier()?;
                    let t = self.data_type()?;
                    let nullable = self.nullability()?;
                    if self.pending_gt == 0 {
                        if let Token::SingleQuotedString(_) = self.p.peek_token().token {
                            self.p.next_token(); // field description
                        }
                    }
                    fields.push(Field::new(fname.value, t, nullable));
                    if self.pending_gt == 0 && self.p.consume_token(&Token::Comma) {
                        continue;
                    }
                    break;
                }
                match close {
                    None => self.expect_gt()?,
                    Some(t) => {
                        self.p.expect_token(&t)?;
                    }
                }
                DataType::Struct(Fields::from(fields))
            }
            "ARRAY" => {
                self.p.expect_token(&Token::Lt)?;
                let t = self.data_type()?;
                let nullable = self.nullability()?;
                self.expect_gt()?;
                DataType::List(Arc::new(Field::new("element", t, nullable)))
            }
            "MAP" => {
                self.p.expect_token(&Token::Lt)?;
                let k = self.data_type()?;
                self.nullability()?;
                self.p.expect_token(&Token::Comma)?;
                let v = self.data_type()?;
                let vn = self.nullability()?;
                self.expect_gt()?;
                let entries = Field::new(
                    "entries",
                    DataType::Struct(Fields::from(vec![
                        Field::new("key", k, false),
                        Field::new("value", v, vn),
                    ])),
                    false,
                );
                DataType::Map(Arc::new(entries), false)
            }
            other => {
                return Err(ParserError::ParserError(format!(
                    "unknown data type {other} at Line: {}, Column: {}",
                    at.line, at.column
                )))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlinkDialect;

    fn parse(s: &str) -> (DataType, bool) {
        let mut p = Parser::new(&FlinkDialect).try_with_sql(s).unwrap();
        parse_flink_type(&mut p).unwrap()
    }

    #[test]
    fn scalar_types() {
        assert_eq!(parse("BIGINT"), (DataType::Int64, true));
        assert_eq!(
            parse("DECIMAL(23, 3) NOT NULL"),
            (DataType::Decimal128(23, 3), false)
        );
        assert_eq!(
            parse("TIMESTAMP(3)").0,
            DataType::Timestamp(TimeUnit::Millisecond, None)
        );
        assert_eq!(parse("VARCHAR").0, DataType::Utf8);
    }

    #[test]
    fn nested_rows_close_with_shift_right() {
        let (t, _) = parse("ROW<a BIGINT, b ROW<`dateTime` TIMESTAMP(3), c STRING>>");
        let DataType::Struct(f) = t else {
            panic!("not a struct")
        };
        assert_eq!(f.len(), 2);
        let DataType::Struct(inner) = f[1].data_type() else {
            panic!("inner not a struct")
        };
        assert_eq!(inner[0].name(), "dateTime");
    }

    #[test]
    fn unknown_types_are_named() {
        let mut p = Parser::new(&FlinkDialect).try_with_sql("FOO").unwrap();
        assert!(parse_flink_type(&mut p)
            .unwrap_err()
            .to_string()
            .contains("FOO"));
    }
}
