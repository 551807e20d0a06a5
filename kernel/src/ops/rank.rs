//! Rank: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY o) … WHERE rn <= N`, Flink's Top-N (and,
//! with N = 1, its deduplication).
//!
//! Rows rank by the ORDER BY columns' memcomparable bytes (arrow-row), ties in arrival order,
//! or newest first for keep-last deduplication. Over an insert-only input each partition
//! keeps only its best N rows: a row that falls out of the top never returns. Over an
//! updating input (a Top-N of a GROUP BY's results, Flink's retractable Top-N) each partition
//! keeps every live row in rank order, as retracting a top row lifts the next one in; a
//! retraction removes the earliest held row equal to it, found through a hash of the row's
//! bytes (not by walking the rows of equal rank, which are many when counts tie). A batch is folded before anything is
//! sent: each partition it touched compares its top N before and after and sends the
//! difference, so a batch that reshuffles a partition many times costs one set of changes.
//!
//! With the row number in the output, a row moving to another position is a new result row:
//! each position whose row changed sends -U (old row, its number) and +U (new row); a new
//! position sends +I. Without it, rows that left are retracted and rows that entered are
//! inserted, paired as -U/+U when both happen (deduplication's update of a key).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, Int8Array, RecordBatch, UInt32Array};
use arrow::compute::{take, SortOptions};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows};
use datafusion_physical_expr::PhysicalExpr;
use foldhash::fast::FixedState;
use gemini_state::StateSize;
use hashbrown::HashTable;

use crate::changelog::{accumulates, split_row_kinds, with_row_kinds};
use crate::checkpoint::{decode_saved, encode_saved, CheckpointId, ValueReader};
use crate::operator::{
    Operator, OperatorContext, OperatorFactory, OperatorSnapshot, Output, RestoredState,
};
use crate::ops::group_keys::GroupKeys;
use crate::ops::group_state::{GroupStateTable, GroupValue};
use crate::ops::key_ttl::{describe_ttl, KeyTtl};
use crate::ops::keyed_table::put_record;
use crate::ops::{whole_row_converter, SortKeys};
use crate::types::RowKind;
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct RankFactory {
    /// PARTITION BY expressions.
    pub partition: Vec<Arc<dyn PhysicalExpr>>,
    /// Names and types of the partition keys.
    pub key_schema: SchemaRef,
    /// ORDER BY expressions and directions; empty for arrival order.
    pub order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    /// The N of `rn <= N`.
    pub limit: usize,
    /// Whether the row number is output (as the last column).
    pub rank_column: bool,
    /// Rows of equal order keep the newest first (deduplication keeping the last row).
    pub newer_wins_ties: bool,
    /// The input's columns.
    pub input: SchemaRef,
    /// The output's columns: the input's, then the row number if `rank_column`.
    pub output: SchemaRef,
    /// `table.exec.state.ttl`: a partition whose top has not changed for this long starts
    /// again from nothing (its rows sent before are not retracted, as in Flink).
    pub state_ttl_ms: Option<i64>,
    /// The input is a retract changelog (op column last), not insert-only.
    pub updating_input: bool,
}

impl OperatorFactory for RankFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Rank {
            f: self.clone(),
            keys: GroupKeys::new(self.key_schema.clone())?,
            state: GroupStateTable::new("partitions", &self.key_schema)?,
            order: SortKeys::new(&self.order, &self.input)?,
            rows: whole_row_converter(&self.input)?,
            tops: Vec::new(),
            ranked: Vec::new(),
            by_row: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            held_bytes: 0,
            groups: Vec::new(),
            stamp: Vec::new(),
            batches: 0,
            ttl: KeyTtl::new(self.state_ttl_ms),
        }))
    }

    fn describe(&self) -> String {
        let keys: Vec<String> = self.partition.iter().map(|k| k.to_string()).collect();
        let order: Vec<String> = self
            .order
            .iter()
            .map(|(e, o)| format!("{e} {}", if o.descending { "DESC" } else { "ASC" }))
            .collect();
        format!(
            "top {} per [{}] by [{}]{}{}{}{}",
            self.limit,
            keys.join(", "),
            if order.is_empty() {
                "arrival".to_string()
            } else {
                order.join(", ")
            },
            if self.newer_wins_ties {
                ", newest first on ties"
            } else {
                ""
            },
            if self.rank_column {
                ", with row numbers"
            } else {
                ""
            },
            if self.updating_input {
                ", retracting (keeps every row)"
            } else {
                ""
            },
            describe_ttl(self.state_ttl_ms)
        )
    }
}

