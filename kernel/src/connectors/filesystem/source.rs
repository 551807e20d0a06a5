//! The filesystem source: reads its share of the files, a batch at a time.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use super::csv_records::CsvRecords;
use super::decode::{csv_cells, json_cells};
use super::{list_files, local_path, Format, FormatOptions};
use crate::connectors::cells::{Cell, ColumnBuilder};
use crate::connectors::TableDescriptor;
use crate::metrics::JobMetrics;
use crate::operator::{OperatorContext, Source, SourceFactory, SourcePoll};
use crate::{Error, Result};

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
        ColumnBuilder::new(f.data_type()).map_err(|ty| {
            Error::user(format!(
                "table '{}': the filesystem source cannot read column '{}' of type {ty}",
                table.name,
                f.name()
            ))
        })?;
    }
    if opts.format == Format::Csv {
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
            skipped_in_file: 0,
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
        record: csv::ByteRecord,
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
    skipped_in_file: u64,
}

impl FsSource {
    fn open(&self, path: PathBuf) -> Result<Reader> {
        let file = File::open(&path)
            .map_err(|e| Error::io(format!("cannot open '{}'", path.display()), e))?;
        Ok(match self.opts.format {
            Format::Csv => Reader::Csv {
                path,
                rdr: Box::new(CsvRecords::new(
                    file,
                    self.opts.delimiter,
                    self.opts.quote,
                    self.opts.allow_comments.then_some(b'#'),
                )),
                record: csv::ByteRecord::new(),
            },
            Format::Json => Reader::Json {
                path,
                rdr: BufReader::with_capacity(1 << 20, file),
                line: Vec::new(),
                line_no: 0,
            },
        })
    }

    /// Handles a record that failed to parse: skip and count it, or fail the job.
    fn bad_record(&mut self, path: &std::path::Path, line: u64, reason: String) -> Result<()> {
        if self.opts.ignore_parse_errors {
            self.skipped_in_file += 1;
            Ok(())
        } else {
            Err(Error::Record {
                path: path.display().to_string(),
                line,
                reason,
            })
        }
    }

    /// Reads up to a batch from the current file; `false` at the file's end.
    fn fill(&mut self, builders: &mut [ColumnBuilder], rows: &mut usize) -> Result<bool> {
        let mut reader = self.reader.take().expect("a file is open");
        let more = loop {
            if *rows >= BATCH_ROWS {
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
                    let mut cells: Vec<Cell<'_>> = Vec::with_capacity(self.columns.len());
                    match csv_cells(
                        record,
                        &self.columns,
                        self.width,
                        builders,
                        &self.opts,
                        &mut cells,
                    ) {
                        Ok(()) => {
                            builders
                                .iter_mut()
                                .zip(&cells)
                                .for_each(|(b, c)| b.append(c));
                            *rows += 1;
                        }
                        Err(reason) => {
                            let path = path.clone();
                            self.bad_record(&path, line, reason)?;
                        }
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
                    let result = match simd_json::to_borrowed_value(line) {
                        Ok(value) => {
                            let mut row: Vec<Cell<'_>> = Vec::new();
                            match json_cells(&value, &self.names, builders, &self.opts, &mut row) {
                                Ok(()) => {
                                    builders.iter_mut().zip(&row).for_each(|(b, c)| b.append(c));
                                    Ok(())
                                }
                                Err(e) => Err(e),
                            }
                        }
                        Err(e) => Err(format!("invalid JSON: {e}")),
                    };
                    match result {
                        Ok(()) => *rows += 1,
                        Err(reason) => {
                            let (path, at) = (path.clone(), *line_no);
                            self.bad_record(&path, at, reason)?;
                        }
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
        let mut builders: Vec<ColumnBuilder> = self
            .schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type()).expect("checked at plan time"))
            .collect();
        let mut rows = 0;
        while rows < BATCH_ROWS {
            if self.reader.is_none() {
                let Some(next) = self.files.pop_front() else {
                    break;
                };
                self.reader = Some(self.open(next)?);
            }
            if !self.fill(&mut builders, &mut rows)? {
                if self.skipped_in_file > 0 {
                    let path = self
                        .current_path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    JobMetrics::add(&ctx.metrics.skipped_records, self.skipped_in_file);
                    ctx.metrics.note(format!(
                        "skipped {} malformed records in {path}",
                        self.skipped_in_file
                    ));
                    self.skipped_in_file = 0;
                }
                self.reader = None;
            }
        }
        if rows == 0 {
            return Ok(SourcePoll::End);
        }
        let columns = builders.iter_mut().map(ColumnBuilder::finish).collect();
        Ok(SourcePoll::Batch(RecordBatch::try_new(
            self.schema.clone(),
            columns,
        )?))
    }
}
