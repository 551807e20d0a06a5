//! The window aggregation's keyed state: the accumulator states of slices, kept in a
//! `gemini-state` [`StateTable`].
//!
//! State is written a slice at a time, as one chunk per key group: the entry's key is the slice
//! end (eight bytes that sort as the time does) and the chunk's number within the slice; its
//! value lists the slice's groups of that key group, each its group key and its states in
//! arrow-row form. Key groups are those of the group keys' hashes, the ones the hash exchange
//! routed the rows by, so state moves with its key groups on a rescale. Encoding is columnar
//! (one `RowConverter` call per slice and direction) and the table sees one write per key group
//! rather than per group; a slice written out more than once (a full buffer, a barrier) gets
//! more chunks, and a key in two of them is merged when the slice is read. Which key groups hold
//! chunks of a slice is kept in memory, so reading a slice probes only those.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::RowConverter;
use gemini_state::{KeyGroup, Manifest, PendingSnapshot, StateSize, StateTable};
use serde::{Deserialize, Serialize};

use crate::ops::keyed_table::{
    cast_back, key_groups, next_record, parse_type_names, put_record, row_converter, subtask_table,
    time_bytes, type_names,
};

use crate::operator::OperatorContext;
use crate::Result;

/// What a checkpoint keeps of the store besides its table: which slices it holds and where.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SliceStoreState {
    /// Per slice end: its key groups, chunk writes and groups.
    slices: Vec<(i64, Vec<KeyGroup>, u32, u64)>,
    /// The state columns' types as Arrow writes them (`DataType`'s text form).
    state_types: Option<Vec<String>>,
}

/// What a slice's groups come to: their number, their keys, and per call the accumulators'
/// final values (one column) or states (one or more columns; what the store keeps).
pub(super) struct Drained {
    pub groups: usize,
    pub keys: Vec<ArrayRef>,
    pub columns: Vec<Vec<ArrayRef>>,
}

/// What the store holds of one slice.
#[derive(Default, Clone)]
struct StoredSlice {
    /// The key groups with chunks.
    key_groups: BTreeSet<KeyGroup>,
    /// Writes so far: the next chunk's number.
    writes: u32,
    /// Groups written (a key written twice counts twice).
    groups: u64,
}

pub(super) struct SliceStore {
    /// The table's name within its operator (an operator may have several stores).
    name: &'static str,
    /// Created with the first write, which brings the subtask's key-group range.
    table: Option<Box<dyn StateTable>>,
    /// Group keys ↔ bytes (`None` without key columns: a slice has one group, key `[]`).
    key_rows: Option<RowConverter>,
    /// The types of the states, those of the first written (the row format gives
    /// dictionaries back as their values: cast back on reading).
    state_types: Option<Vec<DataType>>,
    /// States ↔ bytes, for `state_types` (`None` when there are no state columns).
    state_rows: Option<RowConverter>,
    /// Number of state columns of each call.
    state_widths: Vec<usize>,
    slices: BTreeMap<i64, StoredSlice>,
    /// Groups over all stored slices.
    groups: u64,
    hashes: Vec<u64>,
}

impl SliceStore {
    pub fn new(
        name: &'static str,
        key_schema: SchemaRef,
        state_widths: Vec<usize>,
    ) -> Result<Self> {
        let key_rows = row_converter(key_schema.fields().iter().map(|f| f.data_type()))?;
        Ok(SliceStore {
            name,
            table: None,
            key_rows,
            state_types: None,
            state_rows: None,
            state_widths,
            slices: BTreeMap::new(),
            groups: 0,
            hashes: Vec::new(),
        })
    }

