//! OVER aggregation by any ORDER BY, `ROWS BETWEEN n (or UNBOUNDED) PRECEDING AND CURRENT ROW`,
//! over an input that may retract rows: every input row is output with the aggregate of its
//! frame, and when a row enters or leaves a partition the rows after it whose frames change
//! are retracted and sent again. Flink runs OVER windows over insert-only input ordered by a
//! time attribute only (FLINK-19059, which keeps it from running Nexmark q6; those run on
//! [`super::time_ordered`]); here the result is a retract changelog.
//!
//! Each partition keeps its rows sorted by the ORDER BY columns' memcomparable bytes, ties in
//! arrival order, with the rows' own bytes (arrow-row) and the aggregates' argument values. A
//! batch is folded per partition: the first position the batch changes is found on the old
//! rows, the outputs from there on are computed before and after the changes, and only their
//! difference is sent (-D, then +I). Rows arriving in ORDER BY order change nothing before
//! them, so they cost one +I each.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Int8Array, RecordBatch};
use arrow::compute::{cast, SortOptions};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use datafusion_physical_expr::PhysicalExpr;
use gemini_state::StateSize;

use crate::changelog::{accumulates, split_row_kinds, with_row_kinds};
use crate::checkpoint::{CheckpointId, ValueReader};
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

use super::{arguments, result_column, value_of, Num, OverCall, OverFrame, OverFunction};

#[derive(Debug, Clone)]
pub struct OverAggregateFactory {
    /// PARTITION BY expressions.
    pub partition: Vec<Arc<dyn PhysicalExpr>>,
    /// Names and types of the partition keys.
    pub key_schema: SchemaRef,
    /// ORDER BY expressions and directions.
    pub order: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
    pub calls: Vec<OverCall>,
    /// The input's columns, without an op column.
    pub input: SchemaRef,
    /// The input's columns, then one per call (the op column follows).
    pub output: SchemaRef,
    /// `table.exec.state.ttl`: a partition not written for this long starts again from
    /// nothing (its rows sent before are not retracted, as in Flink).
    pub state_ttl_ms: Option<i64>,
}

impl OperatorFactory for OverAggregateFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        if let Some(c) = self
            .calls
            .iter()
            .find(|c| matches!(c.frame, OverFrame::Range(_)))
        {
            return Err(Error::internal(format!(
                "a retracting OVER aggregate framed {}",
                c.frame
            )));
        }
        Ok(Box::new(OverAggregate {
            keys: GroupKeys::new(self.key_schema.clone())?,
            state: GroupStateTable::new("partitions", &self.key_schema)?,
            order: SortKeys::new(&self.order, &self.input)?,
            rows: whole_row_converter(&self.input)?,
            f: self.clone(),
            partitions: Vec::new(),
            seq: 0,
            groups: Vec::new(),
            bytes: 0,
            entries: 0,
            ttl: KeyTtl::new(self.state_ttl_ms),
        }))
    }

    fn describe(&self) -> String {
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|c| format!("{:?} over {}", c.function, c.frame))
            .collect();
        format!(
            "over aggregate: {}{}",
            calls.join(", "),
            describe_ttl(self.state_ttl_ms)
        )
    }
}

/// One row of a partition.
struct Entry {
    order: Box<[u8]>,
    seq: u64,
    row: Box<[u8]>,
    args: Vec<Option<Num>>,
}

/// An output row: its input row's bytes and the aggregates of its frame.
type Result_ = (Box<[u8]>, Vec<Option<Num>>);

/// One aggregate folded over a frame's argument values. Count, sum, minimum and maximum are
/// kept together, so one fold serves every function; `value` picks one.
#[derive(Default)]
struct Accumulator {
    count: i64,
    sum: Option<Num>,
    min: Option<Num>,
    max: Option<Num>,
}

impl Accumulator {
    fn add(&mut self, v: Option<Num>) {
        let Some(v) = v else { return };
        self.count += 1;
        self.sum = Some(Num::add(self.sum, v));
        if self.min.is_none_or(|m| v.as_f64() < m.as_f64()) {
            self.min = Some(v);
        }
        if self.max.is_none_or(|m| v.as_f64() > m.as_f64()) {
            self.max = Some(v);
        }
    }

    fn value(&self, function: OverFunction) -> Option<Num> {
        value_of(function, self.count, self.sum, self.min, self.max)
    }
}

struct OverAggregate {
    f: OverAggregateFactory,
    keys: GroupKeys,
    /// The checkpointed copy of the partitions' rows.
    state: GroupStateTable,
    order: SortKeys,
    rows: RowConverter,
    /// Per partition, its rows in ORDER BY order.
    partitions: Vec<Vec<Entry>>,
    /// Arrival number of the next row, the tie-breaker.
    seq: u64,
    groups: Vec<usize>,
    bytes: u64,
    entries: u64,
    ttl: Option<KeyTtl>,
}

