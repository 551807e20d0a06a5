//! The connector API: what a table's `'connector' = '…'` must provide to be read or written.
//!
//! A [`Connector`] turns a table declaration ([`TableDescriptor`]) into a source factory, a
//! sink factory, or both. The kernel holds only this API; the connectors themselves live in
//! the `connectors` crate (and `nexmark`), and the planner finds them by name through
//! [`ConnectorLookup`], which the binary fills.

mod options;

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

pub use datafusion_common::ScalarValue;
pub use options::{parse_duration_ms, parse_size_bytes, Options};

use crate::operator::SourceFactory;
use crate::sink::SinkFactory;
use crate::{Error, Result};

/// A table as declared by `CREATE TABLE`: what a connector needs to read or write it.
#[derive(Debug, Clone)]
pub struct TableDescriptor {
    pub name: String,
    /// Physical columns (computed columns excluded).
    pub schema: SchemaRef,
    /// `PARTITIONED BY` columns.
    pub partition_keys: Vec<String>,
    pub options: Options,
}

/// A predicate a source may apply itself: `column IN (values)`; an equality is a one-value list.
/// Pushing one down is only an optimization: the planner keeps the filter after the source.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnFilter {
    pub column: String,
    pub values: Vec<ScalarValue>,
}

pub trait Connector: Send + Sync {
    fn name(&self) -> &'static str;

    /// Option keys this connector accepts besides `connector`. A `#` in a key stands for a
    /// column name (`fields.#.kind`).
    fn option_keys(&self) -> &'static [&'static str];

    /// Columns whose [`ColumnFilter`]s the source can apply while reading.
    fn filterable_columns(&self) -> &'static [&'static str] {
        &[]
    }

    /// A source reading the table; `projection` lists the physical columns the query needs, in
    /// order, and the source's batches carry exactly those. `filters` are on
    /// [`filterable_columns`](Self::filterable_columns); the source may skip rows failing them.
    fn source(
        &self,
        table: &TableDescriptor,
        projection: Option<&[usize]>,
        filters: &[ColumnFilter],
    ) -> Result<Arc<dyn SourceFactory>> {
        let _ = (projection, filters);
        Err(Error::user(format!(
            "table '{}': connector '{}' can only be written to, not read",
            table.name,
            self.name()
        )))
    }

    /// A bounded source of the whole table, for a lookup join (`JOIN t FOR SYSTEM_TIME AS OF
    /// …`) that loads the table and looks rows up by key; `projection` as for `source`.
    fn lookup_source(
        &self,
        table: &TableDescriptor,
        projection: Option<&[usize]>,
    ) -> Result<Arc<dyn SourceFactory>> {
        let _ = projection;
        Err(Error::user(format!(
            "table '{}': connector '{}' cannot be looked up (FOR SYSTEM_TIME AS OF); a lookup \
             join needs a bounded table, as connector 'filesystem' without \
             'source.monitor-interval'",
            table.name,
            self.name()
        )))
    }

    /// True when the sink can take an updating input (rows with an op column); a sink that
    /// only appends refuses one at plan time.
    fn accepts_updates(&self) -> bool {
        false
    }

    /// A sink writing rows of the table's schema.
    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Err(Error::user(format!(
            "table '{}': connector '{}' can only be read from, not written",
            table.name,
            self.name()
        )))
    }

    /// The local file or directory a file-based table reads and writes; `None` for other
    /// connectors. The planner refuses a job that writes where it also reads: it would read
    /// its own output, and each run would add to it.
    fn location(&self, table: &TableDescriptor) -> Result<Option<PathBuf>> {
        let _ = table;
        Ok(None)
    }

    /// How many subtasks the sink runs as; `None` follows its input. Flink's
    /// `sink.parallelism` by default.
    fn sink_parallelism(&self, table: &TableDescriptor) -> Result<Option<usize>> {
        let p = table
            .options
            .parse::<usize>(&table.name, "sink.parallelism", "a parallelism")?;
        if p == Some(0) {
            return Err(Error::user(format!(
                "table '{}': option 'sink.parallelism' must be at least 1",
                table.name
            )));
        }
        Ok(p)
    }
}

/// The connectors a job may use, by name.
pub trait ConnectorLookup: Send + Sync {
    fn connector(&self, name: &str) -> Option<Arc<dyn Connector>>;

    /// Every name, sorted, for error messages.
    fn names(&self) -> Vec<&'static str>;

    /// The connector a table declares, with its options checked against what it accepts.
    fn for_table(&self, table: &TableDescriptor) -> Result<Arc<dyn Connector>> {
        let Some(name) = table.options.get("connector") else {
            return Err(Error::user(format!(
                "table '{}' has no 'connector' option; available connectors: {}",
                table.name,
                self.names().join(", ")
            )));
        };
        let Some(c) = self.connector(name) else {
            return Err(Error::user(format!(
                "table '{}': unknown connector '{name}'; available connectors: {}",
                table.name,
                self.names().join(", ")
            )));
        };
        table
            .options
            .check_known(&table.name, name, c.option_keys(), &table.schema)?;
        Ok(c)
    }
}
