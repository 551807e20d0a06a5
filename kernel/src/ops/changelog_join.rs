//! Regular joins whose result changes: outer joins (inner, left, right, full) and joins of
//! updating inputs, as Flink's `StreamingJoinOperator` runs them. Their output is a retract
//! changelog of +I and -D rows.
//!
//! Each side keeps its rows in a [`StateTable`], one entry per distinct row under its join key:
//! the key is the join key's memcomparable bytes (arrow-row, behind their length, so that a
//! prefix scan finds exactly one key's rows) followed by the row's own bytes; the value is how
//! many copies of the row are held and, for an outer side, how many rows of the other side it
//! meets (its associations). A row whose associations fall to zero is shown null-padded; the
//! first match retracts that padding, the last retraction of a match brings it back.
//!
//! A batch is handled in three vectorized steps and one walk: the other side's rows for each
//! distinct key of the batch are read once and decoded into one batch; every (row, candidate)
//! pair is formed with `take` and the rest of the condition runs over all pairs at once; then
//! the rows are walked in order to apply Flink's rules (the walk only moves counters and
//! indices); finally the output is gathered with `take` (a null index pads with nulls) and the
//! changed entries are written back in one call per kind.
//!
//! State lives until deleted, as in Flink's regular join; `table.exec.state.ttl` drops entries
//! not written for that long (processing time).

use foldhash::HashMap;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, Int8Array, RecordBatch, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, Rows};
use datafusion_physical_expr::PhysicalExpr;
use gemini_state::{KeyGroup, StateSize, StateTable, TableOptions};

use crate::changelog::{accumulates, split_row_kinds, with_row_kinds};
use crate::checkpoint::CheckpointId;
use crate::operator::{
    Operator, OperatorContext, OperatorFactory, OperatorSnapshot, Output, RestoredState,
};
use crate::ops::evaluate;
use crate::ops::group_keys::{join_keys, key_names, keys_valid, paired_schema};
use crate::ops::key_ttl::{describe_ttl, TtlSweep};
use crate::ops::keyed_table::{cast_back, key_groups, row_converter, subtask_table_with};
use crate::ops::window::nulls_false;
use crate::types::{wall_clock_ms, RowKind};
use crate::{Error, Result};

/// Which sides of a regular join keep their unmatched rows, padded with nulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegularJoinType {
    Inner,
    Left,
    Right,
    Full,
}

impl RegularJoinType {
    /// Whether side `input` (0 left, 1 right) is an outer side.
    pub fn outer(self, input: usize) -> bool {
        matches!(
            (self, input),
            (RegularJoinType::Left | RegularJoinType::Full, 0)
                | (RegularJoinType::Right | RegularJoinType::Full, 1)
        )
    }
}

/// One input of a changelog join.
#[derive(Debug, Clone)]
pub struct ChangelogJoinSide {
    /// The equi-join keys over this side's rows (none: every row meets every row).
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The side's columns, without an op column.
    pub schema: SchemaRef,
}

#[derive(Debug, Clone)]
pub struct ChangelogJoinFactory {
    pub join_type: RegularJoinType,
    pub left: ChangelogJoinSide,
    pub right: ChangelogJoinSide,
    /// Names and types of the keys (both sides' keys are cast to these).
    pub key_schema: SchemaRef,
    /// Conditions besides key equality, over the left columns followed by the right ones.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// The result's columns (the op column is appended to them).
    pub output: SchemaRef,
    /// `table.exec.state.ttl`: entries not written for this long are dropped.
    pub state_ttl_ms: Option<i64>,
    /// An inner join of append-only inputs: every result is an insert, sent without the op
    /// column (an append-only stream).
    pub append_only: bool,
}

impl OperatorFactory for ChangelogJoinFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        let side = |s: &ChangelogJoinSide| -> Result<SideState> {
            let types: Vec<DataType> = s
                .schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect();
            Ok(SideState {
                table: None,
                rows: row_converter(&types)?,
                types,
            })
        };
        Ok(Box::new(ChangelogJoin {
            paired: paired_schema(&self.left.schema, &self.right.schema),
            keys: row_converter(self.key_schema.fields().iter().map(|f| f.data_type()))?,
            sides: [side(&self.left)?, side(&self.right)?],
            f: self.clone(),
            hashes: Vec::new(),
            sweep: self.state_ttl_ms.map(TtlSweep::new),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "{:?} join over {}, keys {:?}{}{}",
            self.join_type,
            if self.append_only {
                "append-only inputs in state tables"
            } else {
                "changelogs"
            },
            key_names(&self.key_schema),
            if self.filter.is_some() {
                ", with a condition"
            } else {
                ""
            },
            describe_ttl(self.state_ttl_ms),
        )
    }
}

