//! Flink's OVER window: `AGG(x) OVER (PARTITION BY k ORDER BY t <frame>)` where `t` is a time
//! attribute and the input only inserts. Each row is sent once, with the aggregates of its
//! frame, and the result is append-only (it can feed a file or Kafka sink, and the rowtime
//! stays a time attribute).
//!
//! Ordered by the rowtime, rows wait until the watermark passes their time and are then
//! taken in time order, ties in arrival order; a row whose partition already took a row as
//! late or later is late and dropped (Flink's rule: its frame has been sent). Ordered by a
//! processing-time attribute, rows are taken as they arrive, timed by the wall clock.
//!
//! Each partition keeps running aggregates and, for a bounded frame, the rows still in it:
//! a row entering adds its arguments, one leaving subtracts them (MIN and MAX keep a monotonic
//! queue of the frame's candidates), so a row costs O(1) amortized whatever the frame's size.
//! A RANGE frame ends at the current row's time, so rows of equal time are peers: each sees
//! all of them. Waiting rows stay in their input batches (compacted when mostly taken) and
//! are sent with `interleave`, column by column.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::interleave;
use arrow::datatypes::SchemaRef;
use datafusion_physical_expr::PhysicalExpr;
use gemini_state::StateSize;

use crate::checkpoint::{CheckpointId, ValueReader};
use crate::operator::{
    Operator, OperatorContext, OperatorFactory, OperatorSnapshot, Output, RestoredState,
};
use crate::ops::group_keys::GroupKeys;
use crate::ops::group_state::{GroupStateTable, GroupValue};
use crate::ops::key_ttl::{describe_ttl, KeyTtl};
use crate::ops::keyed_table::put_record;
use crate::ops::timestamp_millis;
use crate::ops::whole_row_converter;
use crate::ops::window::{count_late, note_late_rows};
use crate::types::{wall_clock_ms, Message, Watermark};
use crate::{Error, Result};

use super::{
    argument_columns, result_column, value_of, ArgColumn, Num, OverCall, OverFrame, OverFunction,
};

/// The time attribute an OVER window is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverTime {
    /// The rowtime, the input's column at this index.
    Event { column: usize },
    /// A processing-time attribute: arrival order, timed by the wall clock.
    Processing,
}

#[derive(Debug, Clone)]
pub struct TimeOverAggregateFactory {
    /// PARTITION BY expressions.
    pub partition: Vec<Arc<dyn PhysicalExpr>>,
    /// Names and types of the partition keys.
    pub key_schema: SchemaRef,
    pub time: OverTime,
    /// The calls, all over one frame (Flink's rule for a streaming OVER window).
    pub calls: Vec<OverCall>,
    /// The input's columns.
    pub input: SchemaRef,
    /// The input's columns, then one per call.
    pub output: SchemaRef,
    /// `table.exec.state.ttl`: a partition not written for this long starts its frames again
    /// from nothing.
    pub state_ttl_ms: Option<i64>,
}

impl OperatorFactory for TimeOverAggregateFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        let frame = self
            .calls
            .first()
            .map(|c| c.frame)
            .ok_or_else(|| Error::internal("an OVER window without calls"))?;
        if self.calls.iter().any(|c| c.frame != frame) {
            return Err(Error::internal("OVER calls over different frames"));
        }
        Ok(Box::new(TimeOverAggregate {
            keys: GroupKeys::new(self.key_schema.clone())?,
            state: GroupStateTable::new("partitions", &self.key_schema)?,
            f: self.clone(),
            frame,
            partitions: Vec::new(),
            groups: Vec::new(),
            held: Vec::new(),
            waiting: Vec::new(),
            earliest: i64::MAX,
            late_rows: 0,
            frame_rows: 0,
            ttl: KeyTtl::new(self.state_ttl_ms),
        }))
    }

    fn describe(&self) -> String {
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|c| format!("{:?}", c.function))
            .collect();
        let time = match self.time {
            OverTime::Event { column } => format!("rowtime {}", self.input.field(column).name()),
            OverTime::Processing => "processing time".to_string(),
        };
        format!(
            "over aggregate: {} over {} by {time}, append-only{}",
            calls.join(", "),
            self.calls
                .first()
                .map_or(String::new(), |c| c.frame.to_string()),
            describe_ttl(self.state_ttl_ms)
        )
    }
}