    /// The store as of a barrier: its table's snapshot (being written) and what else it
    /// knows.
    pub fn snapshot(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<(SliceStoreState, Option<(String, PendingSnapshot)>)> {
        let state = SliceStoreState {
            slices: self
                .slices
                .iter()
                .map(|(end, s)| {
                    let kgs = s.key_groups.iter().copied().collect();
                    (*end, kgs, s.writes, s.groups)
                })
                .collect(),
            state_types: self.state_types.as_ref().map(|t| type_names(t)),
        };
        let table = match self.table.as_mut() {
            Some(t) => Some((self.name.to_string(), t.snapshot(checkpoint_id)?)),
            None => None,
        };
        Ok((state, table))
    }

    /// Takes back what [`SliceStore::snapshot`] saved: the states of old subtasks (one, or
    /// several after a rescale, each keeping its slices' key groups) and the table's
    /// manifests (by table name). Slices and key groups outside this subtask's range are
    /// left out.
    pub fn restore(
        &mut self,
        states: Vec<SliceStoreState>,
        tables: &BTreeMap<String, Vec<Manifest>>,
        ctx: &OperatorContext,
    ) -> Result<()> {
        let manifests = tables.get(self.name);
        let table = subtask_table(&mut self.table, self.name, ctx)?;
        let range = table.key_groups();
        if let Some(manifests) = manifests {
            table.restore(manifests)?;
        }
        for state in states {
            if let Some(types) = state.state_types {
                let parsed = parse_type_names(&types)?;
                self.state_rows = row_converter(parsed.iter())?;
                self.state_types = Some(parsed);
            }
            for (end, kgs, writes, groups) in state.slices {
                let mine: BTreeSet<KeyGroup> =
                    kgs.into_iter().filter(|kg| range.contains(*kg)).collect();
                if mine.is_empty() {
                    continue;
                }
                let slice = self.slices.entry(end).or_default();
                slice.key_groups.extend(mine);
                slice.writes = slice.writes.max(writes);
                slice.groups += groups;
                self.groups += groups;
            }
        }
        Ok(())
    }

    /// The ends of the stored slices.
    pub fn ends(&self) -> impl Iterator<Item = i64> + '_ {
        self.slices.keys().copied()
    }

    /// Groups stored (a key written out twice counts twice) and the table's bytes.
    pub fn size(&self) -> StateSize {
        StateSize {
            entries: self.groups,
            bytes: self.table.as_ref().map_or(0, |t| t.size().bytes),
        }
    }

    /// Adds the states of `slice`'s groups to the slice ending at `end`, each group in the
    /// key group of its keys' hash.
    pub fn write(&mut self, end: i64, slice: &Drained, ctx: &OperatorContext) -> Result<()> {
        let table = subtask_table(&mut self.table, self.name, ctx)?;
        let kgs = key_groups(
            &slice.keys,
            slice.groups,
            table.key_groups(),
            ctx,
            &mut self.hashes,
        )?;
        self.write_in(end, &kgs, slice, ctx)
    }

    /// Adds `rows` (a store without keys, of one call) to the slice ending at `end`, each row
    /// in the key group of its `hashed` columns' hash.
    pub fn write_rows(
        &mut self,
        end: i64,
        hashed: &[ArrayRef],
        rows: &[ArrayRef],
        ctx: &OperatorContext,
    ) -> Result<()> {
        let n = rows.first().map_or(0, |c| c.len());
        let table = subtask_table(&mut self.table, self.name, ctx)?;
        let kgs = key_groups(hashed, n, table.key_groups(), ctx, &mut self.hashes)?;
        let slice = Drained {
            groups: n,
            keys: Vec::new(),
            columns: vec![rows.to_vec()],
        };
        self.write_in(end, &kgs, &slice, ctx)
    }

