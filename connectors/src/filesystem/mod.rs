//! `'connector' = 'filesystem'`: reads and writes files in the `csv` and `json` formats.
//!
//! Reading: `path` is a file or a directory (every file in it whose name does not start with
//! `.` or `_`, in name order); files are shared out among source subtasks. Writing: each sink
//! subtask writes `part-<run>-<subtask>-<n>` files, as `.inprogress` until committed at the
//! end of input; with `PARTITIONED BY` rows go to `col=value/…` directories (Hive-style, as
//! Flink), partition columns left out of the files, and `_SUCCESS` marks each committed
//! partition (or the table's directory, when it has no partitions) once the input has ended,
//! when `sink.partition-commit.policy.kind` includes `success-file`. A bounded
//! table can also be looked up: a lookup join loads it whole and reloads it after
//! `lookup.join.cache.ttl` (Flink's default: 60 min).

mod sink;
mod source;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use formats::{FormatOptions, FORMAT_OPTION_KEYS};
use kernel::connector::{ColumnFilter, Connector, TableDescriptor};
use kernel::operator::SourceFactory;
use kernel::sink::SinkFactory;
use kernel::{Error, Result};

pub struct FilesystemConnector;

/// The connector's own keys; the format's are [`FORMAT_OPTION_KEYS`].
const KEYS: &[&str] = &[
    "path",
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
];

/// Every key the connector accepts: its own and the text formats'.
fn option_keys() -> &'static [&'static str] {
    static ALL: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| KEYS.iter().chain(FORMAT_OPTION_KEYS).copied().collect())
}

/// `path` without a `file://` scheme; other schemes are refused.
fn local_path(table: &TableDescriptor) -> Result<PathBuf> {
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
fn list_files(path: &Path) -> Result<Vec<PathBuf>> {
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
        option_keys()
    }

    fn source(
        &self,
        table: &TableDescriptor,
        projection: Option<&[usize]>,
        _filters: &[ColumnFilter],
    ) -> Result<Arc<dyn SourceFactory>> {
        source::factory(
            table,
            projection,
            FormatOptions::from_table(table, self.name())?,
        )
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
        source::factory(
            table,
            projection,
            FormatOptions::from_table(table, self.name())?,
        )
    }

    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        sink::factory(table, FormatOptions::from_table(table, self.name())?)
    }

    fn location(&self, table: &TableDescriptor) -> Result<Option<PathBuf>> {
        Ok(Some(local_path(table)?))
    }
}