/// One call's aggregate over a sliding frame: rows enter at the back and leave at the front.
struct Sliding {
    function: OverFunction,
    /// Whether rows ever leave (a bounded frame): MIN and MAX then keep every candidate.
    bounded: bool,
    count: i64,
    sum: Option<Num>,
    /// MIN or MAX: the frame's candidates (row id, value), best at the front. A row behind a
    /// better or equal later row can never be the extreme again, so it is dropped.
    best: VecDeque<(u64, Num)>,
}

impl Sliding {
    fn new(function: OverFunction, bounded: bool) -> Self {
        Sliding {
            function,
            bounded,
            count: 0,
            sum: None,
            best: VecDeque::new(),
        }
    }

    /// Whether `a` is at least as good an extreme as `b`.
    fn beats(&self, a: Num, b: Num) -> bool {
        match self.function {
            OverFunction::Min => a.as_f64() <= b.as_f64(),
            _ => a.as_f64() >= b.as_f64(),
        }
    }

    fn add(&mut self, id: u64, v: Option<Num>) {
        let Some(v) = v else { return };
        self.count += 1;
        self.sum = Some(Num::add(self.sum, v));
        if !matches!(self.function, OverFunction::Min | OverFunction::Max) {
            return;
        }
        if !self.bounded {
            if self.best.front().is_none_or(|&(_, b)| !self.beats(b, v)) {
                self.best.clear();
                self.best.push_back((id, v));
            }
            return;
        }
        while self.best.back().is_some_and(|&(_, b)| self.beats(v, b)) {
            self.best.pop_back();
        }
        self.best.push_back((id, v));
    }

    fn remove(&mut self, id: u64, v: Option<Num>) {
        let Some(v) = v else { return };
        self.count -= 1;
        self.sum = match self.sum {
            Some(s) if self.count > 0 => Some(Num::sub(s, v)),
            _ => None,
        };
        if self.best.front().is_some_and(|&(b, _)| b == id) {
            self.best.pop_front();
        }
    }

    fn value(&self) -> Option<Num> {
        let best = self.best.front().map(|&(_, v)| v);
        value_of(self.function, self.count, self.sum, best, best)
    }
}

/// One partition's frame.
struct Partition {
    aggs: Vec<Sliding>,
    /// Rows in a bounded frame, oldest first: (time, row id); their arguments are in `args`,
    /// one per call each.
    rows: VecDeque<(i64, u64)>,
    args: VecDeque<Option<Num>>,
    next_id: u64,
    /// The time of the last row taken: an event-time row at or before it is late.
    last_time: Option<i64>,
}

impl Partition {
    fn new(calls: &[OverCall], frame: OverFrame) -> Self {
        let bounded = matches!(frame, OverFrame::Rows(Some(_)) | OverFrame::Range(Some(_)));
        Partition {
            aggs: calls
                .iter()
                .map(|c| Sliding::new(c.function, bounded))
                .collect(),
            rows: VecDeque::new(),
            args: VecDeque::new(),
            next_id: 0,
            last_time: None,
        }
    }

    /// Adds a row at `time` with arguments `args`, keeping it if the frame is bounded.
    fn enter(&mut self, time: i64, args: impl Iterator<Item = Option<Num>>, bounded: bool) {
        let id = self.next_id;
        self.next_id += 1;
        for (agg, v) in self.aggs.iter_mut().zip(args) {
            agg.add(id, v);
            if bounded {
                self.args.push_back(v);
            }
        }
        if bounded {
            self.rows.push_back((time, id));
        }
        self.last_time = Some(time);
    }

