//! `'connector' = 'blackhole'`: swallows every row (Nexmark's sink); the runtime counts them.

use std::sync::Arc;

use arrow::array::RecordBatch;
use kernel::connector::{Connector, TableDescriptor};
use kernel::sink::{Sink, SinkFactory};
use kernel::Result;

pub struct BlackholeConnector;

impl Connector for BlackholeConnector {
    fn name(&self) -> &'static str {
        "blackhole"
    }

    fn accepts_updates(&self) -> bool {
        true
    }

    fn option_keys(&self) -> &'static [&'static str] {
        &["sink.parallelism"]
    }

    fn sink(&self, _table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(BlackholeFactory))
    }
}

#[derive(Debug)]
struct BlackholeFactory;

impl SinkFactory for BlackholeFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(Blackhole))
    }

    fn describe(&self) -> String {
        "sink blackhole".into()
    }
}

struct Blackhole;

impl Sink for Blackhole {
    fn name(&self) -> &str {
        "Blackhole"
    }

    fn write(&mut self, _batch: RecordBatch) -> Result<()> {
        Ok(())
    }
}
