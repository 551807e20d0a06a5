//! The filesystem source: reads its share of the files, a batch at a time.
//!
//! Each file is a split. A checkpoint records, per file of the subtask, whether it is read
//! through, and for the file being read the byte offset and line where the next record
//! starts; restored, the source seeks there and goes on. Files are listed when the job
//! first starts; a restored job reads the files its checkpoint names.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use formats::csv::{append_csv_record, CsvRecords};
use formats::json::append_json_line;
use formats::{FormatOptions, RowsBuilder, TextFormat};
use kernel::checkpoint::{CheckpointId, SplitState};
use kernel::connector::TableDescriptor;
use kernel::metrics::JobMetrics;
use kernel::operator::{OperatorContext, Source, SourceFactory, SourcePoll};
use kernel::{Error, Result};
use serde::{Deserialize, Serialize};

use super::{list_files, local_path};

/// Where a file stands in a checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct FilePosition {
    /// Bytes read through the last record returned.
    offset: u64,
    /// The line the next record starts on.
    line: u64,
    /// Read to its end.
    done: bool,
}

const BATCH_ROWS: usize = 8192;

pub(super) fn factory(
    table: &TableDescriptor,
    projection: Option<&[usize]>,
    opts: FormatOptions,
) -> Result<Arc<dyn SourceFactory>> {
    let path = local_path(table)?;
    let all: Vec<usize> = (0..table.schema.fields().len()).collect();
    let columns = projection.unwrap_or(&all).to_vec();
    let schema = Arc::new(table.schema.project(&columns)?);
    for f in schema.fields() {
        formats::ColumnBuilder::new(f.data_type()).map_err(|ty| {
            Error::user(format!(
                "table '{}': the filesystem source cannot read column '{}' of type {ty}",
                table.name,
                f.name()
            ))
        })?;
    }
    if opts.format == TextFormat::Csv {
        if let Some(f) = schema
            .fields()
            .iter()
            .find(|f| matches!(f.data_type(), arrow::datatypes::DataType::Struct(_)))
        {
            return Err(Error::user(format!(
                "table '{}': csv cannot hold ROW column '{}'; use json",
                table.name,
                f.name()
            )));
        }
    }
    Ok(Arc::new(FsSourceFactory {
        path,
        columns,
        width: table.schema.fields().len(),
        schema,
        opts,
    }))
}

#[derive(Debug)]
struct FsSourceFactory {
    path: PathBuf,
    /// Projected file columns, in output order.
    columns: Vec<usize>,
    /// Number of columns in the file.
    width: usize,
    schema: SchemaRef,
    opts: FormatOptions,
}

impl SourceFactory for FsSourceFactory {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        // Listed when the job starts, so files written until then are read.
        let files: VecDeque<(PathBuf, FilePosition)> = list_files(&self.path)?
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism == subtask)
            .map(|(_, f)| (f, FilePosition::default()))
            .collect();
        Ok(Box::new(self.source(files, Vec::new())))
    }

    fn restore(
        &self,
        _subtask: usize,
        _parallelism: usize,
        splits: Vec<SplitState>,
    ) -> Result<Box<dyn Source>> {
        let mut files = VecDeque::new();
        let mut done = Vec::new();
        for split in splits {
            let at: FilePosition = serde_json::from_slice(&split.position).map_err(|e| {
                Error::user(format!(
                    "the checkpointed position of file '{}' does not parse: {e}",
                    split.split
                ))
            })?;
            if at.done {
                done.push(PathBuf::from(split.split));
            } else {
                files.push_back((PathBuf::from(split.split), at));
            }
        }
        Ok(Box::new(self.source(files, done)))
    }

    fn describe(&self) -> String {
        format!(
            "source filesystem {} format {:?}",
            self.path.display(),
            self.opts.format
        )
    }
}

