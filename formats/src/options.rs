//! The format options of a table (`'format' = 'csv'`, `'csv.field-delimiter'`, …), read and
//! checked once, with errors that name the table, the key and what would be valid.

use kernel::connector::TableDescriptor;
use kernel::{Error, Result};

/// The text formats eddy reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    Csv,
    Json,
}

impl TextFormat {
    /// The file name extension of the format.
    pub fn extension(self) -> &'static str {
        match self {
            TextFormat::Csv => "csv",
            TextFormat::Json => "json",
        }
    }
}

/// The option keys of the text formats, for a connector's list of accepted keys.
pub const FORMAT_OPTION_KEYS: &[&str] = &[
    "format",
    "csv.field-delimiter",
    "csv.ignore-parse-errors",
    "csv.allow-comments",
    "csv.null-literal",
    "csv.quote-character",
    "csv.disable-quote-character",
    "json.ignore-parse-errors",
    "json.fail-on-missing-field",
    "json.timestamp-format.standard",
];

/// Format options shared by reading and writing.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    pub format: TextFormat,
    pub delimiter: u8,
    pub quote: Option<u8>,
    pub allow_comments: bool,
    pub null_literal: Option<String>,
    /// Malformed records are skipped and counted instead of failing the job.
    pub ignore_parse_errors: bool,
    pub fail_on_missing_field: bool,
}

impl FormatOptions {
    /// The options of `table`, whose `format` key is required; `connector` names the table's
    /// connector in errors.
    pub fn from_table(table: &TableDescriptor, connector: &str) -> Result<Self> {
        let o = &table.options;
        let t = &table.name;
        let format = match o.required(t, "format")? {
            "csv" => TextFormat::Csv,
            "json" => TextFormat::Json,
            other => {
                return Err(Error::user(format!(
                    "table '{t}': unknown format '{other}' for connector '{connector}'; valid formats: csv, json"
                )))
            }
        };
        let single_byte = |key: &str, default: u8| -> Result<u8> {
            match o.get(key) {
                None => Ok(default),
                Some(v) => {
                    let v = if v == "\\t" { "\t" } else { v };
                    match v.as_bytes() {
                        [b] => Ok(*b),
                        _ => Err(Error::user(format!(
                            "table '{t}': option '{key}' = '{v}' must be one character"
                        ))),
                    }
                }
            }
        };
        let quote = if o.bool(t, "csv.disable-quote-character", false)? {
            None
        } else {
            Some(single_byte("csv.quote-character", b'"')?)
        };
        let ignore_key = match format {
            TextFormat::Csv => "csv.ignore-parse-errors",
            TextFormat::Json => "json.ignore-parse-errors",
        };
        Ok(FormatOptions {
            format,
            delimiter: single_byte("csv.field-delimiter", b',')?,
            quote,
            allow_comments: o.bool(t, "csv.allow-comments", false)?,
            null_literal: o.get("csv.null-literal").map(str::to_string),
            ignore_parse_errors: o.bool(t, ignore_key, false)?,
            fail_on_missing_field: o.bool(t, "json.fail-on-missing-field", false)?,
        })
    }
}
