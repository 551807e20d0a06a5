//! Unbounded group aggregation (`GROUP BY` without a window), Flink's `GroupAggregate`.
//!
//! Its result is a changelog: the first row of a group inserts the group's result (+I); later
//! rows replace it, retracting the old result before sending the new (-U, +U); a group whose
//! rows are all retracted is deleted (-D). An input batch is folded as a whole before anything
//! is sent, so a group touched by many rows of a batch changes once, and a group whose result
//! did not change sends nothing. With Flink's mini-batch settings the fold spans batches: up to
//! `size` rows or `latency` of wall time (a processing-time timer), so a hot group sends one
//! change per mini-batch.
//!
//! The input may itself be updating (an aggregate over an aggregate): +I and +U rows add to
//! their group, -U and -D rows take away, and a retraction reaching a group with no rows is
//! ignored, as in Flink.

mod accumulators;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Int8Array, RecordBatch, UInt32Array,
};
use arrow::compute::kernels::boolean::or;
use arrow::compute::kernels::cmp::distinct;
use arrow::compute::{cast, concat, take};
use arrow::datatypes::{DataType, Int8Type, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;
use gemini_state::StateSize;

use accumulators::{accumulator, GroupAccumulator};
pub use accumulators::{canonical_arg, AggregateKind};

use crate::changelog::{is_accumulate, split_row_kinds, with_row_kinds};
use crate::checkpoint::{decode_saved, encode_saved, CheckpointId, ValueReader};
use crate::operator::{
    Operator, OperatorContext, OperatorFactory, OperatorSnapshot, Output, RestoredState,
};
use crate::ops::evaluate;
use crate::ops::group_keys::GroupKeys;
use crate::ops::group_state::{GroupStateTable, GroupValue};
use crate::ops::key_ttl::{describe_ttl, KeyTtl};
use crate::types::{Barrier, EventTime, Message, RowKind, Watermark};
use crate::{Error, Result};

/// One aggregate call.
#[derive(Debug, Clone)]
pub struct GroupAggregateCall {
    pub kind: AggregateKind,
    /// The argument, in the type [`canonical_arg`] gives (none for `COUNT(*)`).
    pub arg: Option<Arc<dyn PhysicalExpr>>,
    /// `FILTER (WHERE …)`.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// The result type.
    pub output: DataType,
}

#[derive(Debug, Clone)]
pub struct GroupAggregateFactory {
    /// The group keys over input rows.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Names and types of the keys.
    pub key_schema: SchemaRef,
    pub calls: Vec<GroupAggregateCall>,
    /// The results' columns: keys, then one per call (the op column follows on the edge).
    pub output: SchemaRef,
    /// The input's columns (without its op column).
    pub input: SchemaRef,
    /// The input carries -U and -D rows.
    pub retracting: bool,
    /// `table.exec.state.ttl`: a group not updated for this long starts again from nothing.
    pub state_ttl_ms: Option<i64>,
    /// `table.exec.mini-batch.*`: fold input for up to this many rows or this long before
    /// sending results; `None` sends them after every input batch.
    pub mini_batch: Option<MiniBatch>,
}

/// Flink's mini-batch: results are sent once `size` input rows have been folded or `latency`
/// has passed since the first of them, whichever comes first (and at barriers and the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniBatch {
    pub size: usize,
    pub latency: Duration,
}

/// Calls sharing one accumulator: COUNT(DISTINCT x) calls with the same x (and their own
/// filters); any other call alone.
struct Unit {
    acc: Box<dyn GroupAccumulator>,
    arg: Option<Arc<dyn PhysicalExpr>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
}

