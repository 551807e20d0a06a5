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
