//! The filesystem sink: part files per subtask, optionally in Hive-style partition
//! directories, published by the two-phase commit of the `Sink` trait.
//!
//! Rows go to hidden `.part-….inprogress` files. At a barrier every open file is closed,
//! synced and named in a committable (its in-progress and final path); the commit renames
//! it, and a rename already done is skipped, so a commit can run again after a restore.
//! Files rolled by size wait for the next barrier. `_SUCCESS` markers are written when the
//! end of input is committed, in every directory the sink committed files to.
//!
//! Every subtask of every run names its files with an id of its own, so a restarted job never
//! writes over what an earlier attempt committed. Before a run starts, in-progress files that
//! the restored checkpoint does not name (left by a killed run) are deleted: nothing but
//! committed part files stays visible, and nothing piles up.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions as DisplayOptions};
use formats::{write_csv, write_json, FormatOptions, TextFormat, TIMESTAMP_FORMAT};
use kernel::checkpoint::{CheckpointId, Committable, END_OF_INPUT};
use kernel::connector::{parse_size_bytes, TableDescriptor};
use kernel::sink::{Sink, SinkFactory};
use kernel::{Error, Result};
use serde::{Deserialize, Serialize};

use super::local_path;

pub(super) fn factory(
    table: &TableDescriptor,
    opts: FormatOptions,
) -> Result<Arc<dyn SinkFactory>> {
    let path = local_path(table)?;
    let t = &table.name;
    let mut partition_cols = Vec::new();
    for k in &table.partition_keys {
        let idx = table.schema.index_of(k).map_err(|_| {
            Error::user(format!(
                "table '{t}': PARTITIONED BY names unknown column '{k}'"
            ))
        })?;
        partition_cols.push(idx);
    }
    let data_cols: Vec<usize> = (0..table.schema.fields().len())
        .filter(|i| !partition_cols.contains(i))
        .collect();
    let rolling_size = match table.options.get("sink.rolling-policy.file-size") {
        None => 128 << 20,
        Some(v) => parse_size_bytes(v).ok_or_else(|| {
            Error::user(format!(
                "table '{t}': option 'sink.rolling-policy.file-size' = '{v}' is not a size"
            ))
        })?,
    };
    let mut success_file = false;
    if let Some(kinds) = table.options.get("sink.partition-commit.policy.kind") {
        for kind in kinds.split(',').map(str::trim) {
            match kind {
                "success-file" => success_file = true,
                "metastore" | "custom" => {
                    return Err(Error::user(format!(
                        "table '{t}': 'sink.partition-commit.policy.kind' = '{kind}' is not \
                         supported (it needs a Hive metastore or a Java class); eddy commits \
                         with 'success-file'"
                    )))
                }
                other => {
                    return Err(Error::user(format!(
                        "table '{t}': 'sink.partition-commit.policy.kind' = '{other}' is no \
                         policy; valid policies: success-file"
                    )))
                }
            }
        }
    }
    let success_name = table
        .options
        .get("sink.partition-commit.success-file.name")
        .unwrap_or("_SUCCESS")
        .to_string();
    let default_partition = table
        .options
        .get("partition.default-name")
        .unwrap_or("__DEFAULT_PARTITION__")
        .to_string();
    let run_id = format!(
        "{:x}-{:x}",
        chrono::Utc::now().timestamp_millis(),
        std::process::id()
    );
    Ok(Arc::new(FsSinkFactory {
        path,
        schema: table.schema.clone(),
        partition_cols,
        data_cols,
        opts,
        rolling_size,
        success_file,
        success_name,
        default_partition,
        run_id,
    }))
}

#[derive(Debug)]
struct FsSinkFactory {
    path: PathBuf,
    schema: SchemaRef,
    partition_cols: Vec<usize>,
    data_cols: Vec<usize>,
    opts: FormatOptions,
    rolling_size: u64,
    success_file: bool,
    success_name: String,
    default_partition: String,
    run_id: String,
}

/// Tells apart the sinks one process creates (restarts make new ones).
static SINK_SEQ: AtomicU64 = AtomicU64::new(0);

