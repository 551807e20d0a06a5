//! The checkpointed copy of the rows one side of a stream join keeps: a `gemini-state`
//! [`StateTable`] holding each stored batch under its number, one entry per key group of its
//! rows (the key group of the join keys' hash, the one the exchange routed them by).
//!
//! A side only ever adds batches and drops whole batches, so at a barrier the batches stored
//! since the last one are written and the dropped ones deleted; an outer side's batch whose
//! rows met a partner since it was written is written again, for its match flags. A restore
//! reads the entries of the subtask's key groups back into one batch per number. (The
//! temporal join keeps its waiting stream rows the same way.)

use std::collections::BTreeMap;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::RowConverter;
use gemini_state::{KeyGroup, Manifest, PendingSnapshot, StateTable};

use crate::checkpoint::CheckpointId;
use crate::checkpoint::ValueReader;
use crate::operator::OperatorContext;
use crate::ops::keyed_table::{cast_back, key_groups, put_record, subtask_table};
use crate::ops::whole_row_converter;
use crate::{Error, Result};

/// A stored batch as a restore reads it back: its rows, when they arrived (wall clock, for
/// the state TTL) and, on an outer side, which of them met a partner.
pub(super) struct RestoredBatch {
    pub number: u64,
    pub batch: RecordBatch,
    pub arrived: i64,
    pub matched: Option<Vec<bool>>,
}

/// A batch to write: its number, rows, join keys (hashed for the key groups), arrival and
/// match flags.
pub(super) struct BatchToWrite<'a> {
    pub number: u64,
    pub batch: &'a RecordBatch,
    pub keys: &'a [ArrayRef],
    pub arrived: i64,
    pub matched: Option<&'a [bool]>,
}

pub(super) struct SideTable {
    name: &'static str,
    table: Option<Box<dyn StateTable>>,
    schema: SchemaRef,
    /// Whole rows ↔ bytes.
    rows: RowConverter,
    hashes: Vec<u64>,
}

impl SideTable {
    pub fn new(name: &'static str, schema: SchemaRef) -> Result<Self> {
        Ok(SideTable {
            name,
            table: None,
            rows: whole_row_converter(&schema)?,
            schema,
            hashes: Vec::new(),
        })
    }

    /// Writes `batch`, one entry per key group of its rows, replacing an earlier write of
    /// the same number.
    pub fn write(&mut self, batch: BatchToWrite, ctx: &OperatorContext) -> Result<()> {
        let n = batch.batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let table = subtask_table(&mut self.table, self.name, ctx)?;
        let range = table.key_groups();
        let kgs = key_groups(batch.keys, n, range, ctx, &mut self.hashes)?;
        let rows = self.rows.convert_columns(batch.batch.columns())?;
        let mut chunks: BTreeMap<KeyGroup, Vec<u8>> = BTreeMap::new();
        for (i, &kg) in kgs.iter().enumerate() {
            let chunk = chunks.entry(kg).or_insert_with(|| {
                let mut head = batch.arrived.to_le_bytes().to_vec();
                head.push(u8::from(batch.matched.is_some()));
                head
            });
            put_record(chunk, rows.row(i).data());
            if let Some(m) = batch.matched {
                chunk.push(u8::from(m[i]));
            }
        }
        let key = batch.number.to_be_bytes();
        let (kgs, values): (Vec<KeyGroup>, Vec<&[u8]>) =
            chunks.iter().map(|(kg, c)| (*kg, c.as_slice())).unzip();
        table.put_many(&kgs, &vec![&key[..]; kgs.len()], &values)?;
        Ok(())
    }

    /// Deletes the batches numbered `numbers`, in every key group.
    pub fn delete(&mut self, numbers: &[u64]) -> Result<()> {
        let Some(table) = self.table.as_mut() else {
            return Ok(());
        };
        for &n in numbers {
            let end = n
                .checked_add(1)
                .ok_or_else(|| Error::internal("stream join batch numbers ran out"))?;
            table.delete_range_all_groups(&n.to_be_bytes(), &end.to_be_bytes())?;
        }
        Ok(())
    }

    /// The table's snapshot for `checkpoint_id` (none before the first write).
    pub fn snapshot(
        &mut self,
        checkpoint_id: CheckpointId,
    ) -> Result<Option<(String, PendingSnapshot)>> {
        match self.table.as_mut() {
            Some(t) => Ok(Some((self.name.to_string(), t.snapshot(checkpoint_id)?))),
            None => Ok(None),
        }
    }

    /// Restores the table from the old subtasks' manifests and reads back the batches of
    /// this subtask's key groups, by number (old subtasks' batches of one number merge).
    pub fn restore(
        &mut self,
        tables: &BTreeMap<String, Vec<Manifest>>,
        ctx: &OperatorContext,
    ) -> Result<Vec<RestoredBatch>> {
        let table = subtask_table(&mut self.table, self.name, ctx)?;
        if let Some(manifests) = tables.get(self.name) {
            table.restore(manifests)?;
        }
        let range = table.key_groups();
        let mut entries: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        let mut bad_key = false;
        for kg in range.start..range.end {
            table.scan_prefix(kg, &[], &mut |k, v| {
                match <[u8; 8]>::try_from(k) {
                    Ok(n) => entries
                        .entry(u64::from_be_bytes(n))
                        .or_default()
                        .push(v.to_vec()),
                    Err(_) => bad_key = true,
                }
                true
            })?;
        }
        if bad_key {
            return Err(Error::user(format!(
                "the checkpointed rows of a stream join ({}) have a key that is no batch number",
                self.name
            )));
        }
        let types: Vec<DataType> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let parser = self.rows.parser();
        let mut restored = Vec::with_capacity(entries.len());
        for (number, chunks) in entries {
            let (mut rows, mut arrived, mut matched) = (Vec::new(), i64::MIN, None::<Vec<bool>>);
            for chunk in &chunks {
                let mut r = ValueReader::new(chunk);
                arrived = arrived.max(r.i64()?);
                let flags = r.u8()? == 1;
                while r.remaining() > 0 {
                    rows.push(parser.parse(r.sized()?));
                    if flags {
                        matched.get_or_insert_with(Vec::new).push(r.u8()? == 1);
                    }
                }
            }
            let columns = cast_back(self.rows.convert_rows(rows)?, &types)?;
            let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
            restored.push(RestoredBatch {
                number,
                batch,
                arrived,
                matched,
            });
        }
        Ok(restored)
    }
}
