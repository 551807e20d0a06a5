//! The materializing sink of `eddy run --materialize`: applies a changelog to a table and,
//! when the input ends, writes the final table (also what tests compare updating queries
//! with). Tables cannot name it: the CLI hands it to the planner, which sends every sink to
//! it (`PlanOptions::sinks_to`). Each distinct row is kept once with its multiplicity: +I and +U add one, -U and
//! -D take one away. A retraction of a row the table does not hold is an error, not a silent
//! miss, so a wrong changelog shows up.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{Int8Type, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};
use arrow::util::display::ArrayFormatter;
use formats::write_csv;
use kernel::changelog::{format_row_values, is_accumulate, print_format_options, split_row_kinds};
use kernel::checkpoint::{Committable, ValueReader};
use kernel::connector::{Connector, TableDescriptor};
use kernel::sink::{Sink, SinkFactory};
use kernel::{Error, Result};

/// Where the final table goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaterializeTarget {
    /// Printed as a text table, rows in sorted order.
    Stdout,
    /// Written as `<directory>/<table>.csv`, without a header.
    Directory(PathBuf),
}

/// The connector every sink is sent to under `--materialize`: it takes updates and runs as
/// one subtask, so every update meets the row it replaces.
pub struct MaterializeConnector {
    pub target: MaterializeTarget,
}

/// The name it is registered under.
pub const MATERIALIZE: &str = "eddy-materialize";

impl Connector for MaterializeConnector {
    fn name(&self) -> &'static str {
        MATERIALIZE
    }

    fn option_keys(&self) -> &'static [&'static str] {
        &[]
    }

    fn accepts_updates(&self) -> bool {
        true
    }

    fn sink_parallelism(&self, _table: &TableDescriptor) -> Result<Option<usize>> {
        Ok(Some(1))
    }

    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(MaterializeFactory {
            table: table.name.clone(),
            schema: table.schema.clone(),
            target: self.target.clone(),
        }))
    }
}

/// Builds the materializing sink of one table.
#[derive(Debug)]
struct MaterializeFactory {
    table: String,
    /// The table's columns (without the op column).
    schema: SchemaRef,
    target: MaterializeTarget,
}

impl SinkFactory for MaterializeFactory {
    fn create(&self, _subtask: usize, parallelism: usize) -> Result<Box<dyn Sink>> {
        if parallelism != 1 {
            return Err(Error::internal("a materializing sink runs as one subtask"));
        }
        let fields = self
            .schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(Box::new(Materialize {
            table: self.table.clone(),
            schema: self.schema.clone(),
            target: self.target.clone(),
            converter: RowConverter::new(fields)?,
            rows: HashMap::new(),
        }))
    }

    fn describe(&self) -> String {
        match &self.target {
            MaterializeTarget::Stdout => "sink materialize, final table to stdout".into(),
            MaterializeTarget::Directory(d) => {
                format!("sink materialize, final table to {}", d.display())
            }
        }
    }
}

struct Materialize {
    table: String,
    schema: SchemaRef,
    target: MaterializeTarget,
    converter: RowConverter,
    /// Row bytes → how many times the table holds the row.
    rows: HashMap<OwnedRow, u64>,
}

impl Materialize {
    /// The final table, rows sorted (by their memcomparable bytes). The rows stay: the job's
    /// last checkpoint holds them, and a restore from it writes the same table again.
    fn final_table(&self) -> Result<RecordBatch> {
        let mut held: Vec<(&OwnedRow, u64)> = self.rows.iter().map(|(r, n)| (r, *n)).collect();
        held.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut rows = self.converter.empty_rows(held.len(), 0);
        let mut repeat = Vec::new();
        for (i, (row, n)) in held.iter().enumerate() {
            rows.push(row.row());
            repeat.extend(std::iter::repeat_n(i as u32, *n as usize));
        }
        let columns = self.converter.convert_rows(&rows)?;
        let indices = UInt32Array::from(repeat);
        let columns = columns
            .iter()
            .map(|c| Ok(take(c, &indices, None)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    fn write_table(&self, table: &RecordBatch) -> Result<()> {
        match &self.target {
            MaterializeTarget::Directory(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(dir.display().to_string(), e))?;
                let path = dir.join(format!("{}.csv", self.table));
                let mut out = Vec::new();
                write_csv(table, b',', false, &mut out)?;
                std::fs::write(&path, out).map_err(|e| Error::io(path.display().to_string(), e))
            }
            MaterializeTarget::Stdout => {
                let text = text_table(&self.table, table)?;
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| Error::io("materialized table", e))
            }
        }
    }
}

/// `table` as an aligned text table under a title line.
fn text_table(title: &str, table: &RecordBatch) -> Result<String> {
    let opts = print_format_options();
    let mut cells: Vec<Vec<String>> = vec![table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()];
    let formatters = table
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for r in 0..table.num_rows() {
        cells.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
    }
    let widths: Vec<usize> = (0..table.num_columns())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = format!("{title}: {} rows\n", table.num_rows());
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join(" | ").trim_end());
        text.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            text.push_str(&rule.join("-+-"));
            text.push('\n');
        }
    }
    Ok(text)
}

impl Sink for Materialize {
    fn name(&self) -> &str {
        "Materialize"
    }

    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let (data, ops) = split_row_kinds(batch)?;
        let rows = self.converter.convert_columns(data.columns())?;
        let ops = ops.map(|o| o.as_primitive::<Int8Type>().clone());
        for i in 0..rows.num_rows() {
            let row = rows.row(i).owned();
            if ops.as_ref().is_none_or(|o| is_accumulate(o.value(i))) {
                *self.rows.entry(row).or_insert(0) += 1;
                continue;
            }
            match self.rows.get_mut(&row) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    self.rows.remove(&row);
                }
                None => {
                    let shown = format_row_values(&data.slice(i, 1))?;
                    return Err(Error::internal(format!(
                        "table '{}': the changelog retracts {}, a row the table does not hold",
                        self.table,
                        shown[0].trim_start_matches("+I")
                    )));
                }
            }
        }
        Ok(())
    }

    /// The table as it stands (every checkpoint holds all of it: this sink is for final
    /// tables of tests and small jobs): per distinct row, its bytes (length first) and how
    /// many times the table holds it.
    fn snapshot_state(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for (row, n) in &self.rows {
            let bytes = row.row().data();
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Ok(out)
    }

    fn restore_state(&mut self, states: &[Vec<u8>]) -> Result<()> {
        let parser = self.converter.parser();
        for state in states {
            let mut r = ValueReader::new(state);
            while r.remaining() > 0 {
                let row = parser.parse(r.sized()?).owned();
                *self.rows.entry(row).or_insert(0) += r.u64()?;
            }
        }
        Ok(())
    }

    /// The final table is only known at the end: it is written then, not at barriers.
    fn finish(&mut self) -> Result<Vec<Committable>> {
        let table = self.final_table()?;
        self.write_table(&table)?;
        Ok(Vec::new())
    }
}