/// The values of `calls` for the frames of rows `from..` of `entries`: a bounded frame is
/// folded anew at each row (it holds at most n + 1 rows), an unbounded one runs once from the
/// partition's first row.
fn frame_values(entries: &[Entry], calls: &[OverCall], from: usize) -> Vec<Vec<Option<Num>>> {
    let mut out = vec![Vec::with_capacity(calls.len()); entries.len() - from];
    for (c, call) in calls.iter().enumerate() {
        match call.frame {
            OverFrame::Rows(None) | OverFrame::Range(_) => {
                let mut running = Accumulator::default();
                for (i, e) in entries.iter().enumerate() {
                    running.add(e.args[c]);
                    if i >= from {
                        out[i - from].push(running.value(call.function));
                    }
                }
            }
            OverFrame::Rows(Some(n)) => {
                for i in from..entries.len() {
                    let mut frame = Accumulator::default();
                    for e in &entries[i.saturating_sub(n)..=i] {
                        frame.add(e.args[c]);
                    }
                    out[i - from].push(frame.value(call.function));
                }
            }
        }
    }
    out
}

impl Operator for OverAggregate {
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
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        self.state.track(ctx);
        let (data, ops) = split_row_kinds(batch)?;
        let accumulate = accumulates(ops.as_ref(), n);
        let mut groups = std::mem::take(&mut self.groups);
        self.keys
            .intern_batch(&self.f.partition, &data, &mut groups)?;
        if self.partitions.len() < self.keys.len() {
            self.partitions.resize_with(self.keys.len(), Vec::new);
        }
        let order = self.order.convert(&data)?;
        let rows = self.rows.convert_columns(data.columns())?;
        let args = arguments(&self.f.calls, &data)?;