impl OperatorFactory for GroupAggregateFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        // The calls of each unit: COUNT(DISTINCT x) joins the unit of an earlier one on x.
        let distinct_arg = |i: usize| {
            let c = &self.calls[i];
            (c.kind == AggregateKind::CountDistinct).then(|| c.arg.as_ref().map(|a| a.to_string()))
        };
        let mut members: Vec<Vec<usize>> = Vec::new();
        let mut outputs = Vec::new();
        for i in 0..self.calls.len() {
            let shared = distinct_arg(i).and_then(|arg| {
                members
                    .iter()
                    .position(|m| distinct_arg(m[0]).as_ref() == Some(&arg))
            });
            match shared {
                Some(u) => {
                    outputs.push((u, members[u].len()));
                    members[u].push(i);
                }
                None => {
                    outputs.push((members.len(), 0));
                    members.push(vec![i]);
                }
            }
        }
        let units = members
            .iter()
            .map(|calls| {
                let call = &self.calls[calls[0]];
                let arg_type = match &call.arg {
                    Some(a) => Some(a.data_type(&self.input)?),
                    None => None,
                };
                Ok(Unit {
                    acc: accumulator(
                        call.kind,
                        arg_type.as_ref(),
                        calls.len(),
                        self.retracting,
                        &call.output,
                    )?,
                    arg: call.arg.clone(),
                    filters: calls
                        .iter()
                        .map(|&i| self.calls[i].filter.clone())
                        .collect(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(GroupAggregate {
            f: self.clone(),
            keys: GroupKeys::new(self.key_schema.clone())?,
            state: GroupStateTable::new("groups", &self.key_schema)?,
            units,
            outputs,
            row_counts: Vec::new(),
            emitted: Vec::new(),
            stamp: Vec::new(),
            epoch: 0,
            groups: Vec::new(),
            ttl: KeyTtl::new(self.state_ttl_ms),
            pending: Vec::new(),
            chunks: Vec::new(),
            pending_rows: 0,
            deadline: None,
        }))
    }

    fn describe(&self) -> String {
        let keys: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|c| {
                let arg = c.arg.as_ref().map_or("*".into(), |a| a.to_string());
                let filter = c
                    .filter
                    .as_ref()
                    .map_or(String::new(), |f| format!(" filter {f}"));
                format!("{:?}({arg}){filter}", c.kind)
            })
            .collect();
        format!(
            "group by [{}] aggregate [{}]{}{}{}",
            keys.join(", "),
            calls.join(", "),
            if self.retracting {
                " (retracting input)"
            } else {
                ""
            },
            describe_ttl(self.state_ttl_ms),
            self.mini_batch.map_or(String::new(), |m| format!(
                ", mini-batch {} rows or {} ms",
                m.size,
                m.latency.as_millis()
            ))
        )
    }
}

struct GroupAggregate {
    f: GroupAggregateFactory,
    keys: GroupKeys,
    /// The checkpointed copy of the groups' state.
    state: GroupStateTable,
    units: Vec<Unit>,
    /// Per call: its unit and the unit's output.
    outputs: Vec<(usize, usize)>,
    /// Rows each group holds (added minus retracted).
    row_counts: Vec<i64>,
    /// Whether the group's result has been sent (and not deleted since).
    emitted: Vec<bool>,
    /// The mini-batch that last touched each group, to list its groups once.
    stamp: Vec<u32>,
    epoch: u32,
    groups: Vec<usize>,
    ttl: Option<KeyTtl>,
    /// The groups touched since results were last sent, in the order they were first touched.
    pending: Vec<usize>,
    /// Per input batch that brought pending groups: their keys and earlier results.
    chunks: Vec<Chunk>,
    /// Input rows folded since results were last sent.
    pending_rows: usize,
    /// When the current mini-batch's results are due.
    deadline: Option<Instant>,
}

/// The groups one input batch brought into a mini-batch (the next `groups` of `pending`).
struct Chunk {
    groups: usize,
    /// The batch's key columns, and the row of each group's first appearance.
    keys: Vec<ArrayRef>,
    first_rows: Vec<u32>,
    /// The groups' results before the batch, if any of them had sent one.
    old: Option<Vec<ArrayRef>>,
}

impl GroupAggregate {
    /// Forgets group `g`'s rows and results (emptied, or past its TTL): its next row starts it
    /// anew.
    fn clear(&mut self, g: usize) {
        for unit in &mut self.units {
            unit.acc.reset(g);
        }
        self.row_counts[g] = 0;
        self.emitted[g] = false;
    }

    /// Every call's values for `groups`.
    fn results(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        self.outputs
            .iter()
            .map(|&(u, o)| self.units[u].acc.evaluate(o, groups))
            .collect()
    }

    /// The signs of a call: `signs` where its filter holds, 0 elsewhere.
    fn filtered(
        signs: &[i8],
        filter: &Arc<dyn PhysicalExpr>,
        batch: &RecordBatch,
    ) -> Result<Vec<i8>> {
        let mask = evaluate(filter, batch)?;
        let mask: &BooleanArray = mask.as_boolean();
        Ok(signs
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                if mask.is_valid(i) && mask.value(i) {
                    s
                } else {
                    0
                }
            })
            .collect())
    }
}

