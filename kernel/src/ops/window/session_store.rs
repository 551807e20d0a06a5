//! The session window aggregation's keyed state: the rows of open sessions, kept in a
//! `gemini-state` [`StateTable`].
//!
//! Rows are written a batch at a time, as one entry per run of a key's rows: its key is the
//! group key in arrow-row form and a write number; its value lists the rows, each its time
//! and its argument and filter columns in arrow-row form (one `RowConverter` call per write).
//! A session that fires scans its key's entries (arrow-row keys are self-delimiting, so one
//! key's prefix takes in no other key's entries) and takes the rows of its time range: a
//! key's sessions never overlap, so these are its rows however it grew or merged after they
//! were written. Entries left with rows of the key's later sessions are written back with
//! those.

use arrow::array::{ArrayRef, Int64Array, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::RowConverter;
use gemini_state::{KeyGroup, KeyGroupRange, Manifest, PendingSnapshot, StateSize, StateTable};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::operator::OperatorContext;
use crate::ops::keyed_table::{
    cast_back, key_groups, next_record, parse_type_names, put_record, row_converter, subtask_table,
    type_names,
};
use crate::{Error, Result};

/// Where a group key's rows are: its key group and arrow-row bytes.
pub(super) struct StoredKey {
    key_group: KeyGroup,
    key: Box<[u8]>,
}

impl StoredKey {
    /// Its key group and bytes, for a checkpoint.
    pub fn saved(&self) -> (KeyGroup, Vec<u8>) {
        (self.key_group, self.key.to_vec())
    }

    /// The key [`StoredKey::saved`] described.
    pub fn from_saved(key_group: KeyGroup, key: Vec<u8>) -> StoredKey {
        StoredKey {
            key_group,
            key: key.into(),
        }
    }
}

/// What a checkpoint keeps of the store besides its table.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SessionStoreState {
    writes: u64,
    rows: u64,
    /// The value columns' types (`DataType`'s text form), once values were written.
    value_types: Option<Vec<String>>,
}

