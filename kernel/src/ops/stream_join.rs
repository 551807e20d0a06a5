//! Streaming inner join of two append-only inputs: Flink's regular join where neither input
//! updates, so the result only grows.
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

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{filter, filter_record_batch, interleave, max, take};
use arrow::datatypes::SchemaRef;
use datafusion_physical_expr::PhysicalExpr;

use gemini_state::StateSize;

use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::ops::group_keys::{join_keys, key_names, keys_valid, paired_schema, GroupKeys};
use crate::ops::key_ttl::{describe_ttl, TtlSweep};
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
                SideState::new(self.key_schema.clone())?,
                SideState::new(self.key_schema.clone())?,
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
            "inner join, keys {keys:?}{}{}{}{delay}",
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
    batch: RecordBatch,
    keys: Vec<ArrayRef>,
    /// The latest time of its rows, for expiry.
    max_time: Option<i64>,
    /// Wall-clock time it arrived, for the state TTL.
    arrived: i64,
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
}

impl SideState {
    fn new(key_schema: SchemaRef) -> Result<Self> {
        Ok(SideState {
            keys: GroupKeys::new(key_schema.clone())?,
            key_schema,
            batches: Vec::new(),
            index: Vec::new(),
            live_rows: 0,
            dropped_rows: 0,
            held: HeldRows::default(),
        })
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

    /// Drops the batches whose rows all lie below `bound`.
    fn expire(&mut self, bound: i64, groups: &mut Vec<usize>) -> Result<()> {
        self.drop_where(|s| s.max_time.is_some_and(|t| t < bound), groups)
    }

    /// Drops the batches `gone` picks; rebuilds the groups when dropped rows outnumber the
    /// live ones, so memory follows what is live.
    fn drop_where(
        &mut self,
        gone: impl Fn(&Stored) -> bool,
        groups: &mut Vec<usize>,
    ) -> Result<()> {
        let mut dropped = 0;
        for slot in &mut self.batches {
            if slot.as_ref().is_some_and(&gone) {
                if let Some(s) = slot.take() {
                    dropped += s.batch.num_rows();
                    self.held.remove(s.batch.num_rows(), s.batch.columns());
                }
            }
        }
        if dropped == 0 {
            return Ok(());
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
        Ok(())
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
    /// pass the condition.
    fn probe(
        &mut self,
        input: usize,
        batch: &RecordBatch,
        keys: &[ArrayRef],
        out: &mut dyn Output,
    ) -> Result<()> {
        let ttl = self.f.state_ttl_ms;
        let other = &mut self.sides[1 - input];
        if other.live_rows == 0 {
            return Ok(());
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
        let sources: Vec<&RecordBatch> = sources
            .iter()
            .filter_map(|&n| other.batches[n].as_ref().map(|s| &s.batch))
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let mine = UInt32Array::from(mine);
        let mut here: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for c in batch.columns() {
            here.push(take(c, &mine, None)?);
        }
        let width = sources[0].num_columns();
        let mut there: Vec<ArrayRef> = Vec::with_capacity(width);
        for c in 0..width {
            let arrays: Vec<&dyn Array> = sources.iter().map(|b| b.column(c).as_ref()).collect();
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
        if let Some(cond) = &self.f.filter {
            let keep = nulls_false(evaluate(cond, &paired)?.as_boolean());
            if keep.true_count() == 0 {
                return Ok(());
            }
            paired = filter_record_batch(&paired, &keep)?;
        }
        out.batch(RecordBatch::try_new(
            self.f.output.clone(),
            paired.columns().to_vec(),
        )?)
    }
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
                for side in &mut self.sides {
                    side.drop_where(|s| s.arrived.saturating_add(ttl) <= now, &mut self.groups)?;
                }
            }
        }
        let mut batch = batch;
        let mut keys = self.keys(input, &batch)?;
        // A null key matches nothing, now or later.
        if let Some(valid) = keys_valid(&keys)? {
            if valid.true_count() == 0 {
                return Ok(());
            }
            batch = filter_record_batch(&batch, &valid)?;
            keys = keys
                .iter()
                .map(|k| filter(k, &valid))
                .collect::<std::result::Result<_, _>>()?;
        }
        self.probe(input, &batch, &keys, out)?;
        let mut max_time = None;
        if let Some(e) = self.side(input).expiry {
            max_time = max(&timestamp_millis(batch.column(e.column))?);
            let bound = self.watermark.map(|wm| e.bound(wm));
            if max_time.zip(bound).is_some_and(|(t, b)| t < b) {
                return Ok(()); // no later row of the other side can match these
            }
        }
        let stored = Stored {
            batch,
            keys,
            max_time,
            arrived: self.now,
        };
        self.sides[input].add(stored, &mut self.groups)
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
                    self.sides[input].expire(e.bound(t), &mut self.groups)?;
                }
            }
            let held = t.saturating_sub(self.f.watermark_delay);
            return out.emit(Message::Watermark(Watermark::EventTime(held)));
        }
        out.emit(Message::Watermark(wm))
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