impl GroupAggregate {
    /// Folds `batch` into the groups' accumulators; the groups it touches first in this
    /// mini-batch join the pending ones, with their results before it.
    fn absorb(&mut self, batch: RecordBatch) -> Result<()> {
        let (batch, ops) = split_row_kinds(batch)?;
        let rows = batch.num_rows();
        let mut groups = std::mem::take(&mut self.groups);
        let key_columns = self.keys.intern_batch(&self.f.keys, &batch, &mut groups)?;
        let n = self.keys.len();
        self.row_counts.resize(n, 0);
        self.emitted.resize(n, false);
        self.stamp.resize(n, 0);
        if self.pending.is_empty() {
            self.epoch = self.epoch.wrapping_add(1).max(1);
        }

        // A sweep's expired groups, except those written earlier in this mini-batch: their
        // results wait to be sent.
        let epoch = self.epoch;
        let mut expired = match &mut self.ttl {
            None => Vec::new(),
            Some(ttl) => {
                let mut expired = ttl.start_batch(n);
                expired.retain(|&g| {
                    let pending = self.stamp[g] == epoch;
                    if pending {
                        ttl.written(g);
                    }
                    !pending
                });
                expired
            }
        };
        // The groups this batch brings into the mini-batch, once each, with the first row of
        // each (its keys).
        let (mut touched, mut first_rows) = (Vec::new(), Vec::new());
        for (i, &g) in groups.iter().enumerate() {
            if self.stamp[g] != epoch {
                self.stamp[g] = epoch;
                touched.push(g);
                first_rows.push(i as u32);
            }
        }
        if let Some(ttl) = &mut self.ttl {
            for &g in &touched {
                if ttl.expired(g) {
                    expired.push(g);
                }
                ttl.written(g);
            }
        }
        for &g in expired.iter().chain(&touched) {
            self.state.touch(g);
        }
        for g in expired {
            self.clear(g);
        }
        let old = if touched.iter().any(|&g| self.emitted[g]) {
            Some(self.results(&touched)?)
        } else {
            None
        };

        // +1 for a row that adds, −1 for one that retracts, 0 for a retraction of nothing.
        let mut signs = vec![1i8; rows];
        match &ops {
            None => {
                for &g in &groups {
                    self.row_counts[g] += 1;
                }
            }
            Some(ops) => {
                let ops = ops.as_primitive::<Int8Type>();
                for (i, &g) in groups.iter().enumerate() {
                    if is_accumulate(ops.value(i)) {
                        self.row_counts[g] += 1;
                    } else if self.row_counts[g] > 0 {
                        self.row_counts[g] -= 1;
                        signs[i] = -1;
                    } else {
                        signs[i] = 0;
                    }
                }
            }
        }
        for unit in &mut self.units {
            let arg = match &unit.arg {
                Some(a) => Some(evaluate(a, &batch)?),
                None => None,
            };
            // A call without a FILTER reads the batch's signs as they are.
            let filtered: Vec<Option<Vec<i8>>> = unit
                .filters
                .iter()
                .map(|f| {
                    f.as_ref()
                        .map(|f| Self::filtered(&signs, f, &batch))
                        .transpose()
                })
                .collect::<Result<_>>()?;
            let refs: Vec<&[i8]> = filtered
                .iter()
                .map(|f| f.as_deref().unwrap_or(&signs))
                .collect();
            unit.acc.update(arg.as_ref(), &groups, &refs)?;
        }
        self.groups = groups;
        self.pending_rows += rows;
        if !touched.is_empty() {
            self.pending.extend_from_slice(&touched);
            self.chunks.push(Chunk {
                groups: touched.len(),
                keys: key_columns,
                first_rows,
                old,
            });
        }
        Ok(())
    }

