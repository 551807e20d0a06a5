//! Event-time temporal join, Flink's `JOIN t FOR SYSTEM_TIME AS OF s.rowtime ON …` where `t`
//! is a versioned table (a primary key and a watermark): each row of the stream meets the
//! version of `t`'s row (by key) in force at the row's time, the latest one whose rowtime is
//! at or before it.
//!
//! A stream row waits until the watermark, the smaller of both inputs', reaches its time, so
//! every version up to it has arrived; it is then joined (INNER: only when a version is in
//! force and the condition holds; LEFT: padded with nulls otherwise) and sent ahead of that
//! watermark, keeping its rowtime as the result's. The table's versions are kept per key in
//! time order; once the watermark passes a newer version, the older ones can serve no later
//! row and are dropped, so state follows the table's size, not its history. A deletion (-D)
//! ends a version; -U rows are skipped, as the +U that follows replaces the version.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array,
};
use arrow::compute::kernels::boolean::not;
use arrow::compute::{concat_batches, filter, filter_record_batch, take};
use arrow::datatypes::{Int64Type, Int8Type, SchemaRef};
use arrow::row::RowConverter;
use datafusion_physical_expr::PhysicalExpr;
use gemini_state::StateSize;

use crate::changelog::{accumulates, split_row_kinds};
use crate::checkpoint::{CheckpointId, ValueReader};
use crate::operator::{
    Operator, OperatorContext, OperatorFactory, OperatorSnapshot, Output, RestoredState,
};
use crate::ops::group_keys::{join_keys, key_names, keys_valid, paired_schema, GroupKeys};
use crate::ops::group_state::{GroupStateTable, GroupValue};
use crate::ops::keyed_table::put_record;
use crate::ops::stream_join_state::{BatchToWrite, SideTable};
use crate::ops::window::nulls_false;
use crate::ops::{evaluate, timestamp_millis, whole_row_converter};
use crate::types::{Message, RowKind, Watermark};
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct TemporalJoinFactory {
    /// The equi-join keys over the stream's rows and over the table's.
    pub left_keys: Vec<Arc<dyn PhysicalExpr>>,
    pub right_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Names and types of the keys (both sides' keys are cast to these).
    pub key_schema: SchemaRef,
    /// The stream's columns and its rowtime column.
    pub left_schema: SchemaRef,
    pub left_time: usize,
    /// The versioned table's columns (without an op column) and its rowtime column.
    pub right_schema: SchemaRef,
    pub right_time: usize,
    /// Conditions besides key equality, over the stream's columns then the table's.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// LEFT JOIN: a row with no version in force is sent padded with nulls.
    pub left_outer: bool,
    /// The stream's columns, then the first columns of the table's (the rowtime may have been
    /// read only for the join).
    pub output: SchemaRef,
}

impl OperatorFactory for TemporalJoinFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(TemporalJoin {
            paired: paired_schema(&self.left_schema, &self.right_schema),
            keys: GroupKeys::new(self.key_schema.clone())?,
            state: GroupStateTable::new("versions", &self.key_schema)?,
            pending_table: SideTable::new("pending", self.left_schema.clone())?,
            pending_saved: Vec::new(),
            next_pending: 0,
            rows: whole_row_converter(&self.right_schema)?,
            f: self.clone(),
            versions: Vec::new(),
            version_bytes: 0,
            version_count: 0,
            pending: Vec::new(),
            dirty: Vec::new(),
            is_dirty: Vec::new(),
            groups: Vec::new(),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "{} temporal join as of {} (event time), keys {:?}{}",
            if self.left_outer { "left" } else { "inner" },
            self.left_schema.field(self.left_time).name(),
            key_names(&self.key_schema),
            if self.filter.is_some() {
                ", with a condition"
            } else {
                ""
            }
        )
    }
}

/// A version of one key's row: from `time` on, `row` (its bytes), or no row after a deletion.
struct Version {
    time: i64,
    row: Option<Box<[u8]>>,
}