/// How many copies of a stored row are held, and how many rows of the other side it meets
/// (kept for outer sides only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    copies: u32,
    associations: u32,
}

impl Counts {
    fn encode(self) -> [u8; 8] {
        let mut b = [0; 8];
        b[..4].copy_from_slice(&self.copies.to_le_bytes());
        b[4..].copy_from_slice(&self.associations.to_le_bytes());
        b
    }

    fn decode(v: &[u8]) -> Result<Counts> {
        let word = |at: usize| -> Result<u32> {
            v.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| Error::internal("a join state entry is cut short"))
        };
        Ok(Counts {
            copies: word(0)?,
            associations: word(4)?,
        })
    }
}

/// A state key's prefix for one join key: its length, then its bytes.
fn key_prefix(buf: &mut Vec<u8>, key: &[u8]) {
    buf.clear();
    buf.extend_from_slice(&(key.len() as u32).to_be_bytes());
    buf.extend_from_slice(key);
}

struct SideState {
    /// Created at the first batch, when the subtask's key groups are known.
    table: Option<Box<dyn StateTable>>,
    /// To and from the row format of the side's columns (`None` for a side without columns).
    rows: Option<RowConverter>,
    types: Vec<DataType>,
}

/// The other side's rows that share a key with rows of the batch, one per stored entry.
#[derive(Default)]
struct Candidates {
    /// Each entry's state key (key prefix, then the row bytes).
    keys: Vec<Vec<u8>>,
    key_groups: Vec<KeyGroup>,
    counts: Vec<Counts>,
    /// Where the row bytes start in the state key.
    row_at: Vec<usize>,
    changed: Vec<bool>,
}

/// The result rows of a batch, gathered at the end: per row, its kind and the rows of this
/// side and of the other side it is made of (`None`: padded with nulls).
#[derive(Default)]
struct Emitted {
    kinds: Vec<i8>,
    this: Vec<Option<u32>>,
    other: Vec<Option<u32>>,
}

impl Emitted {
    fn push(&mut self, kind: RowKind, this: Option<usize>, other: Option<usize>, times: u32) {
        for _ in 0..times {
            self.kinds.push(kind as i8);
            self.this.push(this.map(|i| i as u32));
            self.other.push(other.map(|j| j as u32));
        }
    }
}

/// The sides' table names.
const SIDE_TABLES: [&str; 2] = ["left", "right"];

struct ChangelogJoin {
    f: ChangelogJoinFactory,
    /// The schema the condition reads: left columns, then right ones.
    paired: SchemaRef,
    /// To the row format of the join keys (`None` without keys).
    keys: Option<RowConverter>,
    sides: [SideState; 2],
    hashes: Vec<u64>,
    /// When the tables drop entries past `table.exec.state.ttl`.
    sweep: Option<TtlSweep>,
}

impl ChangelogJoin {
    fn side(&self, input: usize) -> &ChangelogJoinSide {
        if input == 0 {
            &self.f.left
        } else {
            &self.f.right
        }
    }

    fn ensure_tables(&mut self, ctx: &OperatorContext) -> Result<()> {
        for (i, side) in self.sides.iter_mut().enumerate() {
            if side.table.is_none() {
                let options = TableOptions {
                    ttl_ms: self.f.state_ttl_ms,
                    ..TableOptions::default()
                };
                side.table = Some(subtask_table_with(ctx, SIDE_TABLES[i], options)?);
            }
        }
        Ok(())
    }

    /// Drops entries past their TTL, at most every hundredth of the TTL (a sweep visits the
    /// whole table).
    fn sweep(&mut self) -> Result<()> {
        let now = wall_clock_ms();
        if !self.sweep.as_mut().is_some_and(|s| s.due(now)) {
            return Ok(());
        }
        for side in &mut self.sides {
            if let Some(t) = side.table.as_mut() {
                t.advance_time(now)?;
            }
        }
        Ok(())
    }