    /// Removes the oldest row of the frame.
    fn leave(&mut self) {
        let Some((_, id)) = self.rows.pop_front() else {
            return;
        };
        for agg in &mut self.aggs {
            let v = self.args.pop_front().flatten();
            agg.remove(id, v);
        }
    }
}

/// An input batch with rows still waiting, and its calls' arguments.
struct Held {
    batch: RecordBatch,
    args: Vec<ArgColumn>,
}

/// A row waiting to be taken: its time, partition, and place among the held batches.
#[derive(Clone, Copy)]
struct Waiting {
    time: i64,
    group: u32,
    batch: u32,
    row: u32,
}

struct TimeOverAggregate {
    f: TimeOverAggregateFactory,
    keys: GroupKeys,
    /// The checkpointed copy of the partitions' frames and waiting rows.
    state: GroupStateTable,
    frame: OverFrame,
    partitions: Vec<Partition>,
    groups: Vec<usize>,
    held: Vec<Held>,
    /// Rows not taken yet, in arrival order after the last sort.
    waiting: Vec<Waiting>,
    /// The earliest time among `waiting` (`i64::MAX` when none waits): a watermark before it
    /// takes nothing, without sorting.
    earliest: i64,
    late_rows: u64,
    /// Rows held in bounded frames, over all partitions.
    frame_rows: u64,
    ttl: Option<KeyTtl>,
}

impl TimeOverAggregate {
    /// Partition `g`'s state TTL passed: its frames start again from nothing.
    fn forget(&mut self, g: usize) {
        self.state.touch(g);
        self.frame_rows -= self.partitions[g].rows.len() as u64;
        self.partitions[g] = Partition::new(&self.f.calls, self.frame);
    }

    /// Takes `rows` (sorted by time, then partition, ties in arrival order) into their
    /// partitions' frames and sends them with their aggregates.
    fn take(&mut self, rows: &[Waiting], out: &mut dyn Output) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let calls = self.f.calls.len();
        let mut values: Vec<Vec<Option<Num>>> = vec![Vec::with_capacity(rows.len()); calls];
        let mut i = 0;
        while i < rows.len() {
            let (g, time) = (rows[i].group as usize, rows[i].time);
            self.state.touch(g);
            let peers = rows[i..]
                .iter()
                .take_while(|r| r.group as usize == g && r.time == time)
                .count();
            if let Some(ttl) = &mut self.ttl {
                let expired = ttl.expired(g);
                ttl.written(g);
                if expired {
                    self.forget(g);
                }
            }
            let partition = &mut self.partitions[g];
            let before = partition.rows.len();
            let held = &self.held;
            let args_of = |r: Waiting| {
                let h = &held[r.batch as usize];
                h.args.iter().map(move |a| a.at(r.row as usize))
            };
            match self.frame {
                OverFrame::Rows(n) => {
                    for r in &rows[i..i + peers] {
                        partition.enter(r.time, args_of(*r), n.is_some());
                        if let Some(n) = n {
                            while partition.rows.len() > n + 1 {
                                partition.leave();
                            }
                        }
                        for (c, agg) in partition.aggs.iter().enumerate() {
                            values[c].push(agg.value());
                        }
                    }
                }
                OverFrame::Range(span) => {
                    for r in &rows[i..i + peers] {
                        partition.enter(r.time, args_of(*r), span.is_some());
                    }
                    if let Some(span) = span {
                        while partition
                            .rows
                            .front()
                            .is_some_and(|&(t, _)| t < time.saturating_sub(span))
                        {
                            partition.leave();
                        }
                    }
                    for (c, agg) in partition.aggs.iter().enumerate() {
                        let v = agg.value();
                        values[c].extend(std::iter::repeat_n(v, peers));
                    }
                }
            }
            self.frame_rows = self.frame_rows + partition.rows.len() as u64 - before as u64;
            i += peers;
        }