    fn write_in(
        &mut self,
        end: i64,
        key_groups: &[KeyGroup],
        slice: &Drained,
        ctx: &OperatorContext,
    ) -> Result<()> {
        let n = slice.groups;
        if n == 0 {
            return Ok(());
        }
        let table = subtask_table(&mut self.table, self.name, ctx)?;
        let keys = match &self.key_rows {
            None => None,
            Some(conv) => Some(conv.convert_columns(&slice.keys)?),
        };
        let states: Vec<ArrayRef> = slice.columns.iter().flatten().cloned().collect();
        let state_types = self
            .state_types
            .get_or_insert_with(|| states.iter().map(|a| a.data_type().clone()).collect());
        if self.state_rows.is_none() {
            self.state_rows = row_converter(state_types.iter())?;
        }
        let states = match &self.state_rows {
            Some(conv) => Some(conv.convert_columns(&states)?),
            None => None,
        };
        // One chunk per key group, by its place in the table's range (the exchange routed
        // the rows here by the same rule, so each is in it).
        let range = table.key_groups();
        let mut chunks: Vec<Vec<u8>> = vec![Vec::new(); range.len()];
        for (i, &kg) in key_groups.iter().enumerate() {
            let chunk = kg
                .checked_sub(range.start)
                .and_then(|at| chunks.get_mut(at as usize))
                .ok_or(gemini_state::StateError::ForeignKeyGroup {
                    key_group: kg,
                    range,
                })?;
            put_record(chunk, keys.as_ref().map_or(&[][..], |k| k.row(i).data()));
            put_record(chunk, states.as_ref().map_or(&[][..], |s| s.row(i).data()));
        }
        let (kgs, values): (Vec<KeyGroup>, Vec<&[u8]>) = chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_empty())
            .map(|(at, c)| (range.start + at as KeyGroup, c.as_slice()))
            .unzip();
        let stored = self.slices.entry(end).or_default();
        let mut key = time_bytes(end).to_vec();
        key.extend_from_slice(&stored.writes.to_be_bytes());
        stored.writes += 1;
        stored.groups += n as u64;
        self.groups += n as u64;
        stored.key_groups.extend(kgs.iter().copied());
        table.put_many(&kgs, &vec![key.as_slice(); kgs.len()], &values)?;
        Ok(())
    }

    /// The states stored for the slice ending at `end` (`None` if none are); a key written
    /// out more than once appears as often.
    pub fn read(&self, end: i64) -> Result<Option<Drained>> {
        let (Some(stored), Some(table)) = (self.slices.get(&end), &self.table) else {
            return Ok(None);
        };
        let prefix = time_bytes(end);
        let mut chunks = Vec::new();
        for &kg in &stored.key_groups {
            table.scan_prefix(kg, &prefix, &mut |_, v| {
                chunks.extend_from_slice(v);
                true
            })?;
        }
        let (mut keys, mut states, mut groups) = (Vec::new(), Vec::new(), 0);
        let key_parser = self.key_rows.as_ref().map(|c| c.parser());
        let state_parser = self.state_rows.as_ref().map(|c| c.parser());
        let mut at = 0;
        while at < chunks.len() {
            let key = next_record(&chunks, &mut at)?;
            if let Some(p) = &key_parser {
                keys.push(p.parse(key));
            }
            let state = next_record(&chunks, &mut at)?;
            if let Some(p) = &state_parser {
                states.push(p.parse(state));
            }
            groups += 1;
        }
        let keys = match &self.key_rows {
            None => Vec::new(),
            Some(conv) => conv.convert_rows(keys)?,
        };
        let flat = match &self.state_rows {
            Some(conv) => conv.convert_rows(states)?,
            None => Vec::new(),
        };
        let types = self.state_types.as_deref().unwrap_or_default();
        let mut flat = cast_back(flat, types)?.into_iter();
        let columns = self
            .state_widths
            .iter()
            .map(|&w| flat.by_ref().take(w).collect())
            .collect();
        Ok(Some(Drained {
            groups,
            keys,
            columns,
        }))
    }

    /// Deletes the state of the slice ending at `end`.
    pub fn remove(&mut self, end: i64) -> Result<()> {
        let (Some(stored), Some(table)) = (self.slices.remove(&end), self.table.as_mut()) else {
            return Ok(());
        };
        self.groups -= stored.groups;
        // Chunk keys are the prefix and four bytes: [prefix + 0000, prefix + ffff ffff ff).
        let start = time_bytes(end).to_vec();
        let mut stop = start.clone();
        stop.extend_from_slice(&[0xff; 5]);
        for kg in stored.key_groups {
            table.delete_range(kg, &start, &stop)?;
        }
        Ok(())
    }
}