struct TemporalJoin {
    f: TemporalJoinFactory,
    paired: SchemaRef,
    /// The table's keys, interned; `versions` is indexed by them.
    keys: GroupKeys,
    /// The checkpointed copy of the versions, per key.
    state: GroupStateTable,
    /// The checkpointed copy of the waiting stream rows, rewritten at every barrier under a
    /// new number; the numbers written last (deleted at the next barrier).
    pending_table: SideTable,
    pending_saved: Vec<u64>,
    next_pending: u64,
    rows: RowConverter,
    /// Per key, its versions in time order (ties in arrival order).
    versions: Vec<Vec<Version>>,
    version_bytes: usize,
    version_count: usize,
    /// Stream rows waiting for the watermark.
    pending: Vec<RecordBatch>,
    /// Keys that may hold versions to drop at the next watermark.
    dirty: Vec<usize>,
    is_dirty: Vec<bool>,
    groups: Vec<usize>,
}

impl TemporalJoin {
    /// Adds a batch of the table's changes as versions.
    fn add_versions(&mut self, batch: RecordBatch) -> Result<()> {
        let (batch, ops) = split_row_kinds(batch)?;
        let n = batch.num_rows();
        let ends: Vec<bool> = match &ops {
            None => vec![false; n],
            Some(ops) => {
                let ops = ops.as_primitive::<Int8Type>();
                (0..n)
                    .map(|i| ops.value(i) == RowKind::Delete as i8)
                    .collect()
            }
        };
        // Rows that change a version: all but -U.
        let counts = accumulates(ops.as_ref(), n);
        let keys = join_keys(&self.f.right_keys, &self.f.key_schema, &batch)?;
        let mut groups = std::mem::take(&mut self.groups);
        self.keys.intern(&keys, n, &mut groups)?;
        self.versions.resize_with(self.keys.len(), Vec::new);
        self.is_dirty.resize(self.keys.len(), false);
        let times = timestamp_millis(batch.column(self.f.right_time))?;
        let rows = self.rows.convert_columns(batch.columns())?;
        for i in 0..n {
            if !counts[i] && !ends[i] {
                continue; // -U: its +U follows
            }
            if times.is_null(i) {
                continue; // a version from no time is never in force
            }
            let g = groups[i];
            let row: Option<Box<[u8]>> = (!ends[i]).then(|| rows.row(i).as_ref().into());
            let time = times.value(i);
            self.version_bytes += row.as_ref().map_or(0, |r| r.len()) + size_of::<Version>();
            self.version_count += 1;
            self.state.touch(g);
            let list = &mut self.versions[g];
            let at = list.partition_point(|v| v.time <= time);
            list.insert(at, Version { time, row });
            if (list.len() > 1 || ends[i]) && !self.is_dirty[g] {
                self.is_dirty[g] = true;
                self.dirty.push(g);
            }
        }
        self.groups = groups;
        Ok(())
    }