        let sources: Vec<&RecordBatch> = self.held.iter().map(|h| &h.batch).collect();
        let indices: Vec<(usize, usize)> = rows
            .iter()
            .map(|r| (r.batch as usize, r.row as usize))
            .collect();
        let mut columns = Vec::with_capacity(self.f.output.fields().len());
        for c in 0..self.f.input.fields().len() {
            let column: Vec<&dyn Array> = sources.iter().map(|b| b.column(c).as_ref()).collect();
            columns.push(interleave(&column, &indices)?);
        }
        let width = self.f.input.fields().len();
        for (c, v) in values.iter().enumerate() {
            columns.push(result_column(&self.f.output, width, c, v)?);
        }
        out.batch(RecordBatch::try_new(self.f.output.clone(), columns)?)
    }

    /// Takes the waiting rows at or before `time`, in time order.
    fn take_until(&mut self, time: i64, out: &mut dyn Output) -> Result<()> {
        if time < self.earliest {
            return Ok(());
        }
        // Stable and run-adaptive: the rows left from the last sort are one sorted run.
        self.waiting.sort_by_key(|w| (w.time, w.group));
        let ready = self.waiting.partition_point(|w| w.time <= time);
        let rows: Vec<Waiting> = self.waiting.drain(..ready).collect();
        self.earliest = self.waiting.first().map_or(i64::MAX, |w| w.time);
        self.take(&rows, out)?;
        self.compact()
    }

    /// Frees the held batches once no row waits in them, or copies the waiting rows into
    /// one batch when the held ones are mostly taken (so each row is copied O(1) times).
    fn compact(&mut self) -> Result<()> {
        if self.waiting.is_empty() {
            self.held.clear();
            return Ok(());
        }
        let held_rows: usize = self.held.iter().map(|h| h.batch.num_rows()).sum();
        if held_rows < 2 * self.waiting.len() + 8192 {
            return Ok(());
        }
        let indices: Vec<(usize, usize)> = self
            .waiting
            .iter()
            .map(|w| (w.batch as usize, w.row as usize))
            .collect();
        let columns = (0..self.f.input.fields().len())
            .map(|c| {
                let column: Vec<&dyn Array> = self
                    .held
                    .iter()
                    .map(|h| h.batch.column(c).as_ref())
                    .collect();
                Ok(interleave(&column, &indices)?)
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let args = (0..self.f.calls.len())
            .map(|c| {
                let arrays: Option<Vec<&dyn Array>> =
                    self.held.iter().map(|h| h.args[c].array()).collect();
                Ok(match arrays {
                    Some(arrays) => ArgColumn::of(&interleave(&arrays, &indices)?),
                    None => ArgColumn::Rows,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(self.f.input.clone(), columns)?;
        self.held = vec![Held { batch, args }];
        for (i, w) in self.waiting.iter_mut().enumerate() {
            w.batch = 0;
            w.row = i as u32;
        }
        Ok(())
    }
}

impl Operator for TimeOverAggregate {
    fn name(&self) -> &str {
        "OverAggregate"
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.state.track(ctx);
        let mut groups = std::mem::take(&mut self.groups);
        self.keys
            .intern_batch(&self.f.partition, &batch, &mut groups)?;
        let (calls, frame) = (&self.f.calls, self.frame);
        self.partitions
            .resize_with(self.keys.len(), || Partition::new(calls, frame));
        let expired = self
            .ttl
            .as_mut()
            .map_or(Vec::new(), |t| t.start_batch(self.partitions.len()));
        for g in expired {
            self.forget(g);
        }
        let args = argument_columns(&self.f.calls, &batch)?;
        let at = self.held.len() as u32;
        match self.f.time {
            OverTime::Processing => {
                let now = wall_clock_ms();
                for (i, &g) in groups.iter().enumerate() {
                    self.earliest = self.earliest.min(now);
                    self.waiting.push(Waiting {
                        time: now,
                        group: g as u32,
                        batch: at,
                        row: i as u32,
                    });
                }
                self.held.push(Held { batch, args });
                self.groups = groups;
                self.take_until(i64::MAX, out)
            }
            OverTime::Event { column } => {
                let times = timestamp_millis(batch.column(column))?;
                let mut late = 0;
                for (i, &g) in groups.iter().enumerate() {
                    let time = times.is_valid(i).then(|| times.value(i));
                    let last = self.partitions[g].last_time;
                    match time {
                        Some(time) if last.is_none_or(|l| time > l) => {
                            self.state.touch(g);
                            self.earliest = self.earliest.min(time);
                            self.waiting.push(Waiting {
                                time,
                                group: g as u32,
                                batch: at,
                                row: i as u32,
                            })
                        }
                        _ => late += 1,
                    }
                }
                count_late(ctx, &mut self.late_rows, late);
                if late < batch.num_rows() as u64 {
                    self.held.push(Held { batch, args });
                }
                self.groups = groups;
                Ok(())
            }
        }
    }

    fn on_watermark(
        &mut self,
        wm: Watermark,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            self.take_until(t, out)?;
        }
        out.emit(Message::Watermark(wm))
    }

    fn on_end(&mut self, ctx: &mut OperatorContext, out: &mut dyn Output) -> Result<()> {
        self.take_until(i64::MAX, out)?;
        note_late_rows(ctx, self.name(), self.late_rows);
        Ok(())
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// The partitions changed since the last barrier (their frames and the rows waiting in
    /// them for the watermark) go to the table.
    fn snapshot_state(
        &mut self,
        checkpoint_id: CheckpointId,
        ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        let changed = self.state.take_changed();
        let values = self.encode(&changed)?;
        self.state.checkpoint(
            &self.keys,
            &changed,
            &values,
            Vec::new(),
            checkpoint_id,
            ctx,
        )
    }

    /// The partitions of this subtask's key groups; their waiting rows are held again, in one
    /// batch.
    fn restore_state(&mut self, restored: RestoredState, ctx: &mut OperatorContext) -> Result<()> {
        let restored = self.state.restore(&mut self.keys, &restored.tables, ctx)?;
        if restored.values.is_empty() {
            return Ok(());
        }
        let (calls, frame) = (&self.f.calls, self.frame);
        let n = self.keys.len();
        self.partitions
            .resize_with(n, || Partition::new(calls, frame));
        let converter = whole_row_converter(&self.f.input)?;
        let parser = converter.parser();
        let mut waiting_rows = Vec::new();
        for (&g, value) in restored.groups.iter().zip(&restored.values) {
            let mut r = ValueReader::new(value);
            let partition = decode_partition(&mut r, &self.f.calls, self.frame)?;
            self.frame_rows += partition.rows.len() as u64;
            self.partitions[g] = partition;
            for _ in 0..r.u32()? {
                let time = r.i64()?;
                waiting_rows.push(parser.parse(r.sized()?));
                self.waiting.push(Waiting {
                    time,
                    group: g as u32,
                    batch: 0,
                    row: (waiting_rows.len() - 1) as u32,
                });
                self.earliest = self.earliest.min(time);
            }
        }
        if !waiting_rows.is_empty() {
            let columns = converter.convert_rows(waiting_rows)?;
            let columns = crate::ops::keyed_table::cast_back(
                columns,
                &self
                    .f
                    .input
                    .fields()
                    .iter()
                    .map(|f| f.data_type().clone())
                    .collect::<Vec<_>>(),
            )?;
            let batch = RecordBatch::try_new(self.f.input.clone(), columns)?;
            let args = argument_columns(&self.f.calls, &batch)?;
            self.held = vec![Held { batch, args }];
        }
        if let Some(ttl) = &mut self.ttl {
            ttl.restored(n, &restored.groups);
        }
        Ok(())
    }

    fn state_size(&self) -> Option<StateSize> {
        let held: usize = self
            .held
            .iter()
            .map(|h| {
                let args = h.args.iter().filter_map(ArgColumn::array);
                h.batch.get_array_memory_size()
                    + args.map(|a| a.get_array_memory_size()).sum::<usize>()
            })
            .sum();
        let per_row = 16 + 16 * self.f.calls.len();
        Some(StateSize {
            entries: self.waiting.len() as u64 + self.frame_rows,
            bytes: (held
                + self.waiting.len() * size_of::<Waiting>()
                + self.frame_rows as usize * per_row
                + self.partitions.len() * (64 + 48 * self.f.calls.len())
                + self.keys.memory_size()) as u64,
        })
    }
}

impl TimeOverAggregate {
    /// The table values of partitions `groups`: each one's frame ([`encode_partition`]),
    /// then the rows waiting in it, each its time and its row bytes.
    fn encode(&self, groups: &[usize]) -> Result<Vec<GroupValue>> {
        let mut values: Vec<Vec<u8>> = groups
            .iter()
            .map(|&g| encode_partition(&self.partitions[g]))
            .collect();
        let at: std::collections::HashMap<u32, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, &g)| (g as u32, i))
            .collect();
        let mut waiting: Vec<Vec<&Waiting>> = vec![Vec::new(); groups.len()];
        for w in &self.waiting {
            if let Some(&i) = at.get(&w.group) {
                waiting[i].push(w);
            }
        }
        let held_rows = if waiting.iter().any(|w| !w.is_empty()) {
            let converter = whole_row_converter(&self.f.input)?;
            self.held
                .iter()
                .map(|h| Ok(converter.convert_columns(h.batch.columns())?))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        for (value, rows) in values.iter_mut().zip(&waiting) {
            value.extend_from_slice(&(rows.len() as u32).to_le_bytes());
            for w in rows {
                value.extend_from_slice(&w.time.to_le_bytes());
                put_record(
                    value,
                    held_rows[w.batch as usize].row(w.row as usize).data(),
                );
            }
        }
        Ok(values.into_iter().map(Some).collect())
    }
}

/// A partition's frame: per call its count, sum and MIN/MAX candidates; the rows in a bounded
/// frame and their arguments; the next row id and the last time taken.
fn encode_partition(p: &Partition) -> Vec<u8> {
    let mut buf = Vec::new();
    for agg in &p.aggs {
        buf.extend_from_slice(&agg.count.to_le_bytes());
        Num::put(agg.sum, &mut buf);
        buf.extend_from_slice(&(agg.best.len() as u32).to_le_bytes());
        for &(id, v) in &agg.best {
            buf.extend_from_slice(&id.to_le_bytes());
            Num::put(Some(v), &mut buf);
        }
    }
    buf.extend_from_slice(&(p.rows.len() as u32).to_le_bytes());
    for &(time, id) in &p.rows {
        buf.extend_from_slice(&time.to_le_bytes());
        buf.extend_from_slice(&id.to_le_bytes());
    }
    buf.extend_from_slice(&(p.args.len() as u32).to_le_bytes());
    for &a in &p.args {
        Num::put(a, &mut buf);
    }
    buf.extend_from_slice(&p.next_id.to_le_bytes());
    match p.last_time {
        None => buf.push(0),
        Some(t) => {
            buf.push(1);
            buf.extend_from_slice(&t.to_le_bytes());
        }
    }
    buf
}

/// The frame [`encode_partition`] wrote.
fn decode_partition(
    r: &mut ValueReader,
    calls: &[OverCall],
    frame: OverFrame,
) -> Result<Partition> {
    let mut p = Partition::new(calls, frame);
    for agg in &mut p.aggs {
        agg.count = r.i64()?;
        agg.sum = Num::get(r)?;
        for _ in 0..r.u32()? {
            let id = r.u64()?;
            let v = Num::get(r)?
                .ok_or_else(|| Error::user("a checkpointed OVER extreme is missing its value"))?;
            agg.best.push_back((id, v));
        }
    }
    for _ in 0..r.u32()? {
        let time = r.i64()?;
        p.rows.push_back((time, r.u64()?));
    }
    for _ in 0..r.u32()? {
        p.args.push_back(Num::get(r)?);
    }
    p.next_id = r.u64()?;
    p.last_time = match r.u8()? {
        0 => None,
        _ => Some(r.i64()?),
    };
    Ok(p)
}

#[cfg(test)]
#[path = "time_ordered_tests.rs"]
mod tests;
