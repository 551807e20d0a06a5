//! Streaming join of two append-only inputs whose result only grows: Flink's regular inner
//! join where neither input updates, and its interval join, inner or outer.
//!
//! Each side keeps its rows: the batches as they came (rows with a null key dropped, since
//! `=` never matches them), the join keys interned into group indices for the whole batch,
//! and per group the list of its rows. A batch arriving on one side probes the other side's
//! groups (one hash lookup per row, no insertion), the matching pairs are gathered with arrow's
//! `take` and `interleave`, the rest of the condition runs as one filter over the paired
//! batch, and the batch is then stored for the other side's later rows.
//!
//! Without more, state grows forever, as in Flink, unless `table.exec.state.ttl` forgets rows
//! that long after they arrived. When the condition bounds a side's time
//! column by the other side's window column (q7: `B.dateTime BETWEEN B1.window_end − 10 s AND
//! B1.window_end`, B1 being a window aggregation, whose rows are never late), the planner
//! gives that side an [`Expiry`]: its rows that no future row of the other side can match are
//! dropped as the watermark advances, whole batches at a time, and the groups are rebuilt when
//! dropped rows outnumber the live ones.
//!
//! An outer interval join (both sides expire) remembers which rows of its outer sides met a
//! row of the other side; a row that never did is sent padded with nulls when it expires (or
//! at once when its key is null), so the result stays append-only, as in Flink.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array,
};
use arrow::compute::{filter, filter_record_batch, interleave, max, min, take};
use arrow::datatypes::SchemaRef;
use datafusion_physical_expr::PhysicalExpr;

use gemini_state::StateSize;

use crate::checkpoint::{decode_saved, encode_saved, CheckpointId};
use crate::operator::{
    Operator, OperatorContext, OperatorFactory, OperatorSnapshot, Output, RestoredState,
};
use crate::ops::changelog_join::RegularJoinType;
use crate::ops::group_keys::{join_keys, key_names, keys_valid, paired_schema, GroupKeys};
use crate::ops::key_ttl::{describe_ttl, TtlSweep};
use crate::ops::stream_join_state::{BatchToWrite, SideTable};
use crate::ops::window::nulls_false;
use crate::ops::{evaluate, timestamp_millis, HeldRows};
use crate::types::{wall_clock_ms, Message, Watermark};
use crate::{Error, Result};

/// When a side's stored rows can no longer match: a row whose `column` (a timestamp) is
/// below the watermark + `offset` ms is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub column: usize,
    pub offset: i64,
}

impl Expiry {
    /// Rows whose time is below this are dropped at watermark `wm`.
    fn bound(self, wm: i64) -> i64 {
        wm.saturating_add(self.offset)
    }
}

/// One input of a stream join.
#[derive(Debug, Clone)]
pub struct StreamJoinSide {
    /// The equi-join keys over this side's rows (none: every row meets every row).
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    pub schema: SchemaRef,
    pub expiry: Option<Expiry>,
}

#[derive(Debug, Clone)]
pub struct StreamJoinFactory {
    /// Inner, or outer (the outer sides must expire: their unmatched rows are sent then).
    pub join_type: RegularJoinType,
    pub left: StreamJoinSide,
    pub right: StreamJoinSide,
    /// Names and types of the keys (both sides' keys are cast to these).
    pub key_schema: SchemaRef,
    /// Conditions besides key equality, over the left columns followed by the right ones.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub output: SchemaRef,
    /// How far the output watermark trails the input's, in ms: an interval join's output rows
    /// may carry times up to this far below the watermark that let them out.
    pub watermark_delay: i64,
    /// `table.exec.state.ttl`: rows are forgotten this long after they arrived (a row is
    /// never updated, so its last write is its arrival).
    pub state_ttl_ms: Option<i64>,
}