/// The directories under `dir` (itself excluded) that hold committed part files.
fn partition_dirs(dir: &Path, found: &mut BTreeSet<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot list '{}'", dir.display()), e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() || entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let has_parts = std::fs::read_dir(&path).is_ok_and(|d| {
            d.flatten()
                .any(|f| f.file_name().to_string_lossy().starts_with("part-"))
        });
        if has_parts {
            found.insert(path.clone());
        }
        partition_dirs(&path, found)?;
    }
    Ok(())
}

/// The in-progress files under `dir` and its partition directories.
fn in_progress_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("cannot list '{}'", dir.display()), e)),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() && !name.starts_with('.') {
            in_progress_files(&path, found)?;
        } else if name.starts_with(".part-") && name.ends_with(".inprogress") {
            found.push(path);
        }
    }
    Ok(())
}

impl SinkFactory for FsSinkFactory {
    /// Deletes in-progress files no restored committable names: a killed run's leftovers.
    fn prepare(&self, restored: &[Committable]) -> Result<()> {
        let keep: BTreeSet<PathBuf> = restored
            .iter()
            .map(|c| PendingFile::decode(c).map(|f| f.in_progress))
            .collect::<Result<_>>()?;
        let mut found = Vec::new();
        in_progress_files(&self.path, &mut found)?;
        for path in found.into_iter().filter(|p| !keep.contains(p)) {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(Error::io(format!("cannot delete '{}'", path.display()), e));
                }
            }
        }
        Ok(())
    }

    fn create(&self, subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        std::fs::create_dir_all(&self.path)
            .map_err(|e| Error::io(format!("cannot create '{}'", self.path.display()), e))?;
        let data_schema = Arc::new(self.schema.project(&self.data_cols)?);
        let run_id = format!(
            "{}-{:x}",
            self.run_id,
            SINK_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Box::new(FsSink {
            spec: self.params(),
            run_id,
            subtask,
            data_schema,
            open: HashMap::new(),
            closed: Vec::new(),
            next_file: 0,
            committed_dirs: BTreeSet::new(),
        }))
    }

    fn describe(&self) -> String {
        let parts: Vec<&str> = self
            .partition_cols
            .iter()
            .map(|&i| self.schema.field(i).name().as_str())
            .collect();
        format!(
            "sink filesystem {} format {:?} partitioned by {parts:?}",
            self.path.display(),
            self.opts.format
        )
    }
}

impl FsSinkFactory {
    fn params(&self) -> Arc<FsSinkFactory> {
        Arc::new(FsSinkFactory {
            path: self.path.clone(),
            schema: self.schema.clone(),
            partition_cols: self.partition_cols.clone(),
            data_cols: self.data_cols.clone(),
            opts: self.opts.clone(),
            rolling_size: self.rolling_size,
            success_file: self.success_file,
            success_name: self.success_name.clone(),
            default_partition: self.default_partition.clone(),
            run_id: self.run_id.clone(),
        })
    }
}

/// A part file being written.
struct PartFile {
    pending: PendingFile,
    out: BufWriter<File>,
    bytes: u64,
}

/// A part file written and synced, to be published: the committable of the sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PendingFile {
    /// The directory it lands in: the table's, or a partition's.
    dir: PathBuf,
    in_progress: PathBuf,
    final_path: PathBuf,
}

impl PendingFile {
    fn encode(&self) -> Result<Committable> {
        serde_json::to_vec(self)
            .map(Committable)
            .map_err(|e| Error::internal(format!("encoding a part file to commit: {e}")))
    }

    fn decode(c: &Committable) -> Result<Self> {
        serde_json::from_slice(&c.0)
            .map_err(|e| Error::internal(format!("a committed part file is unreadable: {e}")))
    }

    /// Renames the file to its final name; done already (a commit run again after a
    /// restore) when only the final file is there. When neither is, the file was committed
    /// and has since been moved or deleted (a restore from an old savepoint, whose files
    /// a downstream job took): as Flink's committer, that is not an error; it is logged.
    fn publish(&self) -> Result<()> {
        match std::fs::rename(&self.in_progress, &self.final_path) {
            Ok(()) => Ok(()),
            Err(_) if !self.in_progress.exists() && self.final_path.exists() => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.in_progress.exists() => {
                tracing::warn!(
                    "part file {} was committed before and is gone since; not committed again",
                    self.final_path.display()
                );
                Ok(())
            }
            Err(e) => Err(Error::io(
                format!("cannot commit '{}'", self.final_path.display()),
                e,
            )),
        }
    }
}

