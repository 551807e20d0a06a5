//! For operator tests: an output that keeps what an operator sent as `print` lines.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;

use crate::changelog::format_row_values;
use crate::metrics::JobMetrics;
use crate::operator::{Operator, OperatorContext, Output};
use crate::types::Message;
use crate::Result;

/// The rows an operator sent, as `+I[…]` lines.
#[derive(Default)]
pub(crate) struct Lines(pub Vec<String>);

impl Output for Lines {
    fn emit(&mut self, msg: Message) -> Result<()> {
        if let Message::Batch(b) = msg {
            self.0.extend(format_row_values(&b)?);
        }
        Ok(())
    }
}

/// Feeds `batches` to `op` one after the other; the lines each one produced.
pub(crate) fn lines_per_batch(op: &mut dyn Operator, batches: &[RecordBatch]) -> Vec<Vec<String>> {
    lines_per_batch_apart(op, batches, Duration::ZERO)
}

/// [`lines_per_batch`], waiting at least `pause` between batches (for state TTLs).
pub(crate) fn lines_per_batch_apart(
    op: &mut dyn Operator,
    batches: &[RecordBatch],
    pause: Duration,
) -> Vec<Vec<String>> {
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if i > 0 && !pause.is_zero() {
                std::thread::sleep(pause);
            }
            let mut out = Lines::default();
            op.on_batch(0, b.clone(), &mut ctx, &mut out).unwrap();
            out.0
        })
        .collect()
}
