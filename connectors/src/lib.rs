//! eddy's connectors: where a table's rows come from and go to, chosen by
//! `'connector' = '…'`.
//!
//! One file or folder per connector, each implementing `kernel::connector::Connector`:
//! `filesystem` (files in the text formats of the `formats` crate), `datagen`, `print` and
//! `blackhole`, and the materializing sink of `eddy run --materialize`, which tables cannot
//! name. A connector that pulls a heavy client library (Kafka, MySQL, PostgreSQL)
//! comes behind a cargo feature of its own. [`ConnectorRegistry`] holds them by name; the
//! binary fills it (adding `nexmark`'s generator and its own) and hands it to the planner.
//! This crate knows no SQL planning and no runtime: it builds source and sink factories
//! from table declarations.

mod blackhole;
mod datagen;
mod filesystem;
mod materialize;
mod print;

use std::collections::BTreeMap;
use std::sync::Arc;

use kernel::connector::{Connector, ConnectorLookup};

pub use blackhole::BlackholeConnector;
pub use datagen::DatagenConnector;
pub use filesystem::FilesystemConnector;
pub use materialize::{MaterializeConnector, MaterializeTarget};
pub use print::PrintConnector;

/// Connectors by name.
#[derive(Clone, Default)]
pub struct ConnectorRegistry {
    connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
}

impl ConnectorRegistry {
    /// This crate's connectors: blackhole, print, datagen, filesystem.
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
}

impl ConnectorLookup for ConnectorRegistry {
    fn connector(&self, name: &str) -> Option<Arc<dyn Connector>> {
        self.connectors.get(name).cloned()
    }

    fn names(&self) -> Vec<&'static str> {
        self.connectors.keys().copied().collect()
    }
}