    /// Joins and sends the waiting stream rows whose time is at or below `wm`.
    fn emit_until(&mut self, wm: i64, out: &mut dyn Output) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let all = concat_batches(&self.f.left_schema, &self.pending)?;
        self.pending.clear();
        let times = timestamp_millis(all.column(self.f.left_time))?;
        let ready: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_none_or(|t| t <= wm)))
            .collect();
        let waiting = filter_record_batch(&all, &not(&ready)?)?;
        if waiting.num_rows() > 0 {
            self.pending.push(waiting);
        }
        let batch = filter_record_batch(&all, &ready)?;
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let times = filter(&times, &ready)?;
        let times = times.as_primitive::<Int64Type>();
        let keys = join_keys(&self.f.left_keys, &self.f.key_schema, &batch)?;
        let valid = keys_valid(&keys)?;
        let mut groups = std::mem::take(&mut self.groups);
        self.keys.lookup(&keys, n, &mut groups)?;
        // Each row's version in force, if any.
        let (mut matched, mut found): (Vec<u32>, Vec<&[u8]>) = (Vec::new(), Vec::new());
        for (i, &g) in groups.iter().enumerate() {
            if g == GroupKeys::ABSENT
                || times.is_null(i)
                || valid.as_ref().is_some_and(|v| !v.value(i))
            {
                continue;
            }
            let list = &self.versions[g];
            let at = list.partition_point(|v| v.time <= times.value(i));
            if let Some(row) = at.checked_sub(1).and_then(|k| list[k].row.as_deref()) {
                matched.push(i as u32);
                found.push(row);
            }
        }
        let mut joined = vec![false; n];
        let mut parts = Vec::new();
        if !matched.is_empty() {
            let parser = self.rows.parser();
            let right = self
                .rows
                .convert_rows(found.iter().map(|r| parser.parse(r)))?;
            let indices = UInt32Array::from(matched.clone());
            let mut columns = batch
                .columns()
                .iter()
                .map(|c| Ok(take(c, &indices, None)?))
                .collect::<Result<Vec<ArrayRef>>>()?;
            columns.extend(right);
            let mut paired = RecordBatch::try_new(self.paired.clone(), columns)?;
            let mut keep: Vec<bool> = vec![true; matched.len()];
            if let Some(cond) = &self.f.filter {
                let mask = nulls_false(evaluate(cond, &paired)?.as_boolean());
                keep = (0..matched.len()).map(|k| mask.value(k)).collect();
                paired = filter_record_batch(&paired, &mask)?;
            }
            for (k, &i) in matched.iter().enumerate() {
                joined[i as usize] = keep[k];
            }
            parts.push(self.output(paired)?);
        }
        if self.f.left_outer && joined.iter().any(|j| !j) {
            let lonely: BooleanArray = joined.iter().map(|&j| Some(!j)).collect();
            let left = filter_record_batch(&batch, &lonely)?;
            let mut columns = left.columns().to_vec();
            for field in self.f.right_schema.fields() {
                columns.push(new_null_array(field.data_type(), left.num_rows()));
            }
            parts.push(self.output(RecordBatch::try_new(self.paired.clone(), columns)?)?);
        }
        self.groups = groups;
        for part in parts {
            if part.num_rows() > 0 {
                out.batch(part)?;
            }
        }
        Ok(())
    }

    /// The output's columns of a paired batch.
    fn output(&self, paired: RecordBatch) -> Result<RecordBatch> {
        let width = self.f.output.fields().len();
        Ok(RecordBatch::try_new(
            self.f.output.clone(),
            paired.columns()[..width].to_vec(),
        )?)
    }

    /// Drops versions no row after `wm` can meet: all but the one in force at `wm`, and that
    /// one too when it is a deletion.
    fn drop_old_versions(&mut self, wm: i64) {
        let dirty = std::mem::take(&mut self.dirty);
        for g in dirty {
            let list = &mut self.versions[g];
            let at = list.partition_point(|v| v.time <= wm);
            let mut gone = at.saturating_sub(1);
            if at > 0 && list[at - 1].row.is_none() {
                gone = at;
            }
            if gone > 0 {
                self.state.touch(g);
            }
            for v in list.drain(..gone) {
                self.version_bytes -= v.row.as_ref().map_or(0, |r| r.len()) + size_of::<Version>();
                self.version_count -= 1;
            }
            if list.len() > 1 || list.first().is_some_and(|v| v.row.is_none()) {
                self.dirty.push(g);
            } else {
                self.is_dirty[g] = false;
            }
        }
    }
}

impl Operator for TemporalJoin {
    fn name(&self) -> &str {
        "TemporalJoin"
    }