    /// Sends the changes of the pending groups since their results were last sent: +I for a
    /// new group, -U/+U for a changed one, -D for an emptied one; nothing for the unchanged.
    fn flush(&mut self, out: &mut dyn Output) -> Result<()> {
        self.pending_rows = 0;
        self.deadline = None;
        if self.pending.is_empty() {
            return Ok(());
        }
        let touched = std::mem::take(&mut self.pending);
        let Pending {
            keys: key_columns,
            key_rows: first_rows,
            old,
        } = merge_chunks(std::mem::take(&mut self.chunks))?;
        let new = self.results(&touched)?;

        // A group's old result differs from its new one in any call.
        let changed: Option<BooleanArray> = match &old {
            None => None,
            Some(old) => {
                let mut acc: Option<BooleanArray> = None;
                for (o, n) in old.iter().zip(&new) {
                    let d = distinct(o, n)?;
                    acc = Some(match acc {
                        None => d,
                        Some(a) => or(&a, &d)?,
                    });
                }
                acc
            }
        };
        // Values are read from `old ++ new` when there are old ones, else from `new`.
        let width = if old.is_some() {
            touched.len() as u32
        } else {
            0
        };
        let (mut key_rows, mut value_rows, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
        for (t, &g) in touched.iter().enumerate() {
            let alive = self.row_counts[g] > 0;
            let row = first_rows[t];
            let t = t as u32;
            match (self.emitted[g], alive) {
                (true, true) => {
                    if changed.as_ref().is_none_or(|c| c.value(t as usize)) {
                        key_rows.extend([row, row]);
                        value_rows.extend([t, width + t]);
                        kinds.extend([RowKind::UpdateBefore as i8, RowKind::UpdateAfter as i8]);
                    }
                }
                (true, false) => {
                    key_rows.push(row);
                    value_rows.push(t);
                    kinds.push(RowKind::Delete as i8);
                }
                (false, true) => {
                    key_rows.push(row);
                    value_rows.push(width + t);
                    kinds.push(RowKind::Insert as i8);
                }
                (false, false) => {}
            }
            if alive {
                self.emitted[g] = true;
            } else {
                self.clear(g);
            }
        }
        if kinds.is_empty() {
            return Ok(());
        }
        let key_rows = UInt32Array::from(key_rows);
        let value_rows = UInt32Array::from(value_rows);
        let mut columns = Vec::with_capacity(self.f.output.fields().len());
        for k in &key_columns {
            columns.push(take(k, &key_rows, None)?);
        }
        for (i, n) in new.iter().enumerate() {
            let values = match &old {
                Some(o) => concat(&[o[i].as_ref(), n.as_ref()])?,
                None => n.clone(),
            };
            columns.push(take(&values, &value_rows, None)?);
        }
        for (c, field) in columns.iter_mut().zip(self.f.output.fields()) {
            if c.data_type() != field.data_type() {
                *c = cast(c, field.data_type())?;
            }
        }
        let results = RecordBatch::try_new(self.f.output.clone(), columns)?;
        out.batch(with_row_kinds(results, Arc::new(Int8Array::from(kinds)))?)
    }
}

/// What a checkpoint keeps besides the table: the calls, to refuse a restore into other ones.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    calls: Vec<String>,
}

impl GroupAggregateFactory {
    /// Each call's kind and argument type, as a checkpoint names them.
    fn saved_calls(&self) -> Vec<String> {
        self.calls
            .iter()
            .map(|c| {
                let arg = c
                    .arg
                    .as_ref()
                    .and_then(|a| a.data_type(&self.input).ok())
                    .map_or("*".to_string(), |t| t.to_string());
                format!("{:?}({arg})", c.kind)
            })
            .collect()
    }
}

/// The pending groups' keys and their results before the mini-batch.
struct Pending {
    /// Key columns, and per group the row of them holding its keys.
    keys: Vec<ArrayRef>,
    key_rows: Vec<u32>,
    /// Per call; `None` when no pending group had sent a result (chunks without such a
    /// group read as nulls, never used).
    old: Option<Vec<ArrayRef>>,
}

/// Merges the chunks that brought the pending groups, in their order.
fn merge_chunks(mut chunks: Vec<Chunk>) -> Result<Pending> {
    if chunks.len() == 1 {
        let one = chunks.pop().expect("one chunk");
        return Ok(Pending {
            keys: one.keys,
            key_rows: one.first_rows,
            old: one.old,
        });
    }
    let rows: Vec<UInt32Array> = chunks
        .iter_mut()
        .map(|c| UInt32Array::from(std::mem::take(&mut c.first_rows)))
        .collect();
    let columns = chunks.first().map_or(0, |c| c.keys.len());
    let mut keys = Vec::with_capacity(columns);
    for k in 0..columns {
        let parts = chunks
            .iter()
            .zip(&rows)
            .map(|(c, rows)| Ok(take(&c.keys[k], rows, None)?))
            .collect::<Result<Vec<_>>>()?;
        let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        keys.push(concat(&parts)?);
    }
    let groups: usize = chunks.iter().map(|c| c.groups).sum();
    let old = match chunks.iter().find_map(|c| c.old.as_ref()) {
        None => None,
        Some(model) => {
            let mut old = Vec::with_capacity(model.len());
            for (i, m) in model.iter().enumerate() {
                let parts: Vec<ArrayRef> = chunks
                    .iter()
                    .map(|c| match &c.old {
                        Some(o) => o[i].clone(),
                        None => new_null_array(m.data_type(), c.groups),
                    })
                    .collect();
                let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                old.push(concat(&parts)?);
            }
            Some(old)
        }
    };
    Ok(Pending {
        keys,
        key_rows: (0..groups as u32).collect(),
        old,
    })
}