/// The table's name within the operator.
const TABLE: &str = "sessions";

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

    /// The store as of a barrier: its table's snapshot (being written) and its counters.
    pub fn snapshot(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<(SessionStoreState, Option<(String, PendingSnapshot)>)> {
        let state = SessionStoreState {
            writes: self.writes,
            rows: self.rows,
            value_types: self
                .value_rows
                .as_ref()
                .map(|_| type_names(&self.value_types)),
        };
        let table = match self.table.as_mut() {
            Some(t) => Some((TABLE.to_string(), t.snapshot(checkpoint_id)?)),
            None => None,
        };
        Ok((state, table))
    }

    /// Takes back what old subtasks' [`SessionStore::snapshot`]s saved, with the table's
    /// manifests; returns this subtask's key groups, which the keys restored must be in.
    pub fn restore(
        &mut self,
        states: Vec<SessionStoreState>,
        tables: &BTreeMap<String, Vec<Manifest>>,
        ctx: &OperatorContext,
    ) -> Result<KeyGroupRange> {
        let table = subtask_table(&mut self.table, TABLE, ctx)?;
        let range = table.key_groups();
        if let Some(manifests) = tables.get(TABLE) {
            table.restore(manifests)?;
        }
        for state in states {
            // Write numbers only keep one key's entries apart, and a key was in one old
            // subtask: going on from the highest keeps them apart here.
            self.writes = self.writes.max(state.writes);
            self.rows += state.rows;
            if let Some(types) = state.value_types {
                let parsed = parse_type_names(&types)?;
                self.value_rows = row_converter(&parsed)?;
                self.value_types = parsed;
            }
        }
        Ok(range)
    }

    /// Rows stored and the table's bytes.
    pub fn size(&self) -> StateSize {
        StateSize {
            entries: self.rows,
            bytes: self.table.as_ref().map_or(0, |t| t.size().bytes),
        }
    }

    /// Writes rows: their group `keys`, `times` and `values`; `key_ids[i]` is row i's key's
    /// place in `stored_keys`, filled in for keys written the first time. A key's rows are
    /// best contiguous: each run of them is one entry.
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
        let table = subtask_table(&mut self.table, TABLE, ctx)?;
        // Keys met the first time: hashed and encoded together, once.
        let new: Vec<u32> = (0..n)
            .filter(|&i| i == 0 || key_ids[i] != key_ids[i - 1])
            .filter(|&i| stored_keys.get(key_ids[i]).is_none_or(Option::is_none))
            .map(|i| i as u32)
            .collect();
        if !new.is_empty() {
            let at = UInt32Array::from(new);
            let new_keys = keys
                .iter()
                .map(|k| Ok(take(k, &at, None)?))
                .collect::<Result<Vec<_>>>()?;
            let kgs = key_groups(
                &new_keys,
                at.len(),
                table.key_groups(),
                ctx,
                &mut self.hashes,
            )?;
            let bytes = match &self.key_rows {
                Some(conv) => Some(conv.convert_columns(&new_keys)?),
                None => None,
            };
            for (j, &i) in at.values().iter().enumerate() {
                let id = key_ids[i as usize];
                if stored_keys.len() <= id {
                    stored_keys.resize_with(id + 1, || None);
                }
                stored_keys[id] = Some(StoredKey {
                    key_group: kgs[j],
                    key: bytes.as_ref().map_or(&[][..], |b| b.row(j).data()).into(),
                });
            }
        }
        if self.value_rows.is_none() {
            self.value_types = values.iter().map(|a| a.data_type().clone()).collect();
            self.value_rows = row_converter(&self.value_types)?;
        }
        let value_bytes = match &self.value_rows {
            Some(conv) => Some(conv.convert_columns(values)?),
            None => None,
        };
        // One entry per run of a key's rows: the key, then the write number.
        let (mut entry_kgs, mut entry_keys, mut entry_values) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut i = 0;
        while i < n {
            let id = key_ids[i];
            let stored = stored_keys[id].as_ref().expect("filled in above");
            let mut entry = Vec::with_capacity(stored.key.len() + 8);
            entry.extend_from_slice(&stored.key);
            entry.extend_from_slice(&self.writes.to_be_bytes());
            self.writes += 1;
            let mut value = Vec::new();
            while i < n && key_ids[i] == id {
                value.extend_from_slice(&times.value(i).to_le_bytes());
                put_record(
                    &mut value,
                    value_bytes.as_ref().map_or(&[][..], |v| v.row(i).data()),
                );
                i += 1;
            }
            entry_kgs.push(stored.key_group);
            entry_keys.push(entry);
            entry_values.push(value);
        }
        let entry_keys: Vec<&[u8]> = entry_keys.iter().map(Vec::as_slice).collect();
        let entry_values: Vec<&[u8]> = entry_values.iter().map(Vec::as_slice).collect();
        table.put_many(&entry_kgs, &entry_keys, &entry_values)?;
        self.rows += n as u64;
        Ok(())
    }

    /// Reads and deletes `key`'s rows with times in `[start, end)`, appending their values
    /// to `taken`.
    pub fn take(
        &mut self,
        key: &StoredKey,
        start: i64,
        end: i64,
        taken: &mut TakenRows,
    ) -> Result<()> {
        let Some(table) = self.table.as_mut() else {
            return Ok(());
        };
        let before = taken.len();
        // Entries with rows outside the range (the key's other sessions) are written back
        // with just those: (entry key, rows left), empty when none are.
        let mut touched: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut corrupt = false;
        table.scan_prefix(key.key_group, &key.key, &mut |k, v| {
            let mut left = Vec::new();
            let mut at = 0;
            while at < v.len() {
                let Some(t) = v.get(at..at + 8).and_then(|b| b.try_into().ok()) else {
                    corrupt = true;
                    return false;
                };
                let t = i64::from_le_bytes(t);
                let row_at = at + 8;
                at = row_at;
                let Ok(row) = next_record(v, &mut at) else {
                    corrupt = true;
                    return false;
                };
                if (start..end).contains(&t) {
                    taken.bytes.extend_from_slice(row);
                    taken.ends.push(taken.bytes.len());
                } else {
                    left.extend_from_slice(&v[row_at - 8..at]);
                }
            }
            if left.len() < v.len() {
                touched.push((k.to_vec(), left));
            }
            true
        })?;
        if corrupt {
            return Err(Error::internal("a session state entry is cut short"));
        }
        let (emptied, kept): (Vec<_>, Vec<_>) = touched.iter().partition(|(_, l)| l.is_empty());
        let emptied: Vec<&[u8]> = emptied.iter().map(|(k, _)| k.as_slice()).collect();
        table.delete_many(&vec![key.key_group; emptied.len()], &emptied)?;
        let (kept_keys, kept_rows): (Vec<&[u8]>, Vec<&[u8]>) = kept
            .iter()
            .map(|(k, l)| (k.as_slice(), l.as_slice()))
            .unzip();
        table.put_many(&vec![key.key_group; kept.len()], &kept_keys, &kept_rows)?;
        self.rows -= (taken.len() - before) as u64;
        Ok(())
    }

    /// The key columns of `keys`, a row each.
    pub fn decode_keys(&self, keys: &[&StoredKey]) -> Result<Vec<ArrayRef>> {
        let Some(conv) = &self.key_rows else {
            return Ok(Vec::new());
        };
        let parser = conv.parser();
        let keys = conv.convert_rows(keys.iter().map(|k| parser.parse(&k.key)))?;
        cast_back(keys, &self.key_types)
    }

    /// The value columns of taken rows.
    pub fn decode_values(&self, taken: &TakenRows) -> Result<Vec<ArrayRef>> {
        let Some(conv) = &self.value_rows else {
            return Ok(Vec::new());
        };
        let parser = conv.parser();
        let mut start = 0;
        let values = conv.convert_rows(taken.ends.iter().map(|&end| {
            let row = parser.parse(&taken.bytes[start..end]);
            start = end;
            row
        }))?;
        cast_back(values, &self.value_types)
    }
}
