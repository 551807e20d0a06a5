//! `'connector' = 'print'`: writes rows to standard output in Flink's format, `+I[a, b, c]`,
//! prefixed by the subtask number when parallelism is above one (`2> +I[…]`).

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use kernel::changelog::format_row_values;
use kernel::checkpoint::{CheckpointId, Committable};
use kernel::connector::{Connector, TableDescriptor};
use kernel::sink::{Sink, SinkFactory};
use kernel::{Error, Result};

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

    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
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

impl SinkFactory for PrintFactory {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Sink>> {
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

impl Sink for Print {
    fn name(&self) -> &str {
        "Print"
    }

    fn write(&mut self, batch: RecordBatch) -> Result<()> {
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
        res.map_err(|e| Error::io("print sink", e))
    }

    /// Printed rows are visible at once; a barrier (and the end) only flushes them.
    fn pre_commit(&mut self, _checkpoint_id: CheckpointId) -> Result<Vec<Committable>> {
        let res = if self.stderr {
            std::io::stderr().flush()
        } else {
            std::io::stdout().flush()
        };
        res.map_err(|e| Error::io("print sink", e))?;
        Ok(Vec::new())
    }
}