impl OperatorFactory for StreamJoinFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(StreamJoin {
            paired: paired_schema(&self.left.schema, &self.right.schema),
            sides: [
                SideState::new(self.key_schema.clone(), "left", &self.left.schema)?,
                SideState::new(self.key_schema.clone(), "right", &self.right.schema)?,
            ],
            f: self.clone(),
            groups: Vec::new(),
            source_of: Vec::new(),
            watermark: None,
            now: 0,
            sweep: self.state_ttl_ms.map(TtlSweep::new),
        }))
    }

    fn describe(&self) -> String {
        let keys = key_names(&self.key_schema);
        let expiry = |s: &StreamJoinSide| {
            s.expiry.map_or(String::new(), |e| {
                format!(
                    " {} expires below watermark {:+} ms",
                    s.schema.field(e.column).name(),
                    e.offset
                )
            })
        };
        let mut delay = if self.watermark_delay > 0 {
            format!(", watermark held back {} ms", self.watermark_delay)
        } else {
            String::new()
        };
        delay += &describe_ttl(self.state_ttl_ms);
        format!(
            "{} join, keys {keys:?}{}{}{}{delay}",
            format!("{:?}", self.join_type).to_lowercase(),
            if self.filter.is_some() {
                ", with a condition"
            } else {
                ""
            },
            expiry(&self.left),
            expiry(&self.right),
        )
    }
}

/// A stored row: (stored batch number, row), packed.
type RowRef = u64;

fn row_ref(batch: usize, row: usize) -> RowRef {
    ((batch as u64) << 32) | row as u64
}

/// A batch kept by one side.
struct Stored {
    /// Its number on its side, for the state table: never reused.
    number: u64,
    /// Written to the state table (as of the last barrier).
    saved: bool,
    /// Its match flags changed since it was written.
    rewrite: bool,
    batch: RecordBatch,
    keys: Vec<ArrayRef>,
    /// The latest time of its rows, for expiry.
    max_time: Option<i64>,
    /// Wall-clock time it arrived, for the state TTL.
    arrived: i64,
    /// On an outer side: which rows met a row of the other side (or were sent padded).
    matched: Option<Vec<bool>>,
    /// On an outer side: a lower bound of the times of its rows not yet matched or sent.
    pending_min: Option<i64>,
}

/// The rows one side keeps.
struct SideState {
    key_schema: SchemaRef,
    keys: GroupKeys,
    /// Stored batches by number; `None` once expired (until the next rebuild renumbers).
    batches: Vec<Option<Stored>>,
    /// Per group, its rows (some in expired batches until the next rebuild).
    index: Vec<Vec<RowRef>>,
    live_rows: usize,
    dropped_rows: usize,
    /// What the live batches hold.
    held: HeldRows,
    /// The checkpointed copy of the batches.
    table: SideTable,
    /// The next stored batch's number.
    next_number: u64,
    /// Batches written to the table and dropped since the last barrier.
    dropped_numbers: Vec<u64>,
}

impl SideState {
    fn new(key_schema: SchemaRef, name: &'static str, schema: &SchemaRef) -> Result<Self> {
        Ok(SideState {
            keys: GroupKeys::new(key_schema.clone())?,
            key_schema,
            batches: Vec::new(),
            index: Vec::new(),
            live_rows: 0,
            dropped_rows: 0,
            held: HeldRows::default(),
            table: SideTable::new(name, schema.clone())?,
            next_number: 0,
            dropped_numbers: Vec::new(),
        })
    }

    /// Checkpoints the side: deletes the dropped batches from its table, writes the batches
    /// stored (or re-flagged) since the last barrier, and snapshots the table.
    fn checkpoint(
        &mut self,
        checkpoint_id: CheckpointId,
        ctx: &OperatorContext,
    ) -> Result<Option<(String, gemini_state::PendingSnapshot)>> {
        self.table
            .delete(&std::mem::take(&mut self.dropped_numbers))?;
        for stored in self.batches.iter_mut().flatten() {
            if stored.saved && !stored.rewrite {
                continue;
            }
            self.table.write(
                BatchToWrite {
                    number: stored.number,
                    batch: &stored.batch,
                    keys: &stored.keys,
                    arrived: stored.arrived,
                    matched: stored.matched.as_deref(),
                },
                ctx,
            )?;
            stored.saved = true;
            stored.rewrite = false;
        }
        self.table.snapshot(checkpoint_id)
    }

