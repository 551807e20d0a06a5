//! `'connector' = 'filesystem'`: reads and writes files in the `csv` and `json` formats.
//!
//! Reading: `path` is a file or a directory (every file in it whose name does not start with
//! `.` or `_`, in name order); files are shared out among source subtasks. Writing: each sink
//! subtask writes `part-<run>-<subtask>-<n>` files, as `.inprogress` until committed at the
//! end of input; with `PARTITIONED BY` rows go to `col=value/…` directories (Hive-style, as
//! Flink), partition columns left out of the files, and `_SUCCESS` marks each committed
//! partition when `sink.partition-commit.policy.kind` includes `success-file`. A bounded
//! table can also be looked up: a lookup join loads it whole and reloads it after
//! `lookup.join.cache.ttl` (Flink's default: 60 min).

mod csv_records;
mod decode;
pub mod encode;
mod sink;
mod source;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ColumnFilter, Connector, TableDescriptor};
use crate::operator::{OperatorFactory, SourceFactory};
use crate::{Error, Result};

pub struct FilesystemConnector;

const KEYS: &[&str] = &[
    "path",
    "format",
    "source.monitor-interval",
    "lookup.join.cache.ttl",
    "sink.parallelism",
    "sink.rolling-policy.file-size",
    "sink.rolling-policy.rollover-interval",
    "sink.rolling-policy.check-interval",
    "sink.rolling-policy.inactivity-interval",
    "sink.partition-commit.trigger",
    "sink.partition-commit.delay",
    "sink.partition-commit.watermark-time-zone",
    "sink.partition-commit.policy.kind",
    "sink.partition-commit.success-file.name",
    "partition.time-extractor.kind",
    "partition.time-extractor.timestamp-pattern",
    "partition.time-extractor.timestamp-formatter",
    "partition.default-name",
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

/// The file formats both directions understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Json,
}

/// Format options shared by reading and writing.
#[derive(Debug, Clone)]
pub(crate) struct FormatOptions {
    pub format: Format,
    pub delimiter: u8,
    pub quote: Option<u8>,
    pub allow_comments: bool,
    pub null_literal: Option<String>,
    pub ignore_parse_errors: bool,
    pub fail_on_missing_field: bool,
}

impl FormatOptions {
    fn from_table(table: &TableDescriptor) -> Result<Self> {
        let o = &table.options;
        let t = &table.name;
        let format = match o.required(t, "format")? {
            "csv" => Format::Csv,
            "json" => Format::Json,
            other => {
                return Err(Error::user(format!(
                    "table '{t}': unknown format '{other}' for connector 'filesystem'; valid formats: csv, json"
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
            Format::Csv => "csv.ignore-parse-errors",
            Format::Json => "json.ignore-parse-errors",
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

/// `path` without a `file://` scheme; other schemes are refused.
pub(crate) fn local_path(table: &TableDescriptor) -> Result<PathBuf> {
    let raw = table.options.required(&table.name, "path")?;
    if let Some(rest) = raw.strip_prefix("file://") {
        return Ok(PathBuf::from(rest));
    }
    if let Some((scheme, _)) = raw.split_once("://") {
        return Err(Error::user(format!(
            "table '{}': path '{raw}' uses scheme '{scheme}'; only local paths and file:// are supported",
            table.name
        )));
    }
    Ok(PathBuf::from(raw))
}

/// The files a source reads under `path`, in name order.
pub(crate) fn list_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("cannot read '{}'", path.display()), e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("cannot list '{}'", dir.display()), e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::io(format!("cannot list '{}'", dir.display()), e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

impl Connector for FilesystemConnector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn option_keys(&self) -> &'static [&'static str] {
        KEYS
    }

    fn source(
        &self,
        table: &TableDescriptor,
        projection: Option<&[usize]>,
        _filters: &[ColumnFilter],
    ) -> Result<Arc<dyn SourceFactory>> {
        source::factory(table, projection, FormatOptions::from_table(table)?)
    }

    fn lookup_source(
        &self,
        table: &TableDescriptor,
        projection: Option<&[usize]>,
    ) -> Result<Arc<dyn SourceFactory>> {
        if table.options.get("source.monitor-interval").is_some() {
            return Err(Error::user(format!(
                "table '{}': a filesystem table with 'source.monitor-interval' is unbounded and \
                 cannot be looked up (FOR SYSTEM_TIME AS OF)",
                table.name
            )));
        }
        source::factory(table, projection, FormatOptions::from_table(table)?)
    }

    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn OperatorFactory>> {
        sink::factory(table, FormatOptions::from_table(table)?)
    }
}
