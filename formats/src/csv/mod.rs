//! CSV: splitting text into records ([`CsvRecords`]) and records into rows.

mod records;

pub use records::CsvRecords;

use crate::columns::RowsBuilder;
use crate::options::FormatOptions;

/// Appends CSV `record`'s fields at `columns` (file column indices) as one row of `rows`;
/// a record of the wrong width or with a field that does not parse is left out, and the
/// reason returned.
pub fn append_csv_record(
    record: &::csv::ByteRecord,
    columns: &[usize],
    width: usize,
    rows: &mut RowsBuilder,
    opts: &FormatOptions,
) -> Result<(), String> {
    if record.len() != width {
        return Err(format!("expected {width} fields, found {}", record.len()));
    }
    rows.append_row(|i, b| {
        let c = columns[i];
        let Ok(text) = std::str::from_utf8(&record[c]) else {
            b.append_null();
            return Err(format!("field {} is not valid UTF-8", c + 1));
        };
        if opts.null_literal.as_deref() == Some(text) {
            b.append_null();
            return Ok(());
        }
        b.append_text(text)
            .map_err(|e| format!("field {}: {e}", c + 1))
    })
}