/// A kept row: its order bytes (insert-only input; empty for an updating input, whose rows
/// keep them in their [`RankPos`]), its whole-row bytes, and its arrival number.
struct Slot {
    order: Box<[u8]>,
    row: Box<[u8]>,
    seq: u64,
}

struct Rank {
    f: RankFactory,
    keys: GroupKeys,
    /// The checkpointed copy of the partitions' rows.
    state: GroupStateTable,
    order: SortKeys,
    rows: RowConverter,
    /// Insert-only input: per partition, its top rows (slot ids), best first.
    tops: Vec<Vec<u32>>,
    /// Updating input: per partition, every live row (slot id) in rank order.
    ranked: Vec<BTreeMap<RankPos, u32>>,
    /// Updating input: every held row as (hash of its bytes, slot id), for retractions.
    by_row: HashTable<(u64, u32)>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    seq: u64,
    held_bytes: usize,
    groups: Vec<usize>,
    /// The batch that last touched each partition.
    stamp: Vec<u32>,
    batches: u32,
    ttl: Option<KeyTtl>,
}

/// Where a row of an updating input ranks: its order bytes, then its arrival number (inverted
/// when newer rows win ties).
type RankPos = (Box<[u8]>, u64);

/// What a [`RankPos`] and a `by_row` entry cost beside the order bytes, as counted in the
/// state size.
const POS_BYTES: usize = 48;

fn row_hash(row: &[u8]) -> u64 {
    FixedState::default().hash_one(row)
}

impl Rank {
    /// Interns the partitions of `batch`'s rows into `groups` and drops the state of
    /// partitions whose TTL passed, among all (at a sweep) and those of `groups`.
    fn start_batch(&mut self, batch: &RecordBatch, groups: &mut Vec<usize>) -> Result<()> {
        self.keys.intern_batch(&self.f.partition, batch, groups)?;
        let partitions = self.grow_partitions();
        self.batches = self.batches.wrapping_add(1).max(1);
        let Some(ttl) = &mut self.ttl else {
            return Ok(());
        };
        let mut expired = ttl.start_batch(partitions);
        for &g in groups.iter() {
            if ttl.expired(g) {
                expired.push(g);
            }
        }
        for g in expired {
            self.state.touch(g);
            if self.f.updating_input {
                for ((order, _), id) in std::mem::take(&mut self.ranked[g]) {
                    self.held_bytes -= order.len() + POS_BYTES;
                    let hash = row_hash(&self.slots[id as usize].row);
                    if let Ok(held) = self.by_row.find_entry(hash, |&(_, i)| i == id) {
                        held.remove();
                    }
                    self.release(id);
                }
            } else {
                for id in std::mem::take(&mut self.tops[g]) {
                    self.release(id);
                }
            }
        }
        Ok(())
    }

    /// Makes room for every interned partition; their number.
    fn grow_partitions(&mut self) -> usize {
        let partitions = self.keys.len();
        if self.f.updating_input {
            self.ranked.resize_with(partitions, BTreeMap::new);
        } else {
            self.tops.resize_with(partitions, Vec::new);
        }
        self.stamp.resize(partitions, 0);
        partitions
    }

