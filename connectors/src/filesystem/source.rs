//! The filesystem source: reads its share of the files, a batch at a time.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use formats::csv::{append_csv_record, CsvRecords};
use formats::json::append_json_line;
use formats::{FormatOptions, RowsBuilder, TextFormat};
use kernel::connector::TableDescriptor;
use kernel::metrics::JobMetrics;
use kernel::operator::{OperatorContext, Source, SourceFactory, SourcePoll};
use kernel::{Error, Result};

use super::{list_files, local_path};

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
        let files: VecDeque<PathBuf> = list_files(&self.path)?
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism == subtask)
            .map(|(_, f)| f)
            .collect();
        let names = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        Ok(Box::new(FsSource {
            files,
            reader: None,
            columns: self.columns.clone(),
            names,
            width: self.width,
            schema: self.schema.clone(),
            opts: self.opts.clone(),
            skipped: Skipped::default(),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "source filesystem {} format {:?}",
            self.path.display(),
            self.opts.format
        )
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
    },
}

struct FsSource {
    files: VecDeque<PathBuf>,
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
    fn open(&self, path: PathBuf) -> Result<Reader> {
        let file = File::open(&path)
            .map_err(|e| Error::io(format!("cannot open '{}'", path.display()), e))?;
        Ok(match self.opts.format {
            TextFormat::Csv => Reader::Csv {
                path,
                rdr: Box::new(CsvRecords::new(
                    file,
                    self.opts.delimiter,
                    self.opts.quote,
                    self.opts.allow_comments.then_some(b'#'),
                )),
                record: ::csv::ByteRecord::new(),
            },
            TextFormat::Json => Reader::Json {
                path,
                rdr: BufReader::with_capacity(1 << 20, file),
                line: Vec::new(),
                line_no: 0,
            },
        })
    }

    /// Handles a record that failed to parse, which started at `line` and took `lines`
    /// physical lines: skip and count it, or fail the job.
    fn bad_record(
        &mut self,
        path: &std::path::Path,
        line: u64,
        lines: u64,
        reason: String,
    ) -> Result<()> {
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
                } => {
                    line.clear();
                    let n = rdr
                        .read_until(b'\n', line)
                        .map_err(|e| Error::io(format!("cannot read '{}'", path.display()), e))?;
                    if n == 0 {
                        break false;
                    }
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

    fn current_path(&self) -> Option<&std::path::Path> {
        match self.reader.as_ref()? {
            Reader::Csv { path, .. } | Reader::Json { path, .. } => Some(path),
        }
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
                let Some(next) = self.files.pop_front() else {
                    break;
                };
                self.reader = Some(self.open(next)?);
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
                self.reader = None;
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
}