/// Flushes and syncs `part`, so that what it holds survives a crash once a checkpoint
/// names it.
fn close(part: PartFile) -> Result<PendingFile> {
    let path = part.pending.in_progress.display().to_string();
    let file = part
        .out
        .into_inner()
        .map_err(|e| Error::io(format!("cannot write '{path}'"), e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io(format!("cannot sync '{path}'"), e))?;
    Ok(part.pending)
}

struct FsSink {
    spec: Arc<FsSinkFactory>,
    /// Unique to this sink subtask in this run: it names the part files.
    run_id: String,
    subtask: usize,
    data_schema: SchemaRef,
    /// Open part file per partition directory (relative; "" without partitions).
    open: HashMap<String, PartFile>,
    /// Part files rolled by size, waiting for the next barrier.
    closed: Vec<PartFile>,
    next_file: u64,
    /// Directories files were committed to, for the success markers.
    committed_dirs: BTreeSet<PathBuf>,
}

/// Escapes a partition value for a path segment as Hive and Flink do (`:` → `%3A`, …).
pub(crate) fn escape_path_name(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        let needs = matches!(
            c,
            '"' | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '\x7f'
                | '{'
                | '['
                | ']'
                | '^'
        ) || (c as u32) < 0x20;
        if needs {
            s.push_str(&format!("%{:02X}", c as u32));
        } else {
            s.push(c);
        }
    }
    s
}

impl FsSink {
    fn file_for(&mut self, partition: &str) -> Result<&mut PartFile> {
        if !self.open.contains_key(partition) {
            let dir = if partition.is_empty() {
                self.spec.path.clone()
            } else {
                self.spec.path.join(partition)
            };
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot create '{}'", dir.display()), e))?;
            let name = format!(
                "part-{}-{}-{}.{}",
                self.run_id,
                self.subtask,
                self.next_file,
                self.spec.opts.format.extension()
            );
            self.next_file += 1;
            let in_progress = dir.join(format!(".{name}.inprogress"));
            let file = File::create(&in_progress)
                .map_err(|e| Error::io(format!("cannot create '{}'", in_progress.display()), e))?;
            let part = PartFile {
                pending: PendingFile {
                    final_path: dir.join(&name),
                    dir,
                    in_progress,
                },
                out: BufWriter::with_capacity(1 << 20, file),
                bytes: 0,
            };
            self.open.insert(partition.to_string(), part);
        }
        Ok(self.open.get_mut(partition).expect("inserted above"))
    }

    fn write_to(&mut self, partition: &str, batch: &RecordBatch) -> Result<()> {
        let format = self.spec.opts.format;
        let delimiter = self.spec.opts.delimiter;
        let rolling_size = self.spec.rolling_size;
        let part = self.file_for(partition)?;
        let mut buf = Vec::with_capacity(batch.num_rows() * 64);
        match format {
            TextFormat::Csv => write_csv(batch, delimiter, false, &mut buf)?,
            TextFormat::Json => write_json(batch, &mut buf)?,
        }
        part.out.write_all(&buf).map_err(|e| {
            Error::io(
                format!("cannot write '{}'", part.pending.in_progress.display()),
                e,
            )
        })?;
        part.bytes += buf.len() as u64;
        if part.bytes >= rolling_size {
            if let Some(done) = self.open.remove(partition) {
                self.closed.push(done);
            }
        }
        Ok(())
    }