    /// Adds the rows of `stored`, whose keys are all non-null.
    fn add(&mut self, stored: Stored, groups: &mut Vec<usize>) -> Result<()> {
        let rows = stored.batch.num_rows();
        self.keys.intern(&stored.keys, rows, groups)?;
        if self.index.len() < self.keys.len() {
            self.index.resize_with(self.keys.len(), Vec::new);
        }
        let number = self.batches.len();
        for (r, &g) in groups.iter().enumerate() {
            self.index[g].push(row_ref(number, r));
        }
        self.live_rows += rows;
        self.held.add(rows, stored.batch.columns());
        self.batches.push(Some(stored));
        Ok(())
    }

    /// Drops the batches whose rows all lie below `bound`; returns the dropped batches of
    /// an outer side, whose unmatched rows are to be sent.
    fn expire(&mut self, bound: i64, groups: &mut Vec<usize>) -> Result<Vec<Stored>> {
        self.drop_where(|s| s.max_time.is_some_and(|t| t < bound), groups)
    }

    /// Drops the batches `gone` picks, returning those that track matches; rebuilds the
    /// groups when dropped rows outnumber the live ones, so memory follows what is live.
    fn drop_where(
        &mut self,
        gone: impl Fn(&Stored) -> bool,
        groups: &mut Vec<usize>,
    ) -> Result<Vec<Stored>> {
        let mut dropped = 0;
        let mut outer = Vec::new();
        for slot in &mut self.batches {
            if slot.as_ref().is_some_and(&gone) {
                if let Some(s) = slot.take() {
                    if s.saved {
                        self.dropped_numbers.push(s.number);
                    }
                    dropped += s.batch.num_rows();
                    self.held.remove(s.batch.num_rows(), s.batch.columns());
                    if s.matched.is_some() {
                        outer.push(s);
                    }
                }
            }
        }
        if dropped == 0 {
            return Ok(outer);
        }
        self.live_rows -= dropped;
        self.dropped_rows += dropped;
        if self.dropped_rows > self.live_rows {
            let batches = std::mem::take(&mut self.batches);
            self.keys = GroupKeys::new(self.key_schema.clone())?;
            self.index.clear();
            self.live_rows = 0;
            self.dropped_rows = 0;
            self.held = HeldRows::default();
            for stored in batches.into_iter().flatten() {
                self.add(stored, groups)?;
            }
        }
        Ok(outer)
    }
}

struct StreamJoin {
    f: StreamJoinFactory,
    /// The schema the condition reads: left columns, then right ones.
    paired: SchemaRef,
    sides: [SideState; 2],
    groups: Vec<usize>,
    /// Per stored batch of the probed side, its place among a probe's sources (`u32::MAX`:
    /// not among them); reset after each probe.
    source_of: Vec<u32>,
    watermark: Option<i64>,
    /// Wall-clock time of the batch at hand, for the state TTL.
    now: i64,
    sweep: Option<TtlSweep>,
}

impl StreamJoin {
    fn side(&self, input: usize) -> &StreamJoinSide {
        if input == 0 {
            &self.f.left
        } else {
            &self.f.right
        }
    }

    fn keys(&self, input: usize, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        join_keys(&self.side(input).keys, &self.f.key_schema, batch)
    }

