//! The checkpointed copy of state an operator keeps per group key in memory (the groups of a
//! `GroupAggregate`, say): a `gemini-state` [`StateTable`] with one entry per group, its key
//! in arrow-row form and the operator's encoding of the group's state as its value.
//!
//! The operator works on its in-memory groups as before and marks the groups it changes; at a
//! barrier the changed groups are written (or deleted, when emptied) in one batch per call,
//! so each checkpoint writes what changed since the last one and the table's incremental
//! snapshot shares the rest. A group's key group is that of its key columns' hash, the one the
//! hash exchange routed its rows by (computed at every parallelism, so state taken at
//! parallelism 1 rescales too). A restore reads back the entries of the subtask's key groups.

use std::collections::BTreeMap;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::RowConverter;
use gemini_state::{Manifest, StateTable};

use crate::checkpoint::CheckpointId;
use crate::operator::{OperatorContext, OperatorSnapshot};
use crate::ops::group_keys::GroupKeys;
use crate::ops::keyed_table::{cast_back, key_groups, row_converter, subtask_table};
use crate::Result;

/// One group's state as the operator encodes it; `None` deletes the group's entry.
pub(crate) type GroupValue = Option<Vec<u8>>;

/// What a restore read back: the groups, interned into the operator's keys, and their encoded
/// states, in the same order.
pub(crate) struct RestoredGroups {
    pub groups: Vec<usize>,
    pub values: Vec<Vec<u8>>,
}

pub(crate) struct GroupStateTable {
    /// The table's name within its operator.
    name: &'static str,
    table: Option<Box<dyn StateTable>>,
    key_types: Vec<DataType>,
    /// Group keys ↔ bytes (`None` without key columns: one group, key `[]`).
    key_rows: Option<RowConverter>,
    /// Whether changes are tracked at all: only when the job takes checkpoints.
    tracking: bool,
    /// Per group: changed since the last barrier.
    dirty: Vec<bool>,
    changed: Vec<usize>,
    hashes: Vec<u64>,
}

impl GroupStateTable {
    pub fn new(name: &'static str, key_schema: &SchemaRef) -> Result<Self> {
        let key_types: Vec<DataType> = key_schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        Ok(GroupStateTable {
            name,
            table: None,
            key_rows: row_converter(key_types.iter())?,
            key_types,
            tracking: false,
            dirty: Vec::new(),
            changed: Vec::new(),
            hashes: Vec::new(),
        })
    }

    /// Starts tracking changes if the job takes checkpoints (cheap; called per batch).
    pub fn track(&mut self, ctx: &OperatorContext) {
        self.tracking = ctx.takes_checkpoints;
    }

    /// Marks `group` changed since the last barrier.
    pub fn touch(&mut self, group: usize) {
        if !self.tracking {
            return;
        }
        if group >= self.dirty.len() {
            self.dirty.resize(group + 1, false);
        }
        if !self.dirty[group] {
            self.dirty[group] = true;
            self.changed.push(group);
        }
    }

    /// The groups changed since the last barrier, in group order; they count as clean again.
    pub fn take_changed(&mut self) -> Vec<usize> {
        let mut changed = std::mem::take(&mut self.changed);
        for &g in &changed {
            self.dirty[g] = false;
        }
        changed.sort_unstable();
        changed
    }

    /// Writes the changed groups: `keys` are their key columns, `values[i]` the state of
    /// row `i` (`None`: the group is gone).
    fn write(
        &mut self,
        keys: &[ArrayRef],
        values: &[GroupValue],
        ctx: &OperatorContext,
    ) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let table = subtask_table(&mut self.table, self.name, ctx)?;
        let kgs = key_groups(
            keys,
            values.len(),
            table.key_groups(),
            ctx,
            &mut self.hashes,
        )?;
        let rows = match &self.key_rows {
            Some(conv) => Some(conv.convert_columns(keys)?),
            None => None,
        };
        let key_of = |i: usize| rows.as_ref().map_or(&[][..], |r| r.row(i).data());
        let (mut put_kgs, mut put_keys, mut put_values) = (Vec::new(), Vec::new(), Vec::new());
        let (mut del_kgs, mut del_keys) = (Vec::new(), Vec::new());
        for (i, value) in values.iter().enumerate() {
            match value {
                Some(v) => {
                    put_kgs.push(kgs[i]);
                    put_keys.push(key_of(i));
                    put_values.push(v.as_slice());
                }
                None => {
                    del_kgs.push(kgs[i]);
                    del_keys.push(key_of(i));
                }
            }
        }
        if !put_keys.is_empty() {
            table.put_many(&put_kgs, &put_keys, &put_values)?;
        }
        if !del_keys.is_empty() {
            table.delete_many(&del_kgs, &del_keys)?;
        }
        Ok(())
    }

    /// Checkpoint `checkpoint_id`: writes `changed` (groups of `keys`, from
    /// [`take_changed`](Self::take_changed)) with their `values`, then snapshots the table
    /// (nothing before the first write); `state` is the operator's small state.
    pub fn checkpoint(
        &mut self,
        keys: &GroupKeys,
        changed: &[usize],
        values: &[GroupValue],
        state: Vec<u8>,
        checkpoint_id: CheckpointId,
        ctx: &OperatorContext,
    ) -> Result<OperatorSnapshot> {
        let key_columns = keys.keys_of(changed)?;
        self.write(&key_columns, values, ctx)?;
        let tables = match self.table.as_mut() {
            Some(t) => vec![(self.name.to_string(), t.snapshot(checkpoint_id)?)],
            None => Vec::new(),
        };
        Ok(OperatorSnapshot { state, tables })
    }

    /// Restores the table from its manifests (by table name; none if the old subtasks wrote
    /// nothing) and reads back every group of this subtask's key groups, interning their keys
    /// into `group_keys`.
    pub fn restore(
        &mut self,
        group_keys: &mut GroupKeys,
        tables: &BTreeMap<String, Vec<Manifest>>,
        ctx: &OperatorContext,
    ) -> Result<RestoredGroups> {
        self.track(ctx);
        let table = subtask_table(&mut self.table, self.name, ctx)?;
        if let Some(manifests) = tables.get(self.name) {
            table.restore(manifests)?;
        }
        let range = table.key_groups();
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        for kg in range.start..range.end {
            table.scan_prefix(kg, &[], &mut |k, v| {
                keys.push(k.to_vec());
                values.push(v.to_vec());
                true
            })?;
        }
        let columns = match &self.key_rows {
            None => Vec::new(),
            Some(conv) => {
                let parser = conv.parser();
                let rows = conv.convert_rows(keys.iter().map(|k| parser.parse(k)))?;
                cast_back(rows, &self.key_types)?
            }
        };
        let mut groups = Vec::new();
        if !values.is_empty() {
            group_keys.intern(&columns, values.len(), &mut groups)?;
        }
        Ok(RestoredGroups { groups, values })
    }
}
