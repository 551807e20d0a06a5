//! Writing batches as CSV or JSON lines in Flink's text forms (timestamps as
//! `yyyy-MM-dd HH:mm:ss.SSS`), shared by the filesystem sink, the CLI and `eddy nexmark
//! generate`.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::FormatOptions as DisplayOptions;

use kernel::Result;

/// Flink's SQL timestamp text.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// Appends `batch` as CSV rows to `out`, with a header line when `header` is set.
pub fn write_csv(
    batch: &RecordBatch,
    delimiter: u8,
    header: bool,
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(header)
        .with_delimiter(delimiter)
        .with_timestamp_format(TIMESTAMP_FORMAT.to_string())
        .build(out);
    w.write(batch)?;
    Ok(())
}

/// Appends `batch` as JSON lines to `out`.
pub fn write_json(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let batch = timestamps_as_text(batch)?;
    let mut w = arrow::json::LineDelimitedWriter::new(out);
    w.write(&batch)?;
    w.finish()?;
    Ok(())
}

/// Casts top-level timestamp columns to Flink's SQL text form.
fn timestamps_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Timestamp(..)))
    {
        return Ok(batch.clone());
    }
    let opts = CastOptions {
        safe: false,
        format_options: DisplayOptions::default().with_timestamp_format(Some(TIMESTAMP_FORMAT)),
    };
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(f.data_type(), DataType::Timestamp(..)) {
            fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
            cols.push(cast_with_options(c, &DataType::Utf8, &opts)?);
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}