    /// Joins a batch of side `input` with the rows the other side holds; emits the pairs that
    /// pass the condition, marks the other side's rows that met one (an outer side), and
    /// returns which of the batch's rows met one (when this side is outer).
    fn probe(
        &mut self,
        input: usize,
        batch: &RecordBatch,
        keys: &[ArrayRef],
        out: &mut dyn Output,
    ) -> Result<Option<Vec<bool>>> {
        let ttl = self.f.state_ttl_ms;
        let mut met = self
            .f
            .join_type
            .outer(input)
            .then(|| vec![false; batch.num_rows()]);
        let other = &mut self.sides[1 - input];
        if other.live_rows == 0 {
            return Ok(met);
        }
        other
            .keys
            .lookup(keys, batch.num_rows(), &mut self.groups)?;
        // The pairs: this batch's row, and the other side's row as (source, row).
        let mut mine = Vec::new();
        let mut theirs: Vec<(usize, usize)> = Vec::new();
        let mut sources: Vec<usize> = Vec::new();
        self.source_of.resize(other.batches.len(), u32::MAX);
        for (row, &g) in self.groups.iter().enumerate() {
            if g == GroupKeys::ABSENT {
                continue;
            }
            for &r in &other.index[g] {
                let number = (r >> 32) as usize;
                let Some(stored) = &other.batches[number] else {
                    continue; // expired
                };
                if ttl.is_some_and(|t| stored.arrived.saturating_add(t) <= self.now) {
                    continue; // past its TTL, not swept yet
                }
                if self.source_of[number] == u32::MAX {
                    self.source_of[number] = sources.len() as u32;
                    sources.push(number);
                }
                mine.push(row as u32);
                theirs.push((self.source_of[number] as usize, (r & 0xffff_ffff) as usize));
            }
        }
        for &number in &sources {
            self.source_of[number] = u32::MAX;
        }
        if mine.is_empty() {
            return Ok(met);
        }
        let source_batches: Vec<&RecordBatch> = sources
            .iter()
            .filter_map(|&n| other.batches[n].as_ref().map(|s| &s.batch))
            .collect();
        let mine = UInt32Array::from(mine);
        let mut here: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for c in batch.columns() {
            here.push(take(c, &mine, None)?);
        }
        let width = source_batches[0].num_columns();
        let mut there: Vec<ArrayRef> = Vec::with_capacity(width);
        for c in 0..width {
            let arrays: Vec<&dyn Array> = source_batches
                .iter()
                .map(|b| b.column(c).as_ref())
                .collect();
            there.push(interleave(&arrays, &theirs)?);
        }
        let columns = if input == 0 {
            here.extend(there);
            here
        } else {
            there.extend(here);
            there
        };
        let mut paired = RecordBatch::try_new(self.paired.clone(), columns)?;
        let mut kept: Option<BooleanArray> = None;
        if let Some(cond) = &self.f.filter {
            let keep = nulls_false(evaluate(cond, &paired)?.as_boolean());
            if keep.true_count() == 0 {
                return Ok(met);
            }
            paired = filter_record_batch(&paired, &keep)?;
            kept = Some(keep);
        }
        out.batch(RecordBatch::try_new(
            self.f.output.clone(),
            paired.columns().to_vec(),
        )?)?;
        // Who met whom, for the outer sides' padding (an inner join skips this).
        let other_outer = self.f.join_type.outer(1 - input);
        if met.is_none() && !other_outer {
            return Ok(met);
        }
        for (i, (&row, &(source, r))) in mine.values().iter().zip(&theirs).enumerate() {
            if kept.as_ref().is_some_and(|k| !k.value(i)) {
                continue;
            }
            if let Some(met) = met.as_mut() {
                met[row as usize] = true;
            }
            if other_outer {
                if let Some(stored) = other.batches[sources[source]].as_mut() {
                    if let Some(matched) = stored.matched.as_mut() {
                        stored.rewrite |= stored.saved && !matched[r];
                        matched[r] = true;
                    }
                }
            }
        }
        Ok(met)
    }