    fn on_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.state.track(ctx);
        match input {
            0 => {
                self.pending.push(batch);
                Ok(())
            }
            1 => self.add_versions(batch),
            _ => Err(Error::internal(format!("temporal join input {input}"))),
        }
    }

    fn on_watermark(
        &mut self,
        wm: Watermark,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            self.emit_until(t, out)?;
            self.drop_old_versions(t);
        }
        out.emit(Message::Watermark(wm))
    }

    /// At the end of input every waiting row is due, as at Flink's final watermark.
    fn on_end(&mut self, _ctx: &mut OperatorContext, out: &mut dyn Output) -> Result<()> {
        self.emit_until(i64::MAX, out)
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// The keys whose versions changed since the last barrier go to the versions table; the
    /// waiting stream rows replace those written at the last barrier, by the key group of
    /// their join keys.
    fn snapshot_state(
        &mut self,
        checkpoint_id: CheckpointId,
        ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        let changed = self.state.take_changed();
        let values: Vec<GroupValue> = changed.iter().map(|&g| self.encode(g)).collect();
        let mut snapshot = self.state.checkpoint(
            &self.keys,
            &changed,
            &values,
            Vec::new(),
            checkpoint_id,
            ctx,
        )?;
        self.pending_table
            .delete(&std::mem::take(&mut self.pending_saved))?;
        if !self.pending.is_empty() {
            let waiting = concat_batches(&self.f.left_schema, &self.pending)?;
            let keys = join_keys(&self.f.left_keys, &self.f.key_schema, &waiting)?;
            let number = self.next_pending;
            self.next_pending += 1;
            self.pending_table.write(
                BatchToWrite {
                    number,
                    batch: &waiting,
                    keys: &keys,
                    arrived: 0,
                    matched: None,
                },
                ctx,
            )?;
            self.pending_saved.push(number);
        }
        snapshot
            .tables
            .extend(self.pending_table.snapshot(checkpoint_id)?);
        Ok(snapshot)
    }

    /// The versions of this subtask's keys and the stream rows of its key groups that were
    /// waiting.
    fn restore_state(&mut self, restored: RestoredState, ctx: &mut OperatorContext) -> Result<()> {
        let versions = self.state.restore(&mut self.keys, &restored.tables, ctx)?;
        self.versions.resize_with(self.keys.len(), Vec::new);
        self.is_dirty.resize(self.keys.len(), false);
        for (&g, value) in versions.groups.iter().zip(&versions.values) {
            self.decode(g, value)?;
        }
        for b in self.pending_table.restore(&restored.tables, ctx)? {
            self.next_pending = self.next_pending.max(b.number + 1);
            self.pending_saved.push(b.number);
            self.pending.push(b.batch);
        }
        Ok(())
    }

    fn state_size(&self) -> Option<StateSize> {
        let pending: usize = self.pending.iter().map(|b| b.get_array_memory_size()).sum();
        Some(StateSize {
            entries: (self.version_count + self.pending.iter().map(|b| b.num_rows()).sum::<usize>())
                as u64,
            bytes: (self.version_bytes + pending + self.keys.memory_size()) as u64,
        })
    }
}

impl TemporalJoin {
    /// Key `g`'s versions for the table, in time order: their number, then per version its
    /// time and its row (a flag, then the bytes; none for a deletion). `None` when it has none.
    fn encode(&self, g: usize) -> GroupValue {
        let list = &self.versions[g];
        if list.is_empty() {
            return None;
        }
        let mut buf = (list.len() as u32).to_le_bytes().to_vec();
        for v in list {
            buf.extend_from_slice(&v.time.to_le_bytes());
            match &v.row {
                None => buf.push(0),
                Some(row) => {
                    buf.push(1);
                    put_record(&mut buf, row);
                }
            }
        }
        Some(buf)
    }

    /// Takes back key `g`'s versions as [`TemporalJoin::encode`] wrote them.
    fn decode(&mut self, g: usize, value: &[u8]) -> Result<()> {
        let mut r = ValueReader::new(value);
        for _ in 0..r.u32()? {
            let time = r.i64()?;
            let row: Option<Box<[u8]>> = match r.u8()? {
                0 => None,
                _ => Some(r.sized()?.into()),
            };
            self.version_bytes += row.as_ref().map_or(0, |r| r.len()) + size_of::<Version>();
            self.version_count += 1;
            self.versions[g].push(Version { time, row });
        }
        let list = &self.versions[g];
        if (list.len() > 1 || list.first().is_some_and(|v| v.row.is_none())) && !self.is_dirty[g] {
            self.is_dirty[g] = true;
            self.dirty.push(g);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "temporal_join_tests.rs"]
mod tests;