impl FsSourceFactory {
    fn source(&self, files: VecDeque<(PathBuf, FilePosition)>, done: Vec<PathBuf>) -> FsSource {
        let names = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        FsSource {
            files,
            done,
            reader: None,
            columns: self.columns.clone(),
            names,
            width: self.width,
            schema: self.schema.clone(),
            opts: self.opts.clone(),
            skipped: Skipped::default(),
        }
    }
}

enum Reader {
    Csv {
        path: PathBuf,
        rdr: Box<CsvRecords<File>>,
        record: ::csv::ByteRecord,
    },
    Json {
        path: PathBuf,
        rdr: BufReader<File>,
        line: Vec<u8>,
        line_no: u64,
        offset: u64,
    },
}

impl Reader {
    fn path(&self) -> &Path {
        match self {
            Reader::Csv { path, .. } | Reader::Json { path, .. } => path,
        }
    }

    /// Where the next record starts.
    fn position(&self) -> FilePosition {
        let (offset, line) = match self {
            Reader::Csv { rdr, .. } => rdr.position(),
            Reader::Json {
                offset, line_no, ..
            } => (*offset, *line_no + 1),
        };
        FilePosition {
            offset,
            line,
            done: false,
        }
    }
}

struct FsSource {
    /// Files still to read, from where they stand.
    files: VecDeque<(PathBuf, FilePosition)>,
    /// Files read to their end.
    done: Vec<PathBuf>,
    reader: Option<Reader>,
    columns: Vec<usize>,
    names: Vec<String>,
    width: usize,
    schema: SchemaRef,
    opts: FormatOptions,
    skipped: Skipped,
}

/// Malformed records skipped in the current file (`*.ignore-parse-errors`).
#[derive(Default)]
struct Skipped {
    records: u64,
    /// Physical lines those records took: a CSV quote never closed takes the rest of the
    /// file as one record.
    lines: u64,
    /// The skipped record that took the most lines: where it started and how many it took.
    longest: Option<(u64, u64)>,
}

impl Skipped {
    fn add(&mut self, line: u64, lines: u64) {
        self.records += 1;
        self.lines += lines;
        if self.longest.is_none_or(|(_, most)| lines > most) {
            self.longest = Some((line, lines));
        }
    }

    /// The end-of-job note for file `path`.
    fn note(&self, path: &str) -> String {
        let records = plural(self.records, "malformed record");
        let mut note = format!(
            "skipped {records} ({}) in {path}",
            plural(self.lines, "line")
        );
        if let Some((line, lines)) = self.longest.filter(|&(_, lines)| lines > 1) {
            note.push_str(&format!(
                "; the record at line {line} ran on for {lines} lines (a quote that is never closed?)"
            ));
        }
        note
    }
}

fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

impl FsSource {
    fn open(&self, path: PathBuf, at: FilePosition) -> Result<Reader> {
        let mut file = File::open(&path)
            .map_err(|e| Error::io(format!("cannot open '{}'", path.display()), e))?;
        if at.offset > 0 {
            file.seek(SeekFrom::Start(at.offset))
                .map_err(|e| Error::io(format!("cannot seek in '{}'", path.display()), e))?;
        }
        let line = at.line.max(1);
        Ok(match self.opts.format {
            TextFormat::Csv => Reader::Csv {
                path,
                rdr: Box::new(CsvRecords::resume(
                    file,
                    self.opts.delimiter,
                    self.opts.quote,
                    self.opts.allow_comments.then_some(b'#'),
                    at.offset,
                    line,
                )),
                record: ::csv::ByteRecord::new(),
            },
            TextFormat::Json => Reader::Json {
                path,
                rdr: BufReader::with_capacity(1 << 20, file),
                line: Vec::new(),
                line_no: line - 1,
                offset: at.offset,
            },
        })
    }

    /// Handles a record that failed to parse, which started at `line` and took `lines`
    /// physical lines: skip and count it, or fail the job.
    fn bad_record(&mut self, path: &Path, line: u64, lines: u64, reason: String) -> Result<()> {
        if self.opts.ignore_parse_errors {
            self.skipped.add(line, lines);
            Ok(())
        } else {
            Err(Error::Record {
                path: path.display().to_string(),
                line,
                reason,
            })
        }
    }