        // The batch's rows per partition, in arrival order.
        let mut touched: Vec<usize> = Vec::new();
        let mut per_partition: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, &g) in groups.iter().enumerate() {
            per_partition
                .entry(g)
                .or_insert_with(|| {
                    touched.push(g);
                    Vec::new()
                })
                .push(i);
        }
        self.groups = groups;
        if let Some(ttl) = &mut self.ttl {
            let mut expired = ttl.start_batch(self.partitions.len());
            for &g in &touched {
                if ttl.expired(g) {
                    expired.push(g);
                }
                ttl.written(g);
            }
            for g in expired {
                self.state.touch(g);
                for e in std::mem::take(&mut self.partitions[g]) {
                    self.bytes -= (e.order.len() + e.row.len()) as u64;
                    self.entries -= 1;
                }
            }
        }

        let (mut gone, mut came): (Vec<Result_>, Vec<Result_>) = (Vec::new(), Vec::new());
        for g in touched {
            self.state.touch(g);
            let list = &per_partition[&g];
            let entries = &mut self.partitions[g];
            // Where the first change lands among the old rows: nothing before it changes.
            let first = list
                .iter()
                .map(|&i| {
                    let o = order.key(i);
                    if accumulate[i] {
                        entries.partition_point(|e| &*e.order <= o)
                    } else {
                        entries.partition_point(|e| &*e.order < o)
                    }
                })
                .min()
                .unwrap_or(entries.len());
            let before = frame_values(entries, &self.f.calls, first);
            let old: Vec<Box<[u8]>> = entries[first..].iter().map(|e| e.row.clone()).collect();
            for &i in list {
                let o = order.key(i);
                let row = rows.row(i).data();
                if accumulate[i] {
                    let at = entries.partition_point(|e| &*e.order <= o);
                    self.bytes += (o.len() + row.len()) as u64;
                    self.entries += 1;
                    entries.insert(
                        at,
                        Entry {
                            order: o.into(),
                            seq: self.seq,
                            row: row.into(),
                            args: args.iter().map(|a| a[i]).collect(),
                        },
                    );
                    self.seq += 1;
                } else {
                    // Retract the oldest equal row (a retraction of a row never sent is
                    // ignored, as Flink's operators do).
                    let lo = entries.partition_point(|e| &*e.order < o);
                    let hi = entries.partition_point(|e| &*e.order <= o);
                    let found = (lo..hi)
                        .filter(|&k| &*entries[k].row == row)
                        .min_by_key(|&k| entries[k].seq);
                    if let Some(k) = found {
                        let e = entries.remove(k);
                        self.bytes -= (e.order.len() + e.row.len()) as u64;
                        self.entries -= 1;
                    }
                }
            }
            let after = frame_values(entries, &self.f.calls, first);
            // The difference, counted per (row, values).
            let bits = |values: &[Vec<Option<Num>>]| -> Vec<Vec<u128>> {
                values
                    .iter()
                    .map(|v| v.iter().map(|&x| Num::bits(x)).collect())
                    .collect()
            };
            let (before_bits, after_bits) = (bits(&before), bits(&after));
            let mut counts: HashMap<(&[u8], &[u128]), i64> = HashMap::new();
            for (row, b) in old.iter().zip(&before_bits) {
                *counts.entry((row, b)).or_default() -= 1;
            }
            for (e, b) in entries[first..].iter().zip(&after_bits) {
                *counts.entry((&e.row, b)).or_default() += 1;
            }
            for ((row, values), b) in old.iter().zip(before).zip(&before_bits) {
                if let Some(c) = counts.get_mut(&(&**row, &**b)).filter(|c| **c < 0) {
                    *c += 1;
                    gone.push((row.clone(), values));
                }
            }
            for ((e, values), b) in entries[first..].iter().zip(after).zip(&after_bits) {
                if let Some(c) = counts.get_mut(&(&*e.row, &**b)).filter(|c| **c > 0) {
                    *c -= 1;
                    came.push((e.row.clone(), values));
                }
            }
        }
        if gone.is_empty() && came.is_empty() {
            return Ok(());
        }
        let kinds: Vec<i8> = std::iter::repeat_n(RowKind::Delete as i8, gone.len())
            .chain(std::iter::repeat_n(RowKind::Insert as i8, came.len()))
            .collect();
        let results: Vec<Result_> = gone.into_iter().chain(came).collect();
        let parser = self.rows.parser();
        let mut columns = self
            .rows
            .convert_rows(results.iter().map(|(r, _)| parser.parse(r)))?;
        for (column, field) in columns.iter_mut().zip(self.f.input.fields()) {
            if column.data_type() != field.data_type() {
                *column = cast(column, field.data_type())?;
            }
        }
        for c in 0..self.f.calls.len() {
            let values: Vec<Option<Num>> = results.iter().map(|(_, v)| v[c]).collect();
            columns.push(result_column(
                &self.f.output,
                self.f.input.fields().len(),
                c,
                &values,
            )?);
        }
        let batch = RecordBatch::try_new(self.f.output.clone(), columns)?;
        out.batch(with_row_kinds(batch, Arc::new(Int8Array::from(kinds)))?)
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// Results are sent per batch: the partitions changed since the last barrier are all
    /// there is to write.
    fn snapshot_state(
        &mut self,
        checkpoint_id: CheckpointId,
        ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        let changed = self.state.take_changed();
        let values: Vec<GroupValue> = changed.iter().map(|&g| self.encode(g)).collect();
        self.state.checkpoint(
            &self.keys,
            &changed,
            &values,
            Vec::new(),
            checkpoint_id,
            ctx,
        )
    }

    /// The partitions of this subtask's key groups, read back from the old subtasks' tables.
    fn restore_state(&mut self, restored: RestoredState, ctx: &mut OperatorContext) -> Result<()> {
        let restored = self.state.restore(&mut self.keys, &restored.tables, ctx)?;
        if restored.values.is_empty() {
            return Ok(());
        }
        let groups = restored.groups;
        let partitions = self.keys.len();
        self.partitions.resize_with(partitions, Vec::new);
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
            entries: self.entries,
            bytes: self.bytes + self.keys.memory_size() as u64,
        })
    }
}

impl OverAggregate {
    /// Partition `g`'s rows in order for the state table: their number, then per row its
    /// order bytes, row bytes, arrival number and argument values; `None` when it holds none.
    fn encode(&self, g: usize) -> GroupValue {
        let entries = &self.partitions[g];
        if entries.is_empty() {
            return None;
        }
        let mut buf = (entries.len() as u32).to_le_bytes().to_vec();
        for e in entries {
            put_record(&mut buf, &e.order);
            put_record(&mut buf, &e.row);
            buf.extend_from_slice(&e.seq.to_le_bytes());
            for &a in &e.args {
                Num::put(a, &mut buf);
            }
        }
        Some(buf)
    }

    /// Takes back partition `g`'s rows as [`OverAggregate::encode`] wrote them; new rows
    /// arrive after every restored one.
    fn decode(&mut self, g: usize, value: &[u8]) -> Result<()> {
        let mut r = ValueReader::new(value);
        for _ in 0..r.u32()? {
            let order: Box<[u8]> = r.sized()?.into();
            let row: Box<[u8]> = r.sized()?.into();
            let seq = r.u64()?;
            let args = (0..self.f.calls.len())
                .map(|_| Num::get(&mut r))
                .collect::<Result<Vec<_>>>()?;
            self.seq = self.seq.max(seq + 1);
            self.bytes += (order.len() + row.len()) as u64;
            self.entries += 1;
            self.partitions[g].push(Entry {
                order,
                seq,
                row,
                args,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "retracting_tests.rs"]
mod tests;