    /// Partition `g`'s top N, best first (borrowed for an insert-only input, which keeps
    /// only the top).
    fn top(&self, g: usize) -> Cow<'_, [u32]> {
        if self.f.updating_input {
            Cow::Owned(
                self.ranked[g]
                    .values()
                    .take(self.f.limit)
                    .copied()
                    .collect(),
            )
        } else {
            Cow::Borrowed(&self.tops[g])
        }
    }

    /// Whether partition `g` was touched by this batch before; if not, it is now.
    fn first_touch(&mut self, g: usize) -> bool {
        let first = self.stamp[g] != self.batches;
        self.stamp[g] = self.batches;
        if first {
            self.state.touch(g);
        }
        first
    }

    /// Whether slot `a` ranks before slot `b`.
    fn before(&self, a: &Slot, b: &Slot) -> bool {
        match a.order.cmp(&b.order) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => (a.seq > b.seq) == self.f.newer_wins_ties,
        }
    }

    fn store(&mut self, slot: Slot) -> u32 {
        self.held_bytes += slot.order.len() + slot.row.len() + 40;
        match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, id: u32) {
        let s = &mut self.slots[id as usize];
        self.held_bytes -= s.order.len() + s.row.len() + 40;
        s.order = Box::default();
        s.row = Box::default();
        self.free.push(id);
    }

    /// The rows of `changes` (slot, kind, row number) as an output batch.
    fn emit(&self, changes: &[(u32, RowKind, usize)], out: &mut dyn Output) -> Result<()> {
        let parser = self.rows.parser();
        let mut rows: Rows = self.rows.empty_rows(changes.len(), 0);
        for (id, ..) in changes {
            rows.push(parser.parse(&self.slots[*id as usize].row));
        }
        let mut columns: Vec<ArrayRef> = self.rows.convert_rows(&rows)?;
        if self.f.rank_column {
            columns.push(Arc::new(Int64Array::from_iter_values(
                changes.iter().map(|c| c.2 as i64),
            )));
        }
        let kinds = Int8Array::from_iter_values(changes.iter().map(|c| c.1 as i8));
        let batch = RecordBatch::try_new(self.f.output.clone(), columns)?;
        out.batch(with_row_kinds(batch, Arc::new(kinds))?)
    }

    /// The arrival part of an updating input's [`RankPos`]: newest first when newer rows win
    /// ties.
    fn tie(&self, seq: u64) -> u64 {
        if self.f.newer_wins_ties {
            u64::MAX - seq
        } else {
            seq
        }
    }

    /// Updating input: holds `row` (its bytes' hash `hash`) in partition `g` at `order`,
    /// arrived as number `seq`.
    fn hold_ranked(&mut self, g: usize, order: Box<[u8]>, row: Box<[u8]>, hash: u64, seq: u64) {
        self.held_bytes += order.len() + POS_BYTES;
        let id = self.store(Slot {
            order: Box::default(),
            row,
            seq,
        });
        let tie = self.tie(seq);
        self.ranked[g].insert((order, tie), id);
        self.by_row.insert_unique(hash, (hash, id), |&(h, _)| h);
    }

    /// Whether slots `a` and `b` hold the same row (the same slot, or a row retracted and
    /// sent again unchanged).
    fn same(&self, a: u32, b: u32) -> bool {
        a == b || self.slots[a as usize].row == self.slots[b as usize].row
    }

    /// What a partition sends for its top going from `old` to `new`.
    fn diff(&self, old: &[u32], new: &[u32], changes: &mut Vec<(u32, RowKind, usize)>) {
        if self.f.rank_column {
            for i in 0..old.len().max(new.len()) {
                match (old.get(i), new.get(i)) {
                    (Some(&o), Some(&n)) if self.same(o, n) => {}
                    (Some(&o), Some(&n)) => {
                        changes.push((o, RowKind::UpdateBefore, i + 1));
                        changes.push((n, RowKind::UpdateAfter, i + 1));
                    }
                    (None, Some(&n)) => changes.push((n, RowKind::Insert, i + 1)),
                    (Some(&o), None) => changes.push((o, RowKind::Delete, i + 1)),
                    (None, None) => {}
                }
            }
            return;
        }
        // Rows that left and rows that entered, as multisets: each old row cancels one equal
        // new row.
        let mut kept = vec![false; new.len()];
        let mut left = Vec::new();
        for &o in old {
            match (0..new.len()).find(|&j| !kept[j] && self.same(o, new[j])) {
                Some(j) => kept[j] = true,
                None => left.push(o),
            }
        }
        let entered: Vec<u32> = (0..new.len())
            .filter(|&j| !kept[j])
            .map(|j| new[j])
            .collect();
        for i in 0..left.len().max(entered.len()) {
            match (left.get(i), entered.get(i)) {
                (Some(&o), Some(&n)) => {
                    changes.push((o, RowKind::UpdateBefore, 0));
                    changes.push((n, RowKind::UpdateAfter, 0));
                }
                (Some(&o), None) => changes.push((o, RowKind::Delete, 0)),
                (None, Some(&n)) => changes.push((n, RowKind::Insert, 0)),
                (None, None) => {}
            }
        }
    }
}