    /// The rows of side `input`'s `batch` that `send` picks, padded with nulls for the other
    /// side's columns.
    fn send_padded(
        &self,
        input: usize,
        batch: &RecordBatch,
        send: &BooleanArray,
        out: &mut dyn Output,
    ) -> Result<()> {
        if send.true_count() == 0 {
            return Ok(());
        }
        let rows = filter_record_batch(batch, send)?;
        let n = rows.num_rows();
        let nulls = |schema: &SchemaRef| -> Vec<ArrayRef> {
            schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), n))
                .collect()
        };
        let columns = if input == 0 {
            let mut c = rows.columns().to_vec();
            c.extend(nulls(&self.f.right.schema));
            c
        } else {
            let mut c = nulls(&self.f.left.schema);
            c.extend(rows.columns().iter().cloned());
            c
        };
        out.batch(RecordBatch::try_new(self.f.output.clone(), columns)?)
    }

    /// Sends, padded, the rows of side `input` that never met a row and whose time `column`
    /// is below `bound` (no future row can meet them), though their batch lives on for its
    /// later rows: a padded row must leave before the watermark passes its time.
    fn send_expired_unmatched(
        &mut self,
        input: usize,
        column: usize,
        bound: i64,
        out: &mut dyn Output,
    ) -> Result<()> {
        let mut sends = Vec::new();
        for (number, slot) in self.sides[input].batches.iter_mut().enumerate() {
            let Some(stored) = slot else { continue };
            let Some(matched) = stored.matched.as_mut() else {
                continue;
            };
            if stored.pending_min.is_none_or(|m| m >= bound) {
                continue;
            }
            let times = timestamp_millis(stored.batch.column(column))?;
            let mut send = vec![false; matched.len()];
            let mut pending_min: Option<i64> = None;
            for (i, m) in matched.iter_mut().enumerate() {
                if *m || times.is_null(i) {
                    continue;
                }
                let t = times.value(i);
                if t < bound {
                    *m = true;
                    send[i] = true;
                    stored.rewrite |= stored.saved;
                } else {
                    pending_min = Some(pending_min.map_or(t, |p| p.min(t)));
                }
            }
            stored.pending_min = pending_min;
            if send.contains(&true) {
                sends.push((number, BooleanArray::from(send)));
            }
        }
        for (number, send) in sends {
            if let Some(stored) = &self.sides[input].batches[number] {
                self.send_padded(input, &stored.batch, &send, out)?;
            }
        }
        Ok(())
    }

    /// Sends the rows of dropped outer-side batches that never met a row.
    fn send_unmatched(
        &self,
        input: usize,
        dropped: Vec<Stored>,
        out: &mut dyn Output,
    ) -> Result<()> {
        for stored in dropped {
            if let Some(matched) = &stored.matched {
                self.send_padded(input, &stored.batch, &unmatched(matched), out)?;
            }
        }
        Ok(())
    }
}

/// What a checkpoint keeps besides the sides' tables.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    watermark: Option<i64>,
}

/// True for the rows that met nothing.
fn unmatched(matched: &[bool]) -> BooleanArray {
    BooleanArray::from(matched.iter().map(|&m| !m).collect::<Vec<_>>())
}

impl Operator for StreamJoin {
    fn name(&self) -> &str {
        "StreamJoin"
    }

    fn on_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if input > 1 {
            return Err(Error::internal(format!("stream join input {input}")));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Some(ttl) = self.f.state_ttl_ms {
            self.now = wall_clock_ms();
            // The probe skips rows past the TTL that no sweep has dropped yet.
            if self.sweep.as_mut().is_some_and(|s| s.due(self.now)) {
                let now = self.now;
                for side in 0..2 {
                    let dropped = self.sides[side]
                        .drop_where(|s| s.arrived.saturating_add(ttl) <= now, &mut self.groups)?;
                    self.send_unmatched(side, dropped, out)?;
                }
            }
        }
        let outer = self.f.join_type.outer(input);
        let mut batch = batch;
        let mut keys = self.keys(input, &batch)?;
        // A null key matches nothing, now or later.
        if let Some(valid) = keys_valid(&keys)? {
            if outer {
                self.send_padded(input, &batch, &arrow::compute::not(&valid)?, out)?;
            }
            if valid.true_count() == 0 {
                return Ok(());
            }
            batch = filter_record_batch(&batch, &valid)?;
            keys = keys
                .iter()
                .map(|k| filter(k, &valid))
                .collect::<std::result::Result<_, _>>()?;
        }
        let met = self.probe(input, &batch, &keys, out)?;
        let mut max_time = None;
        if let Some(e) = self.side(input).expiry {
            max_time = max(&timestamp_millis(batch.column(e.column))?);
            let bound = self.watermark.map(|wm| e.bound(wm));
            if max_time.zip(bound).is_some_and(|(t, b)| t < b) {
                // No later row of the other side can match these.
                if let Some(met) = &met {
                    self.send_padded(input, &batch, &unmatched(met), out)?;
                }
                return Ok(());
            }
        }
        let pending_min = match self.side(input).expiry {
            Some(e) if outer => min(&timestamp_millis(batch.column(e.column))?),
            _ => None,
        };
        let side = &mut self.sides[input];
        let stored = Stored {
            number: side.next_number,
            saved: false,
            rewrite: false,
            batch,
            keys,
            max_time,
            arrived: self.now,
            matched: met,
            pending_min,
        };
        side.next_number += 1;
        side.add(stored, &mut self.groups)
    }

