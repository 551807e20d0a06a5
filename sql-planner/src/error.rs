//! Planning errors, located in the script.

use std::fmt;

/// A 1-based position in the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    pub line: u64,
    pub column: u64,
}

/// A script that cannot be planned: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub message: String,
    pub location: Option<Location>,
    /// Problems with the environment rather than the SQL (a connector that fails to start).
    pub internal: bool,
}

impl PlanError {
    pub fn at(message: impl Into<String>, location: Location) -> Self {
        PlanError {
            message: message.into(),
            location: Some(location),
            internal: false,
        }
    }

    /// From a sqlparser error, whose text ends with " at Line: L, Column: C".
    pub fn from_parser(err: sqlparser::parser::ParserError, fallback: Location) -> Self {
        let text = match err {
            sqlparser::parser::ParserError::ParserError(s)
            | sqlparser::parser::ParserError::TokenizerError(s) => s,
            sqlparser::parser::ParserError::RecursionLimitExceeded => {
                "statement nested too deeply".to_string()
            }
        };
        match split_location(&text) {
            Some((msg, loc)) => PlanError::at(format!("SQL parse error: {msg}"), loc),
            None => PlanError::at(format!("SQL parse error: {text}"), fallback),
        }
    }

    /// From a kernel error raised while building a statement's operators.
    pub fn from_kernel(err: kernel::Error, location: Location) -> Self {
        let internal = !err.is_user_error();
        PlanError {
            message: err.to_string(),
            location: Some(location),
            internal,
        }
    }
}

/// DataFusion names a SQL construct it does not plan by the Debug dump of its syntax tree
/// ("Unsupported ast node TableFunction { expr: Function(... value: \"HOP\" ... Location(114,14)
/// ...) } in create_relation"), often kilobytes long. This keeps what a user needs: the kind of
/// construct, its first name, and where it starts.
pub(crate) fn unsupported_construct(text: &str) -> Option<(String, Option<Location>)> {
    let dump = text.strip_prefix("Unsupported ast node ")?;
    let kind: String = dump
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .flat_map(|c| {
            let space = c.is_ascii_uppercase().then_some(' ');
            space
                .into_iter()
                .chain(std::iter::once(c.to_ascii_lowercase()))
        })
        .collect();
    let name = dump
        .split_once("value: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(name, _)| format!(" `{name}`"))
        .unwrap_or_default();
    let location = dump.match_indices("Location(").find_map(|(i, m)| {
        let (line, rest) = dump[i + m.len()..].split_once(',')?;
        let column = rest.split_once(')')?.0;
        let loc = Location {
            line: line.trim().parse().ok()?,
            column: column.trim().parse().ok()?,
        };
        (loc.line > 0).then_some(loc)
    });
    Some((
        format!("unsupported SQL construct: {}{name}", kind.trim()),
        location,
    ))
}

fn split_location(text: &str) -> Option<(String, Location)> {
    let idx = text.rfind(" at Line: ")?;
    let rest = &text[idx + " at Line: ".len()..];
    let (line, col) = rest.split_once(", Column: ")?;
    let line = line.trim().parse().ok()?;
    let column = col
        .trim()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((text[..idx].to_string(), Location { line, column }))
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(l) if l.line > 0 => write!(
                f,
                "{} at line {}, column {}",
                self.message, l.line, l.column
            ),
            _ => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for PlanError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datafusion_syntax_dumps_become_one_line() {
        let dump = "Unsupported ast node TableFunction { expr: Function(Function { name: \
            ObjectName([Identifier(Ident { value: \"HOP\", quote_style: None, span: \
            Span(Location(114,14)..Location(114,17)) })]) }) } in create_relation";
        let (msg, loc) = unsupported_construct(dump).unwrap();
        assert_eq!(msg, "unsupported SQL construct: table function `HOP`");
        assert_eq!(
            loc,
            Some(Location {
                line: 114,
                column: 14
            })
        );
        assert!(unsupported_construct("Table 'x' not found").is_none());
    }

    #[test]
    fn parser_locations_are_lifted_out_of_the_message() {
        let e = sqlparser::parser::ParserError::ParserError(
            "Expected: ), found: x at Line: 3, Column: 14".into(),
        );
        let p = PlanError::from_parser(e, Location::default());
        assert_eq!(
            p.location,
            Some(Location {
                line: 3,
                column: 14
            })
        );
        assert_eq!(
            p.to_string(),
            "SQL parse error: Expected: ), found: x at line 3, column 14"
        );
    }
}
