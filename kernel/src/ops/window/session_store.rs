//! The session window aggregation's keyed state: the rows of open sessions, kept in a
//! `gemini-state` [`StateTable`].
//!
//! One entry per row: its key is the row's group key in arrow-row form, then its time (eight
//! bytes that sort as the time does) and a write number; its value is the row's argument and
//! filter columns in arrow-row form. A key's sessions never overlap, so a session's rows are
//! the range `[key ++ start, key ++ end)` of its key: read and deleted in one scan when it
//! fires, however its session grew or merged after the rows were written. Rows are encoded a
//! whole write at a time (one `RowConverter` call per side); arrow-row keys are
//! self-delimiting, so one key's range never takes in another's rows.

use arrow::array::{ArrayRef, Int64Array};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::RowConverter;
use gemini_state::{KeyGroup, StateSize, StateTable};

use super::keyed_table::{cast_back, key_groups, row_converter, subtask_table, time_bytes};
use crate::operator::OperatorContext;
use crate::Result;

/// Where a group key's rows are: its key group and arrow-row bytes.
pub(super) struct StoredKey {
    key_group: KeyGroup,
    key: Box<[u8]>,
}

/// Rows read back from the table: their values' bytes, one after another.
#[derive(Default)]
pub(super) struct TakenRows {
    bytes: Vec<u8>,
    /// Where each row's bytes end.
    ends: Vec<usize>,
}

impl TakenRows {
    pub fn len(&self) -> usize {
        self.ends.len()
    }
}

pub(super) struct SessionStore {
    /// Created with the first write, which brings the subtask's key-group range.
    table: Option<Box<dyn StateTable>>,
    /// Group keys ↔ bytes (`None` without key columns: every key is `[]`).
    key_rows: Option<RowConverter>,
    /// Values ↔ bytes; made from the first values written (`None` while there are none, or
    /// when rows have no values).
    value_rows: Option<RowConverter>,
    /// The types of the keys and of the values written, which decoded columns are cast
    /// back to (the row format gives dictionaries back as their values).
    key_types: Vec<DataType>,
    value_types: Vec<DataType>,
    /// Rows written so far: the next row's write number, which keeps equal times apart.
    writes: u64,
    /// Rows in the table.
    rows: u64,
    hashes: Vec<u64>,
}

impl SessionStore {
    pub fn new(key_schema: &SchemaRef) -> Result<Self> {
        let key_rows = row_converter(key_schema.fields().iter().map(|f| f.data_type()))?;
        Ok(SessionStore {
            table: None,
            key_rows,
            value_rows: None,
            key_types: key_schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect(),
            value_types: Vec::new(),
            writes: 0,
            rows: 0,
            hashes: Vec::new(),
        })
    }

    /// Rows stored and the table's bytes.
    pub fn size(&self) -> StateSize {
        StateSize {
            entries: self.rows,
            bytes: self.table.as_ref().map_or(0, |t| t.size().bytes),
        }
    }

    /// Writes rows: their group `keys`, `times` and `values`; `key_ids[i]` is row i's key's
    /// place in `stored_keys`, filled in for keys written the first time.
    pub fn write(
        &mut self,
        keys: &[ArrayRef],
        times: &Int64Array,
        values: &[ArrayRef],
        key_ids: &[usize],
        stored_keys: &mut Vec<Option<StoredKey>>,
        ctx: &OperatorContext,
    ) -> Result<()> {
        let n = times.len();
        if n == 0 {
            return Ok(());
        }
        let table = self.table.get_or_insert_with(|| subtask_table(ctx));
        let kgs = key_groups(keys, n, table.key_groups(), ctx, &mut self.hashes)?;
        let key_bytes = match &self.key_rows {
            Some(conv) => Some(conv.convert_columns(keys)?),
            None => None,
        };
        if self.value_rows.is_none() {
            self.value_types = values.iter().map(|a| a.data_type().clone()).collect();
            self.value_rows = row_converter(&self.value_types)?;
        }
        let value_bytes = match &self.value_rows {
            Some(conv) => Some(conv.convert_columns(values)?),
            None => None,
        };
        let mut entry_keys: Vec<Vec<u8>> = Vec::with_capacity(n);
        for (i, &id) in key_ids.iter().enumerate() {
            let key = key_bytes.as_ref().map_or(&[][..], |k| k.row(i).data());
            if stored_keys.len() <= id {
                stored_keys.resize_with(id + 1, || None);
            }
            stored_keys[id].get_or_insert_with(|| StoredKey {
                key_group: kgs[i],
                key: key.into(),
            });
            let mut entry = Vec::with_capacity(key.len() + 16);
            entry.extend_from_slice(key);
            entry.extend_from_slice(&time_bytes(times.value(i)));
            entry.extend_from_slice(&self.writes.to_be_bytes());
            self.writes += 1;
            entry_keys.push(entry);
        }
        let entry_keys: Vec<&[u8]> = entry_keys.iter().map(Vec::as_slice).collect();
        let entry_values: Vec<&[u8]> = match &value_bytes {
            Some(v) => (0..n).map(|i| v.row(i).data()).collect(),
            None => vec![&[][..]; n],
        };
        table.put_many(&kgs, &entry_keys, &entry_values)?;
        self.rows += n as u64;
        Ok(())
    }

    /// Reads and deletes `key`'s rows with times in `[start, end)`, appending their values
    /// to `taken`; returns how many there were.
    pub fn take(
        &mut self,
        key: &StoredKey,
        start: i64,
        end: i64,
        taken: &mut TakenRows,
    ) -> Result<usize> {
        let Some(table) = self.table.as_mut() else {
            return Ok(0);
        };
        let bound = |t: i64| {
            let mut b = key.key.to_vec();
            b.extend_from_slice(&time_bytes(t));
            b
        };
        let (from, to) = (bound(start), bound(end));
        let before = taken.len();
        table.scan_range(key.key_group, &from, &to, &mut |_, v| {
            taken.bytes.extend_from_slice(v);
            taken.ends.push(taken.bytes.len());
            true
        })?;
        let n = table.delete_range(key.key_group, &from, &to)?;
        debug_assert_eq!(n as usize, taken.len() - before);
        self.rows -= n;
        Ok(taken.len() - before)
    }

    /// The columns of taken rows: their keys (`keys[i]`, row i's key) and their values.
    pub fn decode(
        &self,
        keys: &[&StoredKey],
        taken: &TakenRows,
    ) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        let keys = match &self.key_rows {
            Some(conv) => {
                let parser = conv.parser();
                conv.convert_rows(keys.iter().map(|k| parser.parse(&k.key)))?
            }
            None => Vec::new(),
        };
        let values = match &self.value_rows {
            Some(conv) => {
                let parser = conv.parser();
                let mut start = 0;
                conv.convert_rows(taken.ends.iter().map(|&end| {
                    let row = parser.parse(&taken.bytes[start..end]);
                    start = end;
                    row
                }))?
            }
            None => Vec::new(),
        };
        Ok((
            cast_back(keys, &self.key_types)?,
            cast_back(values, &self.value_types)?,
        ))
    }
}