    fn on_watermark(
        &mut self,
        wm: Watermark,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            self.watermark = Some(t);
            for input in 0..2 {
                if let Some(e) = self.side(input).expiry {
                    let bound = e.bound(t);
                    self.send_expired_unmatched(input, e.column, bound, out)?;
                    let dropped = self.sides[input].expire(bound, &mut self.groups)?;
                    self.send_unmatched(input, dropped, out)?;
                }
            }
            let held = t.saturating_sub(self.f.watermark_delay);
            return out.emit(Message::Watermark(Watermark::EventTime(held)));
        }
        out.emit(Message::Watermark(wm))
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// Each side's table holds its live batches as of the barrier; the watermark (which
    /// drives expiry) is the small state.
    fn snapshot_state(
        &mut self,
        checkpoint_id: CheckpointId,
        ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        let mut tables = Vec::new();
        for side in &mut self.sides {
            tables.extend(side.checkpoint(checkpoint_id, ctx)?);
        }
        Ok(OperatorSnapshot {
            state: encode_saved(&Saved {
                watermark: self.watermark,
            })?,
            tables,
        })
    }

    /// Each side's batches of this subtask's key groups; the watermark is the lowest of the
    /// old subtasks'.
    fn restore_state(&mut self, restored: RestoredState, ctx: &mut OperatorContext) -> Result<()> {
        let saved: Vec<Saved> = decode_saved(&restored.all_states, self.name())?;
        self.watermark = crate::ops::window::lowest_watermark(saved.iter().map(|s| s.watermark));
        for input in 0..2 {
            let batches = self.sides[input].table.restore(&restored.tables, ctx)?;
            for b in batches {
                let keys = self.keys(input, &b.batch)?;
                let expiry = self.side(input).expiry;
                let times = match expiry {
                    Some(e) => Some(timestamp_millis(b.batch.column(e.column))?),
                    None => None,
                };
                let max_time = times.as_ref().and_then(max);
                // An outer side's earliest row still waiting for a partner or its padding.
                let pending_min = match (&times, &b.matched) {
                    (Some(t), Some(m)) => (0..t.len())
                        .filter(|&i| !m[i] && t.is_valid(i))
                        .map(|i| t.value(i))
                        .min(),
                    _ => None,
                };
                let side = &mut self.sides[input];
                side.next_number = side.next_number.max(b.number + 1);
                let stored = Stored {
                    number: b.number,
                    saved: true,
                    rewrite: false,
                    batch: b.batch,
                    keys,
                    max_time,
                    arrived: b.arrived,
                    matched: b.matched,
                    pending_min,
                };
                side.add(stored, &mut self.groups)?;
            }
        }
        Ok(())
    }

    /// Both sides' live rows, with their keys and row lists (a row reference per live row,
    /// counted rather than walked).
    fn state_size(&self) -> Option<StateSize> {
        let mut held = HeldRows::default();
        let mut extra = 0;
        for side in &self.sides {
            held.rows += side.held.rows;
            held.bytes += side.held.bytes;
            extra += side.keys.memory_size() + side.live_rows * size_of::<RowRef>();
        }
        Some(held.size(extra))
    }
}

#[cfg(test)]
#[path = "stream_join_tests.rs"]
mod tests;
