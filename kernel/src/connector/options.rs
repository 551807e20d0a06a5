//! Connector options (`WITH ('key' = 'value', …)`): lookup, parsing and validation with errors
//! that name the table, the key and what would have been valid.

use std::collections::BTreeMap;
use std::str::FromStr;

use arrow::datatypes::Schema;

use crate::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    map: BTreeMap<String, String>,
}

impl Options {
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Options { map }
    }

    /// The options with Flink's legacy descriptor keys (`connector.type`, `connector.path`,
    /// `format.type`, `format.*`), which Flink's own Nexmark q13 still uses, renamed to the
    /// keys of today's connectors.
    pub fn with_legacy_keys_renamed(self) -> Self {
        if !self.map.contains_key("connector.type") || self.map.contains_key("connector") {
            return self;
        }
        let format = self.map.get("format.type").cloned().unwrap_or_default();
        let map = self
            .map
            .into_iter()
            .map(|(k, v)| {
                let renamed = match k.as_str() {
                    "connector.type" => "connector".to_string(),
                    "connector.path" => "path".to_string(),
                    "format.type" => "format".to_string(),
                    _ => match k.strip_prefix("format.") {
                        Some(rest) if !format.is_empty() => format!("{format}.{rest}"),
                        _ => k,
                    },
                };
                (renamed, v)
            })
            .collect();
        Options { map }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.map.insert(key.into(), value.into());
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.map.iter()
    }

    pub fn required(&self, table: &str, key: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| {
            Error::user(format!(
                "table '{table}': required option '{key}' is missing"
            ))
        })
    }

    /// Parses an option with `FromStr`; `what` describes the expected value for the error.
    pub fn parse<T: FromStr>(&self, table: &str, key: &str, what: &str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<T>().map(Some).map_err(|_| {
                Error::user(format!(
                    "table '{table}': option '{key}' = '{v}' is not {what}"
                ))
            }),
        }
    }

    pub fn bool(&self, table: &str, key: &str, default: bool) -> Result<bool> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v == "true" => Ok(true),
            Some(v) if v == "false" => Ok(false),
            Some(v) => Err(Error::user(format!(
                "table '{table}': option '{key}' = '{v}' is not 'true' or 'false'"
            ))),
        }
    }

    /// Checks every key against the connector's accepted keys (`#` matches a column name).
    pub fn check_known(
        &self,
        table: &str,
        connector: &str,
        accepted: &[&str],
        schema: &Schema,
    ) -> Result<()> {
        for key in self.map.keys() {
            if key == "connector" || accepted.iter().any(|a| matches_key(a, key, schema)) {
                continue;
            }
            let mut valid: Vec<&str> = accepted.to_vec();
            valid.sort_unstable();
            return Err(Error::user(format!(
                "table '{table}': unknown option '{key}' for connector '{connector}'; valid options: connector, {}",
                valid.join(", ")
            )));
        }
        Ok(())
    }
}

fn matches_key(pattern: &str, key: &str, schema: &Schema) -> bool {
    match pattern.split_once('#') {
        None => pattern == key,
        Some((pre, post)) => key
            .strip_prefix(pre)
            .and_then(|rest| rest.strip_suffix(post))
            .is_some_and(|col| schema.fields().iter().any(|f| f.name() == col)),
    }
}

/// Parses Flink durations and sizes of the forms `10s`, `1 min`, `500 ms`, `2h` into
/// milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "mins" | "minute" | "minutes" | "m" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Parses Flink memory sizes (`128mb`, `1 gb`, `4096`) into bytes.
pub fn parse_size_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kibibytes" => 1 << 10,
        "m" | "mb" | "mebibytes" => 1 << 20,
        "g" | "gb" | "gibibytes" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn unknown_keys_are_named_with_the_valid_ones() {
        let mut o = Options::default();
        o.set("connector", "datagen");
        o.set("fields.id.kind", "sequence");
        o.set("rows-per-secnd", "5");
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
        let err = o
            .check_known(
                "t",
                "datagen",
                &["rows-per-second", "fields.#.kind"],
                &schema,
            )
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("'rows-per-secnd'") && msg.contains("rows-per-second"),
            "{msg}"
        );
        o.set("rows-per-secnd", "");
        let mut ok = Options::default();
        ok.set("fields.id.kind", "random");
        ok.check_known("t", "datagen", &["fields.#.kind"], &schema)
            .unwrap();
        ok.set("fields.nope.kind", "random");
        assert!(ok
            .check_known("t", "datagen", &["fields.#.kind"], &schema)
            .is_err());
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration_ms("1 min"), Some(60_000));
        assert_eq!(parse_duration_ms("10s"), Some(10_000));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("ten"), None);
        assert_eq!(parse_size_bytes("128MB"), Some(128 << 20));
    }
}