impl Operator for GroupAggregate {
    fn name(&self) -> &str {
        "GroupAggregate"
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        self.state.track(ctx);
        self.absorb(batch)?;
        let Some(mini_batch) = self.f.mini_batch else {
            return self.flush(out);
        };
        if self.pending_rows >= mini_batch.size {
            return self.flush(out);
        }
        if self.deadline.is_none() && !self.pending.is_empty() {
            let at = Instant::now() + mini_batch.latency;
            self.deadline = Some(at);
            ctx.register_processing_timer(at);
        }
        Ok(())
    }

    fn on_processing_timer(
        &mut self,
        time: Instant,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        // A timer of a mini-batch already sent for its size is stale.
        if self.deadline.is_some_and(|d| d <= time) {
            self.flush(out)?;
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        wm: Watermark,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        // Results carry no event time, so a watermark need not wait for the mini-batch,
        // except the last one, which says the input is complete.
        if wm == Watermark::EventTime(EventTime::MAX) {
            self.flush(out)?;
        }
        out.emit(Message::Watermark(wm))
    }

    fn on_barrier(
        &mut self,
        _barrier: &Barrier,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        self.flush(out)
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext, out: &mut dyn Output) -> Result<()> {
        self.flush(out)
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// The barrier sent the mini-batch on, so the groups changed since the last barrier are
    /// written to the table (emptied ones deleted) and the table's snapshot is the state.
    fn snapshot_state(
        &mut self,
        checkpoint_id: CheckpointId,
        ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        if !self.pending.is_empty() {
            return Err(Error::internal("a mini-batch outlived its barrier"));
        }
        let changed = self.state.take_changed();
        let alive: Vec<usize> = changed
            .iter()
            .copied()
            .filter(|&g| self.row_counts[g] > 0)
            .collect();
        let mut buffers: Vec<Vec<u8>> = alive
            .iter()
            .map(|&g| {
                let mut buf = self.row_counts[g].to_le_bytes().to_vec();
                buf.push(u8::from(self.emitted[g]));
                buf
            })
            .collect();
        for unit in &self.units {
            unit.acc.save(&alive, &mut buffers);
        }
        let mut buffers = buffers.into_iter();
        let values: Vec<GroupValue> = changed
            .iter()
            .map(|&g| (self.row_counts[g] > 0).then(|| buffers.next()).flatten())
            .collect();
        let state = encode_saved(&Saved {
            calls: self.f.saved_calls(),
        })?;
        self.state
            .checkpoint(&self.keys, &changed, &values, state, checkpoint_id, ctx)
    }

    /// The groups of this subtask's key groups, read back from the old subtasks' tables.
    fn restore_state(&mut self, restored: RestoredState, ctx: &mut OperatorContext) -> Result<()> {
        let saved: Vec<Saved> = decode_saved(&restored.all_states, self.name())?;
        let calls = self.f.saved_calls();
        if let Some(other) = saved.iter().find(|s| s.calls != calls) {
            return Err(Error::user(format!(
                "the checkpoint's GroupAggregate computed [{}], this job's computes [{}]",
                other.calls.join(", "),
                calls.join(", ")
            )));
        }
        let restored = self.state.restore(&mut self.keys, &restored.tables, ctx)?;
        if restored.values.is_empty() {
            return Ok(());
        }
        let groups = restored.groups;
        let n = self.keys.len();
        self.row_counts.resize(n, 0);
        self.emitted.resize(n, false);
        self.stamp.resize(n, 0);
        let mut readers: Vec<ValueReader> = restored
            .values
            .iter()
            .map(|v| ValueReader::new(v))
            .collect();
        for (&g, r) in groups.iter().zip(readers.iter_mut()) {
            self.row_counts[g] = r.i64()?;
            self.emitted[g] = r.u8()? == 1;
        }
        for unit in &mut self.units {
            unit.acc.load(&groups, &mut readers)?;
        }
        if let Some(ttl) = &mut self.ttl {
            ttl.restored(n, &groups);
        }
        Ok(())
    }

    fn state_size(&self) -> Option<StateSize> {
        let groups = self.keys.len();
        let bytes = self.keys.memory_size()
            + groups * 13
            + self
                .units
                .iter()
                .map(|u| u.acc.memory_size())
                .sum::<usize>();
        Some(StateSize {
            entries: groups as u64,
            bytes: bytes as u64,
        })
    }
}

#[cfg(test)]
mod tests;
