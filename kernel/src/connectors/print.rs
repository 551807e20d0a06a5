//! `'connector' = 'print'`: writes rows to standard output in Flink's format, `+I[a, b, c]`,
//! prefixed by the subtask number when parallelism is above one (`2> +I[…]`).

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::{Connector, TableDescriptor};
use crate::changelog::{kind_at, row_kinds};
use crate::metrics::JobMetrics;
use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::types::RowKind;
use crate::{Error, Result};

pub struct PrintConnector;

impl Connector for PrintConnector {
    fn name(&self) -> &'static str {
        "print"
    }

    fn accepts_updates(&self) -> bool {
        true
    }

    fn option_keys(&self) -> &'static [&'static str] {
        &["print-identifier", "standard-error", "sink.parallelism"]
    }

    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn OperatorFactory>> {
        Ok(Arc::new(PrintFactory {
            identifier: table.options.get("print-identifier").map(str::to_string),
            stderr: table.options.bool(&table.name, "standard-error", false)?,
        }))
    }
}

#[derive(Debug)]
struct PrintFactory {
    identifier: Option<String>,
    stderr: bool,
}

impl OperatorFactory for PrintFactory {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Operator>> {
        let prefix = match (&self.identifier, parallelism > 1) {
            (Some(id), true) => format!("{id}:{}> ", subtask + 1),
            (Some(id), false) => format!("{id}> "),
            (None, true) => format!("{}> ", subtask + 1),
            (None, false) => String::new(),
        };
        Ok(Box::new(Print {
            prefix,
            stderr: self.stderr,
            buf: Vec::new(),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "sink print to {}",
            if self.stderr { "stderr" } else { "stdout" }
        )
    }
}

struct Print {
    prefix: String,
    stderr: bool,
    buf: Vec<u8>,
}

/// Formatting shared by `print` and the CLI: Flink's `null`, and timestamps as
/// `LocalDateTime.toString()` renders them with milliseconds.
pub fn print_format_options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_null("null")
        .with_timestamp_format(Some("%Y-%m-%dT%H:%M:%S%.3f"))
        .with_display_error(true)
}

/// Formats each row of `batch` as `+I[v1, v2, …]`, or with the row's kind (`-U[…]`) when the
/// batch carries an op column.
pub fn format_row_values(batch: &RecordBatch) -> Result<Vec<String>> {
    let opts = print_format_options();
    let kinds = row_kinds(batch);
    let width = batch.num_columns() - usize::from(kinds.is_some());
    let formatters = batch.columns()[..width]
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let kind = match kinds {
            Some(k) => kind_at(k, r)?,
            None => RowKind::Insert,
        };
        let mut line = format!("{}[", kind.short());
        for (i, f) in formatters.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            line.push_str(&f.value(r).to_string());
        }
        line.push(']');
        rows.push(line);
    }
    Ok(rows)
}

impl Operator for Print {
    fn name(&self) -> &str {
        "Print"
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        self.buf.clear();
        for row in format_row_values(&batch)? {
            self.buf.extend_from_slice(self.prefix.as_bytes());
            self.buf.extend_from_slice(row.as_bytes());
            self.buf.push(b'\n');
        }
        // One locked write per batch keeps lines of parallel subtasks whole.
        let res = if self.stderr {
            std::io::stderr().lock().write_all(&self.buf)
        } else {
            std::io::stdout().lock().write_all(&self.buf)
        };
        res.map_err(|e| Error::io("print sink", e))?;
        JobMetrics::add(&ctx.metrics.sink_rows, batch.num_rows() as u64);
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext, _out: &mut dyn Output) -> Result<()> {
        let res = if self.stderr {
            std::io::stderr().flush()
        } else {
            std::io::stdout().flush()
        };
        res.map_err(|e| Error::io("print sink", e))
    }
}
