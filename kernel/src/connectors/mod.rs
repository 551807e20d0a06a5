//! Connectors: where a table's rows come from and go to, chosen by `'connector' = '…'`.
//!
//! A [`Connector`] turns a table declaration ([`TableDescriptor`]) into a source factory, a
//! sink factory, or both. The [`ConnectorRegistry`] holds them by name; crates above the
//! kernel add their own (the Nexmark generator lives in `nexmark/`).

mod blackhole;
mod cells;
mod datagen;
mod filesystem;
mod materialize;
mod options;
mod print;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

pub use blackhole::BlackholeConnector;
pub use cells::parse_timestamp_ms;
pub use datafusion_common::ScalarValue;
pub use datagen::DatagenConnector;
pub use filesystem::encode::{write_csv, write_json, TIMESTAMP_FORMAT};
pub use filesystem::FilesystemConnector;
pub use materialize::{MaterializeFactory, MaterializeTarget};
pub use options::{parse_duration_ms, Options};
pub use print::{format_row_values, PrintConnector};

use crate::operator::{OperatorFactory, SourceFactory};
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
    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn OperatorFactory>> {
        Err(Error::user(format!(
            "table '{}': connector '{}' can only be read from, not written",
            table.name,
            self.name()
        )))
    }
}

/// Connectors by name.
#[derive(Clone, Default)]
pub struct ConnectorRegistry {
    connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
}

impl ConnectorRegistry {
    /// The kernel's own connectors: blackhole, print, datagen, filesystem.
    pub fn with_builtins() -> Self {
        let mut r = ConnectorRegistry::default();
        r.register(Arc::new(BlackholeConnector));
        r.register(Arc::new(PrintConnector));
        r.register(Arc::new(DatagenConnector));
        r.register(Arc::new(FilesystemConnector));
        r
    }

    pub fn register(&mut self, c: Arc<dyn Connector>) {
        self.connectors.insert(c.name(), c);
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.connectors.keys().copied().collect()
    }

    /// The connector a table declares, with its options checked against what it accepts.
    pub fn for_table(&self, table: &TableDescriptor) -> Result<Arc<dyn Connector>> {
        let Some(name) = table.options.get("connector") else {
            return Err(Error::user(format!(
                "table '{}' has no 'connector' option; available connectors: {}",
                table.name,
                self.names().join(", ")
            )));
        };
        let Some(c) = self.connectors.get(name) else {
            return Err(Error::user(format!(
                "table '{}': unknown connector '{name}'; available connectors: {}",
                table.name,
                self.names().join(", ")
            )));
        };
        table
            .options
            .check_known(&table.name, name, c.option_keys(), &table.schema)?;
        Ok(c.clone())
    }
}
