//! `'connector' = 'blackhole'`: swallows every row (Nexmark's sink), counting them.

use std::sync::Arc;

use arrow::array::RecordBatch;

use super::{Connector, TableDescriptor};
use crate::metrics::JobMetrics;
use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::Result;

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

    fn sink(&self, _table: &TableDescriptor) -> Result<Arc<dyn OperatorFactory>> {
        Ok(Arc::new(BlackholeFactory))
    }
}

#[derive(Debug)]
struct BlackholeFactory;

impl OperatorFactory for BlackholeFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Blackhole))
    }

    fn describe(&self) -> String {
        "sink blackhole".into()
    }
}

struct Blackhole;

impl Operator for Blackhole {
    fn name(&self) -> &str {
        "Blackhole"
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        JobMetrics::add(&ctx.metrics.sink_rows, batch.num_rows() as u64);
        Ok(())
    }
}