    /// The partition directory of every row, as `k1=v1/k2=v2`.
    fn partition_of_rows(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        let opts = DisplayOptions::default().with_timestamp_format(Some(TIMESTAMP_FORMAT));
        let cols: Vec<(&str, &ArrayRef)> = self
            .spec
            .partition_cols
            .iter()
            .map(|&i| (self.spec.schema.field(i).name().as_str(), batch.column(i)))
            .collect();
        let fmts = cols
            .iter()
            .map(|(_, c)| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(batch.num_rows());
        for r in 0..batch.num_rows() {
            let mut dir = String::new();
            for (k, ((name, col), f)) in cols.iter().zip(&fmts).enumerate() {
                if k > 0 {
                    dir.push('/');
                }
                let value = if col.is_null(r) {
                    self.spec.default_partition.clone()
                } else {
                    f.value(r).to_string()
                };
                dir.push_str(&escape_path_name(name));
                dir.push('=');
                dir.push_str(&escape_path_name(&value));
            }
            out.push(dir);
        }
        Ok(out)
    }
}

impl Sink for FsSink {
    fn name(&self) -> &str {
        "FilesystemSink"
    }

    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let data = batch.project(&self.spec.data_cols)?;
        let data = RecordBatch::try_new(self.data_schema.clone(), data.columns().to_vec())?;
        if self.spec.partition_cols.is_empty() {
            return self.write_to("", &data);
        }
        // Group rows by partition, keeping first-seen order, then gather each group.
        let dirs = self.partition_of_rows(&batch)?;
        let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (r, d) in dirs.iter().enumerate() {
            let g = *index.entry(d.as_str()).or_insert_with(|| {
                groups.push((d.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(r as u32);
        }
        for (dir, rows) in groups {
            let part = if rows.len() == data.num_rows() {
                data.clone()
            } else {
                take_record_batch(&data, &UInt32Array::from(rows))?
            };
            self.write_to(&dir, &part)?;
        }
        Ok(())
    }

    /// Closes every part file, open or rolled, and names them for the commit.
    fn pre_commit(&mut self, _checkpoint_id: CheckpointId) -> Result<Vec<Committable>> {
        let open: Vec<PartFile> = self.open.drain().map(|(_, p)| p).collect();
        self.closed.extend(open);
        self.closed
            .drain(..)
            .map(|part| close(part)?.encode())
            .collect()
    }

    fn commit(
        &mut self,
        checkpoint_id: CheckpointId,
        committables: Vec<Committable>,
    ) -> Result<()> {
        for c in &committables {
            let file = PendingFile::decode(c)?;
            file.publish()?;
            self.committed_dirs.insert(file.dir);
        }
        // A partition is complete only when the input is: markers wait for its end. A
        // table without partitions is marked in its own directory.
        if self.spec.success_file && checkpoint_id == END_OF_INPUT {
            let dirs = if self.spec.partition_cols.is_empty() {
                BTreeSet::from([self.spec.path.clone()])
            } else {
                // Partitions committed before a restart are in no committable of this run:
                // every partition directory holding part files is complete now.
                let mut dirs = std::mem::take(&mut self.committed_dirs);
                partition_dirs(&self.spec.path, &mut dirs)?;
                dirs
            };
            for d in dirs {
                let marker: &Path = &d.join(&self.spec.success_name);
                File::create(marker)
                    .map_err(|e| Error::io(format!("cannot create '{}'", marker.display()), e))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{escape_path_name, PendingFile};

    #[test]
    fn a_commit_run_again_finds_the_file_committed_or_taken_away() {
        let dir = tempfile::tempdir().unwrap();
        let file = PendingFile {
            dir: dir.path().to_path_buf(),
            in_progress: dir.path().join(".part-0.csv.inprogress"),
            final_path: dir.path().join("part-0.csv"),
        };
        std::fs::write(&file.in_progress, "1,2\n").unwrap();
        file.publish().unwrap();
        assert_eq!(std::fs::read_to_string(&file.final_path).unwrap(), "1,2\n");
        // Again after a restore: already done.
        file.publish().unwrap();
        // The committed file moved away by a downstream job, then a restore from an old
        // savepoint commits it once more: nothing to do, and no error.
        std::fs::remove_file(&file.final_path).unwrap();
        file.publish().unwrap();
        assert!(!file.final_path.exists());
    }

    #[test]
    fn partition_values_are_escaped_like_hive() {
        assert_eq!(escape_path_name("10:05"), "10%3A05");
        assert_eq!(escape_path_name("2015-07-15"), "2015-07-15");
        assert_eq!(escape_path_name("a/b=c"), "a%2Fb%3Dc");
    }
}