    /// Reads up to a batch from the current file into `rows`; `false` at the file's end.
    fn fill(&mut self, rows: &mut RowsBuilder) -> Result<bool> {
        let mut reader = self.reader.take().expect("a file is open");
        let more = loop {
            if rows.slots() >= BATCH_ROWS {
                break true;
            }
            match &mut reader {
                Reader::Csv { path, rdr, record } => {
                    let read = rdr.read(record).map_err(|e| {
                        Error::user(format!("cannot read '{}': {e}", path.display()))
                    })?;
                    let Some(line) = read else {
                        break false;
                    };
                    let appended =
                        append_csv_record(record, &self.columns, self.width, rows, &self.opts);
                    if let Err(reason) = appended {
                        let (path, lines) = (path.clone(), rdr.next_line() - line);
                        self.bad_record(&path, line, lines.max(1), reason)?;
                    }
                }
                Reader::Json {
                    path,
                    rdr,
                    line,
                    line_no,
                    offset,
                } => {
                    line.clear();
                    let n = rdr
                        .read_until(b'\n', line)
                        .map_err(|e| Error::io(format!("cannot read '{}'", path.display()), e))?;
                    if n == 0 {
                        break false;
                    }
                    *offset += n as u64;
                    *line_no += 1;
                    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        line.pop();
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    if let Err(reason) = append_json_line(line, &self.names, rows, &self.opts) {
                        let (path, at) = (path.clone(), *line_no);
                        self.bad_record(&path, at, 1, reason)?;
                    }
                }
            }
        };
        self.reader = Some(reader);
        Ok(more)
    }

    fn current_path(&self) -> Option<&Path> {
        self.reader.as_ref().map(Reader::path)
    }
}

impl Source for FsSource {
    fn name(&self) -> &str {
        "filesystem"
    }

    fn poll_next(&mut self, ctx: &mut OperatorContext) -> Result<SourcePoll> {
        let mut rows = RowsBuilder::new(self.schema.clone()).map_err(|ty| {
            Error::internal(format!("a column of type {ty} passed the plan-time check"))
        })?;
        // Batches are bounded in records read, skipped ones included, so that a file of
        // malformed records is not held in memory whole.
        while rows.slots() < BATCH_ROWS {
            if self.reader.is_none() {
                let Some((next, at)) = self.files.pop_front() else {
                    break;
                };
                self.reader = Some(self.open(next, at)?);
            }
            if !self.fill(&mut rows)? {
                if self.skipped.records > 0 {
                    let path = self
                        .current_path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    JobMetrics::add(&ctx.metrics.skipped_records, self.skipped.records);
                    ctx.metrics.note(self.skipped.note(&path));
                    self.skipped = Skipped::default();
                }
                if let Some(read) = self.reader.take() {
                    self.done.push(read.path().to_path_buf());
                }
            }
        }
        if rows.slots() == 0 {
            return Ok(SourcePoll::End);
        }
        if rows.rows() == 0 {
            // Every record of this stretch was malformed and skipped: more may follow.
            return Ok(SourcePoll::Pending);
        }
        Ok(SourcePoll::Batch(rows.finish()?))
    }

    /// Every file of the subtask: read through, being read (from the next record), or not
    /// yet opened (from where it stood).
    fn snapshot(&mut self, _checkpoint_id: CheckpointId) -> Result<Vec<SplitState>> {
        let split = |path: &Path, at: FilePosition| SplitState {
            split: path.display().to_string(),
            position: serde_json::to_vec(&at).expect("a position serializes"),
        };
        let done = FilePosition {
            done: true,
            ..FilePosition::default()
        };
        let mut splits: Vec<SplitState> = self.done.iter().map(|p| split(p, done)).collect();
        if let Some(r) = &self.reader {
            splits.push(split(r.path(), r.position()));
        }
        splits.extend(self.files.iter().map(|(p, at)| split(p, *at)));
        Ok(splits)
    }
}