impl Rank {
    /// An insert-only batch: only rows that can enter their partition's top are kept.
    fn insert_only(
        &mut self,
        batch: &RecordBatch,
        groups: &[usize],
        before: &mut Vec<(usize, Vec<u32>)>,
        gone: &mut Vec<u32>,
    ) -> Result<()> {
        let order = self.order.convert(batch)?;
        // Rows that could enter their partition's top: the top is not full, or they rank
        // before its last row. A top only improves, so a row failing this never enters.
        let limit = self.f.limit;
        let mut candidates = Vec::new();
        for (i, &g) in groups.iter().enumerate() {
            let top = &self.tops[g];
            let enters = top.len() < limit || {
                let last = &self.slots[*top.last().expect("a full top") as usize];
                match order.key(i).cmp(&last.order) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Equal => self.f.newer_wins_ties,
                    std::cmp::Ordering::Greater => false,
                }
            };
            if enters {
                candidates.push(i as u32);
            }
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(candidates.clone());
        let taken = batch
            .columns()
            .iter()
            .map(|c| Ok(take(c, &indices, None)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let rows = self.rows.convert_columns(&taken)?;

        let mut added = Vec::new();
        for (c, &i) in candidates.iter().enumerate() {
            let g = groups[i as usize];
            if self.first_touch(g) {
                before.push((g, self.tops[g].clone()));
            }
            self.seq += 1;
            let slot = Slot {
                order: order.key(i as usize).into(),
                row: rows.row(c).as_ref().into(),
                seq: self.seq,
            };
            let top = &self.tops[g];
            let at = top.partition_point(|&id| self.before(&self.slots[id as usize], &slot));
            if at >= limit {
                continue;
            }
            let id = self.store(slot);
            added.push((id, g));
            if let Some(ttl) = &mut self.ttl {
                ttl.written(g);
            }
            let top = &mut self.tops[g];
            top.insert(at, id);
            if top.len() > limit {
                top.pop();
            }
        }
        // Slots no top holds any more: those that left, and those that entered and left
        // within the batch.
        for (g, old) in before.iter() {
            let top = &self.tops[*g];
            gone.extend(old.iter().filter(|o| !top.contains(o)));
        }
        gone.extend(
            added
                .iter()
                .filter(|(id, g)| !self.tops[*g].contains(id))
                .map(|(id, _)| *id),
        );
        Ok(())
    }

    /// A batch of a retract changelog: +I/+U rows join their partition, -U/-D rows remove
    /// the first equal row held (none when the partition's state expired: then nothing
    /// changes, as in Flink).
    fn updating(
        &mut self,
        batch: &RecordBatch,
        adds: &[bool],
        groups: &[usize],
        before: &mut Vec<(usize, Vec<u32>)>,
        gone: &mut Vec<u32>,
    ) -> Result<()> {
        let order = self.order.convert(batch)?;
        let rows = self.rows.convert_columns(batch.columns())?;
        for (i, &g) in groups.iter().enumerate() {
            if self.first_touch(g) {
                before.push((g, self.top(g).into_owned()));
            }
            if let Some(ttl) = &mut self.ttl {
                ttl.written(g);
            }
            let key = order.key(i);
            let row = rows.row(i);
            let row = row.as_ref();
            let hash = row_hash(row);
            if adds[i] {
                self.seq += 1;
                self.hold_ranked(g, key.into(), row.into(), hash, self.seq);
                continue;
            }
            // The earliest equal row held, as Flink retracts the first of equal rows.
            let slots = &self.slots;
            let earliest = self
                .by_row
                .iter_hash(hash)
                .filter(|&&(h, id)| h == hash && *slots[id as usize].row == *row)
                .map(|&(_, id)| id)
                .min_by_key(|&id| slots[id as usize].seq);
            let Some(id) = earliest else { continue };
            if let Ok(held) = self.by_row.find_entry(hash, |&(_, i)| i == id) {
                held.remove();
            }
            let tie = self.tie(self.slots[id as usize].seq);
            self.ranked[g].remove(&(Box::from(key), tie));
            self.held_bytes -= key.len() + POS_BYTES;
            gone.push(id);
        }
        Ok(())
    }
}

impl Operator for Rank {
    fn name(&self) -> &str {
        "Rank"
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        let (batch, ops) = split_row_kinds(batch)?;
        self.state.track(ctx);
        let mut groups = std::mem::take(&mut self.groups);
        self.start_batch(&batch, &mut groups)?;
        // Each touched partition's top before the batch, and the slots the batch freed.
        let mut before: Vec<(usize, Vec<u32>)> = Vec::new();
        let mut gone = Vec::new();
        let applied = if self.f.updating_input {
            let adds = accumulates(ops.as_ref(), batch.num_rows());
            self.updating(&batch, &adds, &groups, &mut before, &mut gone)
        } else {
            self.insert_only(&batch, &groups, &mut before, &mut gone)
        };
        self.groups = groups;
        applied?;
        let mut changes = Vec::new();
        for (g, old) in &before {
            self.diff(old, &self.top(*g), &mut changes);
        }
        let result = if changes.is_empty() {
            Ok(())
        } else {
            self.emit(&changes, out)
        };
        // Freed only now: the changes may name them.
        for id in gone {
            self.release(id);
        }
        result
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// Results are sent per batch, so the partitions changed since the last barrier are all
    /// there is to write; the table's snapshot is the state.
    fn snapshot_state(
        &mut self,
        checkpoint_id: CheckpointId,
        ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        let changed = self.state.take_changed();
        let values: Vec<GroupValue> = changed.iter().map(|&g| self.encode(g)).collect();
        let state = encode_saved(&Saved {
            updating_input: self.f.updating_input,
            limit: self.f.limit,
        })?;
        self.state
            .checkpoint(&self.keys, &changed, &values, state, checkpoint_id, ctx)
    }

    /// The partitions of this subtask's key groups, read back from the old subtasks' tables.
    fn restore_state(&mut self, restored: RestoredState, ctx: &mut OperatorContext) -> Result<()> {
        let saved: Vec<Saved> = decode_saved(&restored.all_states, self.name())?;
        if let Some(s) = saved
            .iter()
            .find(|s| s.updating_input != self.f.updating_input || s.limit != self.f.limit)
        {
            return Err(Error::user(format!(
                "the checkpoint's Rank kept the top {}{}, this job's keeps the top {}{}",
                s.limit,
                if s.updating_input {
                    " of an updating input"
                } else {
                    ""
                },
                self.f.limit,
                if self.f.updating_input {
                    " of an updating input"
                } else {
                    ""
                },
            )));
        }
        let restored = self.state.restore(&mut self.keys, &restored.tables, ctx)?;
        if restored.values.is_empty() {
            return Ok(());
        }
        let groups = restored.groups;
        let partitions = self.grow_partitions();
        for (&g, value) in groups.iter().zip(&restored.values) {
            self.decode(g, value)?;
        }
        if let Some(ttl) = &mut self.ttl {
            ttl.restored(partitions, &groups);
        }
        Ok(())
    }

    fn state_size(&self) -> Option<StateSize> {
        Some(StateSize {
            entries: (self.slots.len() - self.free.len()) as u64,
            bytes: (self.held_bytes
                + self.keys.memory_size()
                + (self.tops.len() + self.ranked.len()) * 24) as u64,
        })
    }
}

/// What a checkpoint keeps besides the table: the shape of the state, to refuse a restore
/// into another one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    updating_input: bool,
    limit: usize,
}

impl Rank {
    /// Partition `g`'s rows for the state table, best first: their number, then per row its
    /// order bytes, its whole-row bytes and its arrival number. `None` for a partition that
    /// holds nothing.
    fn encode(&self, g: usize) -> GroupValue {
        let held: Vec<(&[u8], u32)> = if self.f.updating_input {
            self.ranked[g]
                .iter()
                .map(|((order, _), &id)| (&order[..], id))
                .collect()
        } else {
            self.tops[g]
                .iter()
                .map(|&id| (&self.slots[id as usize].order[..], id))
                .collect()
        };
        if held.is_empty() {
            return None;
        }
        let mut buf = (held.len() as u32).to_le_bytes().to_vec();
        for (order, id) in held {
            let slot = &self.slots[id as usize];
            put_record(&mut buf, order);
            put_record(&mut buf, &slot.row);
            buf.extend_from_slice(&slot.seq.to_le_bytes());
        }
        Some(buf)
    }

    /// Takes back partition `g`'s rows as [`Rank::encode`] wrote them; new rows arrive after
    /// every restored one.
    fn decode(&mut self, g: usize, value: &[u8]) -> Result<()> {
        let mut r = ValueReader::new(value);
        for _ in 0..r.u32()? {
            let order: Box<[u8]> = r.sized()?.into();
            let row: Box<[u8]> = r.sized()?.into();
            let seq = r.u64()?;
            self.seq = self.seq.max(seq);
            if self.f.updating_input {
                let hash = row_hash(&row);
                self.hold_ranked(g, order, row, hash, seq);
            } else {
                let id = self.store(Slot { order, row, seq });
                self.tops[g].push(id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "rank_tests.rs"]
mod tests;