    /// The join keys of `data` in the row format, whether each is free of nulls, and the key
    /// group of each row.
    fn encode_keys(
        &mut self,
        input: usize,
        data: &RecordBatch,
        ctx: &OperatorContext,
    ) -> Result<(Option<Rows>, Vec<bool>, Vec<KeyGroup>)> {
        let rows = data.num_rows();
        let keys = join_keys(&self.side(input).keys, &self.f.key_schema, data)?;
        let valid = match keys_valid(&keys)? {
            Some(v) => (0..rows).map(|i| v.value(i)).collect(),
            None => vec![true; rows],
        };
        let range = self.sides[0]
            .table
            .as_ref()
            .map(|t| t.key_groups())
            .ok_or_else(|| Error::internal("join state used before it exists"))?;
        let groups = key_groups(&keys, rows, range, ctx, &mut self.hashes)?;
        let encoded = match &self.keys {
            Some(c) => Some(c.convert_columns(&keys)?),
            None => None,
        };
        Ok((encoded, valid, groups))
    }

    /// Reads the other side's entries for each distinct key among `keys`; returns them and,
    /// per row, the range of its candidates.
    fn candidates(
        &self,
        input: usize,
        keys: Option<&Rows>,
        valid: &[bool],
        groups: &[KeyGroup],
    ) -> Result<(Candidates, Vec<(usize, usize)>)> {
        let table = self.sides[1 - input]
            .table
            .as_ref()
            .ok_or_else(|| Error::internal("join state used before it exists"))?;
        let mut found = Candidates::default();
        let mut ranges = vec![(0, 0); valid.len()];
        let mut seen: HashMap<&[u8], (usize, usize)> = HashMap::default();
        let mut prefix = Vec::new();
        let mut failed = None;
        for (i, range) in ranges.iter_mut().enumerate() {
            if !valid[i] {
                continue;
            }
            let key: &[u8] = keys.map_or(&[], |k| k.row(i).data());
            if let Some(&r) = seen.get(key) {
                *range = r;
                continue;
            }
            key_prefix(&mut prefix, key);
            let start = found.keys.len();
            table.scan_prefix(groups[i], &prefix, &mut |k, v| match Counts::decode(v) {
                Ok(c) => {
                    found.keys.push(k.to_vec());
                    found.key_groups.push(groups[i]);
                    found.counts.push(c);
                    found.row_at.push(prefix.len());
                    found.changed.push(false);
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            })?;
            if let Some(e) = failed.take() {
                return Err(e);
            }
            *range = (start, found.keys.len());
            seen.insert(key, *range);
        }
        Ok((found, ranges))
    }

    /// The candidates' rows as one batch of the other side's columns.
    fn decode_candidates(&self, input: usize, found: &Candidates) -> Result<RecordBatch> {
        let other = &self.sides[1 - input];
        let schema = self.side(1 - input).schema.clone();
        let Some(converter) = &other.rows else {
            return Ok(RecordBatch::new_empty(schema));
        };
        let parser = converter.parser();
        let rows = found
            .keys
            .iter()
            .zip(&found.row_at)
            .map(|(k, &at)| parser.parse(&k[at..]));
        let columns = cast_back(converter.convert_rows(rows)?, &other.types)?;
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// The side's columns of `this` and `other` in left-then-right order, gathered by the
    /// given indices (a null index gives a null row).
    fn gather(
        &self,
        input: usize,
        this: (&RecordBatch, &UInt32Array),
        other: (&RecordBatch, &UInt32Array),
    ) -> Result<Vec<ArrayRef>> {
        let pick = |b: &RecordBatch, idx: &UInt32Array| -> Result<Vec<ArrayRef>> {
            b.columns()
                .iter()
                .map(|c| {
                    if b.num_rows() == 0 {
                        Ok(new_null_array(c.data_type(), idx.len()))
                    } else {
                        Ok(take(c, idx, None)?)
                    }
                })
                .collect()
        };
        let mut here = pick(this.0, this.1)?;
        let mut there = pick(other.0, other.1)?;
        Ok(if input == 0 {
            here.append(&mut there);
            here
        } else {
            there.append(&mut here);
            there
        })
    }

    /// Which (row, candidate) pairs satisfy the condition: per row, its matching candidates.
    fn matches(
        &self,
        input: usize,
        data: &RecordBatch,
        found: &RecordBatch,
        ranges: &[(usize, usize)],
    ) -> Result<Vec<Vec<usize>>> {
        let mut out: Vec<Vec<usize>> = ranges.iter().map(|&(s, e)| (s..e).collect()).collect();
        let Some(cond) = &self.f.filter else {
            return Ok(out);
        };
        let (mut rows, mut cands) = (Vec::new(), Vec::new());
        for (i, &(s, e)) in ranges.iter().enumerate() {
            for j in s..e {
                rows.push(i as u32);
                cands.push(j as u32);
            }
        }
        if rows.is_empty() {
            return Ok(out);
        }
        let (rows, cands) = (UInt32Array::from(rows), UInt32Array::from(cands));
        let columns = self.gather(input, (data, &rows), (found, &cands))?;
        let paired = RecordBatch::try_new(self.paired.clone(), columns)?;
        let keep = nulls_false(evaluate(cond, &paired)?.as_boolean());
        for list in &mut out {
            list.clear();
        }
        for p in 0..keep.len() {
            if keep.value(p) {
                out[rows.value(p) as usize].push(cands.value(p) as usize);
            }
        }
        Ok(out)
    }

    fn on_rows(
        &mut self,
        input: usize,
        data: RecordBatch,
        ops: Option<ArrayRef>,
        ctx: &OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        let n = data.num_rows();
        let accumulate = accumulates(ops.as_ref(), n);
        let (keys, valid, groups) = self.encode_keys(input, &data, ctx)?;
        let (mut found, ranges) = self.candidates(input, keys.as_ref(), &valid, &groups)?;
        let found_rows = self.decode_candidates(input, &found)?;
        let matches = self.matches(input, &data, &found_rows, &ranges)?;

        // This side's entries the batch touches, read in one call.
        let row_bytes = match &self.sides[input].rows {
            Some(c) => Some(c.convert_columns(data.columns())?),
            None => None,
        };
        let mut entry_of: Vec<Option<usize>> = vec![None; n];
        let mut entries: Vec<(KeyGroup, Vec<u8>)> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::default();
        let mut prefix = Vec::new();
        for i in (0..n).filter(|&i| valid[i]) {
            key_prefix(&mut prefix, keys.as_ref().map_or(&[], |k| k.row(i).data()));
            if let Some(r) = &row_bytes {
                prefix.extend_from_slice(r.row(i).data());
            }
            let next = entries.len();
            let e = *index.entry(prefix.clone()).or_insert(next);
            if e == next {
                entries.push((groups[i], prefix.clone()));
            }
            entry_of[i] = Some(e);
        }
        let table = self.sides[input].table.as_mut().expect("created");
        let kgs: Vec<KeyGroup> = entries.iter().map(|e| e.0).collect();
        let ekeys: Vec<&[u8]> = entries.iter().map(|e| e.1.as_slice()).collect();
        let mut stored = Vec::new();
        table.get_many(&kgs, &ekeys, &mut stored)?;
        let before: Vec<Option<Counts>> = stored
            .iter()
            .map(|v| v.as_deref().map(Counts::decode).transpose())
            .collect::<Result<_>>()?;
        let mut counts: Vec<Counts> = before.iter().map(|c| c.unwrap_or_default()).collect();

        // Flink's rules, row by row.
        let this_outer = self.f.join_type.outer(input);
        let other_outer = self.f.join_type.outer(1 - input);
        let mut emitted = Emitted::default();
        for i in 0..n {
            let matched = &matches[i];
            let meets: u32 = matched.iter().map(|&j| found.counts[j].copies).sum();
            if accumulate[i] {
                if other_outer {
                    for &j in matched {
                        let c = &mut found.counts[j];
                        if c.associations == 0 {
                            emitted.push(RowKind::Delete, None, Some(j), c.copies);
                        }
                        c.associations += 1;
                        found.changed[j] = true;
                    }
                }
                if matched.is_empty() && this_outer {
                    emitted.push(RowKind::Insert, Some(i), None, 1);
                }
                for &j in matched {
                    emitted.push(RowKind::Insert, Some(i), Some(j), found.counts[j].copies);
                }
                if let Some(e) = entry_of[i] {
                    counts[e].copies += 1;
                    counts[e].associations = if this_outer { meets } else { 0 };
                }
            } else {
                if let Some(e) = entry_of[i] {
                    counts[e].copies = counts[e].copies.saturating_sub(1);
                }
                if matched.is_empty() && this_outer {
                    emitted.push(RowKind::Delete, Some(i), None, 1);
                }
                for &j in matched {
                    emitted.push(RowKind::Delete, Some(i), Some(j), found.counts[j].copies);
                }
                if other_outer {
                    for &j in matched {
                        let c = &mut found.counts[j];
                        if c.associations == 1 {
                            emitted.push(RowKind::Insert, None, Some(j), c.copies);
                        }
                        c.associations = c.associations.saturating_sub(1);
                        found.changed[j] = true;
                    }
                }
            }
        }

        // Write back this side's entries, then the other side's changed associations.
        let (mut put, mut gone) = (Vec::new(), Vec::new());
        for (e, (c, was)) in counts.iter().zip(&before).enumerate() {
            if c.copies == 0 {
                if was.is_some() {
                    gone.push(e);
                }
            } else if *was != Some(*c) {
                put.push(e);
            }
        }
        let values: Vec<[u8; 8]> = put.iter().map(|&e| counts[e].encode()).collect();
        table.put_many(
            &put.iter().map(|&e| kgs[e]).collect::<Vec<_>>(),
            &put.iter().map(|&e| ekeys[e]).collect::<Vec<_>>(),
            &values.iter().map(|v| v.as_slice()).collect::<Vec<_>>(),
        )?;
        table.delete_many(
            &gone.iter().map(|&e| kgs[e]).collect::<Vec<_>>(),
            &gone.iter().map(|&e| ekeys[e]).collect::<Vec<_>>(),
        )?;
        let changed: Vec<usize> = (0..found.keys.len())
            .filter(|&j| found.changed[j])
            .collect();
        if !changed.is_empty() {
            let values: Vec<[u8; 8]> = changed.iter().map(|&j| found.counts[j].encode()).collect();
            let other = self.sides[1 - input].table.as_mut().expect("created");
            other.put_many(
                &changed
                    .iter()
                    .map(|&j| found.key_groups[j])
                    .collect::<Vec<_>>(),
                &changed
                    .iter()
                    .map(|&j| found.keys[j].as_slice())
                    .collect::<Vec<_>>(),
                &values.iter().map(|v| v.as_slice()).collect::<Vec<_>>(),
            )?;
        }

        if emitted.kinds.is_empty() {
            return Ok(());
        }
        let this_idx = UInt32Array::from(emitted.this);
        let other_idx = UInt32Array::from(emitted.other);
        let columns = self.gather(input, (&data, &this_idx), (&found_rows, &other_idx))?;
        let batch = RecordBatch::try_new(self.f.output.clone(), columns)?;
        if self.f.append_only {
            return out.batch(batch);
        }
        out.batch(with_row_kinds(
            batch,
            Arc::new(Int8Array::from(emitted.kinds)),
        )?)
    }
}

impl Operator for ChangelogJoin {
    fn name(&self) -> &str {
        "ChangelogJoin"
    }

    fn on_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if input > 1 {
            return Err(Error::internal(format!("join input {input}")));
        }
        self.ensure_tables(ctx)?;
        self.sweep()?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (data, ops) = split_row_kinds(batch)?;
        self.on_rows(input, data, ops, ctx, out)
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// Every row is in the sides' tables as it is written: their snapshots are the state.
    fn snapshot_state(
        &mut self,
        checkpoint_id: CheckpointId,
        ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        self.ensure_tables(ctx)?;
        let mut tables = Vec::new();
        for (i, side) in self.sides.iter_mut().enumerate() {
            if let Some(table) = side.table.as_mut() {
                tables.push((SIDE_TABLES[i].to_string(), table.snapshot(checkpoint_id)?));
            }
        }
        Ok(OperatorSnapshot {
            state: Vec::new(),
            tables,
        })
    }

    /// Each side's table takes back the entries of this subtask's key groups.
    fn restore_state(&mut self, restored: RestoredState, ctx: &mut OperatorContext) -> Result<()> {
        self.ensure_tables(ctx)?;
        for (i, side) in self.sides.iter_mut().enumerate() {
            if let (Some(table), Some(manifests)) =
                (side.table.as_mut(), restored.tables.get(SIDE_TABLES[i]))
            {
                table.restore(manifests)?;
            }
        }
        Ok(())
    }

    fn state_size(&self) -> Option<StateSize> {
        let mut size = StateSize::default();
        for t in self.sides.iter().filter_map(|s| s.table.as_ref()) {
            size = size + t.size();
        }
        Some(size)
    }
}

#[cfg(test)]
#[path = "changelog_join_tests.rs"]
mod tests;
