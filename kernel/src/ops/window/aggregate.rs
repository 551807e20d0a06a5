//! Window aggregation over event or processing time, vectorized and sliced.
//!
//! Each batch is split by slice (a few distinct slices per batch, since event time mostly
//! grows), its keys are interned into group indices for the whole batch, and DataFusion's
//! `GroupsAccumulator`s update all rows of a slice in one call. A window fires when the
//! watermark reaches its end − 1 ms (Flink's rule): a TUMBLE window is its one slice; HOP and
//! CUMULATE windows merge the accumulator states of their slices, sealed once complete.
//!
//! Complete slices of HOP and CUMULATE windows wait in the operator's keyed state, a
//! `StateTable` (see `slice_store`), until the last window containing them fires; their entries
//! are deleted then. Open slices are combined in memory, as Flink's window buffer does, and
//! written to the state table when complete, when more than `buffer_groups` groups are
//! buffered, or at a checkpoint barrier; a TUMBLE window fires straight from its buffer unless
//! part of it was written out.
//!
//! With parallelism above 1 the aggregation runs in two phases, as Flink's local-global
//! optimisation: a `Local` subtask pre-aggregates its rows per (key, slice) and emits partial
//! states when a slice is complete; a hash exchange by key brings each key's partials to one
//! `Global` subtask, which merges them and fires the windows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{cast, filter, take};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::error::ArrowError;
use datafusion_expr::{EmitTo, GroupsAccumulator};
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use datafusion_physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};

use super::slice_store::{Drained, SliceStore, SliceStoreState};
use super::spec::{rows_by_value, WindowKind, WindowSpec};
use super::{drop_late, TimeAttribute};
use gemini_state::StateSize;

use crate::checkpoint::CheckpointId;
use crate::operator::{
    Operator, OperatorContext, OperatorFactory, OperatorSnapshot, Output, RestoredState,
};
use crate::ops::evaluate;
use crate::ops::group_keys::GroupKeys;
use crate::types::{Barrier, Message, Watermark};
use crate::{Error, Result};

/// Which part of the aggregation a subtask does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregatePhase {
    /// Rows in, window results out.
    Single,
    /// Rows in, partial states per (key, slice) out: `[keys…, slice end, states…]`.
    Local,
    /// Partial states in, window results out.
    Global,
}

/// What one output column of a window aggregation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowOutput {
    Key(usize),
    WindowStart,
    WindowEnd,
    /// `window_end − 1 ms`, the rowtime of the result.
    WindowTime,
    Aggregate(usize),
}

/// One aggregate call: the function with its arguments, and its `FILTER (WHERE …)`.
#[derive(Debug, Clone)]
pub struct WindowAggregateCall {
    pub function: Arc<AggregateFunctionExpr>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

#[derive(Debug, Clone)]
pub struct WindowAggregateFactory {
    /// How rows are sliced and when windows fire.
    pub spec: WindowSpec,
    /// The windows the results name (their starts): `spec` itself, or for a window-attached
    /// aggregation (`spec` = the upstream's `end_grid()`) the upstream windows.
    pub windows: WindowSpec,
    pub phase: AggregatePhase,
    /// The group keys over input rows (`Single`, `Local`); a `Global` subtask reads them from
    /// the first columns of the partial states.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Names and types of the keys.
    pub key_schema: SchemaRef,
    /// What assigns rows to slices (`Single`, `Local`; processing time runs `Single` only).
    pub time: TimeAttribute,
    pub calls: Vec<WindowAggregateCall>,
    /// The columns of the results (`Single`, `Global`).
    pub outputs: Vec<WindowOutput>,
    /// The schema of what this subtask emits: results, or partial states for `Local`.
    pub output: SchemaRef,
    /// Groups combined in memory, over all open slices, before they are written to the state
    /// table (`Local`: emitted downstream). Flink's `table.exec.window-agg.buffer-size-limit`.
    pub buffer_groups: usize,
}

/// Groups buffered before a write-out, by default: at some 100 bytes a group, about 200 MiB.
/// Flink sizes its window buffer by managed memory; while the state table is all in memory
/// too, an earlier write-out would save nothing.
pub const DEFAULT_BUFFER_GROUPS: usize = 2_000_000;

/// The schema of partial states between a `Local` and a `Global` subtask.
pub fn partial_schema(key_schema: &Schema, calls: &[WindowAggregateCall]) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = key_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new("$slice_end", DataType::Int64, false));
    for (i, c) in calls.iter().enumerate() {
        for f in c.function.state_fields()? {
            fields.push(Field::new(
                format!("$agg{i}.{}", f.name()),
                f.data_type().clone(),
                true,
            ));
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

impl OperatorFactory for WindowAggregateFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        self.spec.validate().map_err(Error::user)?;
        if matches!(self.time, TimeAttribute::Proctime) && self.phase != AggregatePhase::Single {
            return Err(Error::internal(
                "a processing-time window aggregation runs in one phase",
            ));
        }
        let mut state_widths = Vec::new();
        for c in &self.calls {
            state_widths.push(c.function.state_fields()?.len());
        }
        Ok(Box::new(WindowAggregate {
            f: self.clone(),
            store: SliceStore::new("slices", self.key_schema.clone(), state_widths.clone())?,
            state_widths,
            open: BTreeMap::new(),
            pending: BTreeSet::new(),
            watermark: None,
            late_rows: 0,
            groups: Vec::new(),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "{:?} {}window {:?} offset {} ms, {}",
            self.phase,
            self.time.describe(),
            self.spec.kind,
            self.spec.offset,
            super::keys_and_calls(&self.key_schema, &self.calls)
        )
    }
}

/// The live groups of one slice.
struct Slice {
    keys: GroupKeys,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

impl Slice {
    /// Merges partial states (of the same calls) into the slice.
    fn merge(&mut self, states: &Drained, groups: &mut Vec<usize>) -> Result<()> {
        self.keys.intern(&states.keys, states.groups, groups)?;
        let n = self.keys.len();
        for (acc, state) in self.accumulators.iter_mut().zip(&states.columns) {
            acc.merge_batch(state, groups, n)?;
        }
        Ok(())
    }

    /// Bytes the slice holds (keys and accumulators).
    fn memory_size(&self) -> usize {
        self.keys.memory_size() + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// Empties the slice into final values (`evaluate`) or partial states (`state`).
    fn drain(&mut self, finals: bool) -> Result<Drained> {
        let groups = self.keys.len();
        let keys = self.keys.take()?;
        let columns = self
            .accumulators
            .iter_mut()
            .map(|a| {
                if finals {
                    a.evaluate(EmitTo::All).map(|v| vec![v])
                } else {
                    a.state(EmitTo::All)
                }
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(Drained {
            groups,
            keys,
            columns,
        })
    }
}

/// What a checkpoint keeps of a window aggregation besides its table. The watermark is
/// kept too, so that rows late before a failure are late after it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    watermark: Option<i64>,
    store: SliceStoreState,
}

struct WindowAggregate {
    f: WindowAggregateFactory,
    /// Number of state columns of each call.
    state_widths: Vec<usize>,
    /// Slices being combined in memory, by slice end.
    open: BTreeMap<i64, Slice>,
    /// The keyed state: slices written out, complete or not.
    store: SliceStore,
    /// Ends of the windows holding data that have not fired.
    pending: BTreeSet<i64>,
    watermark: Option<i64>,
    late_rows: u64,
    groups: Vec<usize>,
}

pub(super) fn accumulator(call: &WindowAggregateCall) -> Result<Box<dyn GroupsAccumulator>> {
    let f = &call.function;
    if f.groups_accumulator_supported() {
        Ok(f.create_groups_accumulator()?)
    } else {
        let f = f.clone();
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
            f.create_accumulator()
        })))
    }
}

/// The columns of a batch that one slice's update reads.
struct Columns {
    keys: Vec<ArrayRef>,
    slice_ends: Int64Array,
    /// Per call: its arguments (`Single`, `Local`) or its state columns (`Global`).
    inputs: Vec<Vec<ArrayRef>>,
    filters: Vec<Option<BooleanArray>>,
}

impl Columns {
    /// The same columns with `pick` (a take or a filter kernel) applied to each.
    fn map(
        &self,
        pick: impl Fn(&dyn Array) -> std::result::Result<ArrayRef, ArrowError>,
    ) -> Result<Columns> {
        let all = |cols: &[ArrayRef]| -> Result<Vec<ArrayRef>> {
            Ok(cols
                .iter()
                .map(|c| pick(c.as_ref()))
                .collect::<std::result::Result<_, _>>()?)
        };
        Ok(Columns {
            keys: all(&self.keys)?,
            slice_ends: pick(&self.slice_ends)?.as_primitive::<Int64Type>().clone(),
            inputs: self
                .inputs
                .iter()
                .map(|cols| all(cols))
                .collect::<Result<_>>()?,
            filters: self
                .filters
                .iter()
                .map(|f| {
                    f.as_ref()
                        .map(|f| pick(f).map(|a| a.as_boolean().clone()))
                        .transpose()
                })
                .collect::<std::result::Result<_, _>>()?,
        })
    }

    fn take(&self, rows: &UInt32Array) -> Result<Columns> {
        self.map(|a| take(a, rows, None))
    }

    fn filter(&self, keep: &BooleanArray) -> Result<Columns> {
        self.map(|a| filter(a, keep))
    }
}

impl WindowAggregate {
    fn new_slice(&self) -> Result<Slice> {
        Ok(Slice {
            keys: GroupKeys::new(self.f.key_schema.clone())?,
            accumulators: self
                .f
                .calls
                .iter()
                .map(accumulator)
                .collect::<Result<_>>()?,
        })
    }

    /// The key, slice and input columns of a batch.
    fn columns(&self, batch: &RecordBatch) -> Result<Columns> {
        let f = &self.f;
        if f.phase == AggregatePhase::Global {
            let n = f.key_schema.fields().len();
            let mut at = n + 1;
            let inputs = self
                .state_widths
                .iter()
                .map(|w| {
                    let cols = batch.columns()[at..at + w].to_vec();
                    at += w;
                    cols
                })
                .collect();
            return Ok(Columns {
                keys: batch.columns()[..n].to_vec(),
                slice_ends: batch.column(n).as_primitive::<Int64Type>().clone(),
                inputs,
                filters: vec![None; f.calls.len()],
            });
        }
        let keys = f
            .keys
            .iter()
            .map(|k| evaluate(k, batch))
            .collect::<Result<Vec<_>>>()?;
        let time = f.time.row_times(batch)?;
        let slice_ends = f.spec.slice_ends(time.as_primitive::<Int64Type>());
        let mut inputs = Vec::with_capacity(f.calls.len());
        let mut filters = Vec::with_capacity(f.calls.len());
        for c in &f.calls {
            inputs.push(
                c.function
                    .expressions()
                    .iter()
                    .map(|e| evaluate(e, batch))
                    .collect::<Result<Vec<_>>>()?,
            );
            filters.push(
                c.filter
                    .as_ref()
                    .map(|e| evaluate(e, batch).map(|a| a.as_boolean().clone()))
                    .transpose()?,
            );
        }
        Ok(Columns {
            keys,
            slice_ends,
            inputs,
            filters,
        })
    }

    /// Adds the rows of `cols`, all in the slice ending at `end`.
    fn update(&mut self, end: i64, cols: &Columns) -> Result<()> {
        if !self.open.contains_key(&end) {
            let slice = self.new_slice()?;
            self.open.insert(end, slice);
            if self.f.phase != AggregatePhase::Local {
                self.pending.extend(self.f.spec.windows_of_slice(end));
            }
        }
        let slice = self.open.get_mut(&end).expect("inserted above");
        let rows = cols.slice_ends.len();
        slice.keys.intern(&cols.keys, rows, &mut self.groups)?;
        let n = slice.keys.len();
        for (i, acc) in slice.accumulators.iter_mut().enumerate() {
            if self.f.phase == AggregatePhase::Global {
                acc.merge_batch(&cols.inputs[i], &self.groups, n)?;
            } else {
                acc.update_batch(&cols.inputs[i], &self.groups, cols.filters[i].as_ref(), n)?;
            }
        }
        Ok(())
    }

    /// The partial states of a slice, as a `Local` subtask emits them.
    fn partials(&self, end: i64, mut slice: Slice) -> Result<RecordBatch> {
        let Drained {
            groups,
            mut keys,
            columns,
        } = slice.drain(false)?;
        keys.push(Arc::new(Int64Array::from_value(end, groups)));
        keys.extend(columns.into_iter().flatten());
        Ok(RecordBatch::try_new(self.f.output.clone(), keys)?)
    }

    /// The result rows of the window ending at `end`, from its drained groups.
    fn results(&self, end: i64, window: Drained) -> Result<RecordBatch> {
        let Drained {
            groups: rows,
            keys,
            columns: values,
        } = window;
        let time = |t: i64, field: &Field| -> Result<ArrayRef> {
            Ok(cast(&Int64Array::from_value(t, rows), field.data_type())?)
        };
        let start = self.f.windows.window_start(end);
        let mut columns = Vec::with_capacity(self.f.outputs.len());
        for (o, field) in self.f.outputs.iter().zip(self.f.output.fields()) {
            columns.push(match *o {
                WindowOutput::Key(k) => keys[k].clone(),
                WindowOutput::WindowStart => time(start, field)?,
                WindowOutput::WindowEnd => time(end, field)?,
                WindowOutput::WindowTime => time(end - 1, field)?,
                WindowOutput::Aggregate(a) => values[a][0].clone(),
            });
        }
        Ok(RecordBatch::try_new(self.f.output.clone(), columns)?)
    }

    /// Writes the open slice ending at `end` to the state table, beside what was written of
    /// it before (merged when it is read).
    fn spill(&mut self, end: i64, ctx: &OperatorContext) -> Result<()> {
        let Some(mut slice) = self.open.remove(&end) else {
            return Ok(());
        };
        let states = slice.drain(false)?;
        self.store.write(end, &states, ctx)
    }

    /// Empties the buffer: `Local` emits the partial states of its open slices, the others
    /// write them to the state table.
    fn empty_buffer(&mut self, ctx: &OperatorContext, out: &mut dyn Output) -> Result<()> {
        if self.f.phase == AggregatePhase::Local {
            return self.flush(i64::MAX, out);
        }
        let ends: Vec<i64> = self.open.keys().copied().collect();
        for end in ends {
            self.spill(end, ctx)?;
        }
        Ok(())
    }

    /// Fires every pending window whose end − 1 ms the watermark `wm` has reached.
    fn fire(&mut self, wm: i64, ctx: &OperatorContext, out: &mut dyn Output) -> Result<()> {
        while let Some(&end) = self.pending.first() {
            if end - 1 > wm {
                break;
            }
            self.pending.pop_first();
            // A TUMBLE window is its one slice: it fires from the buffer, merged with what was
            // written out of it.
            if matches!(self.f.spec.kind, WindowKind::Tumble { .. }) {
                let mut window = self.open.remove(&end);
                if let Some(stored) = self.store.read(end)? {
                    let w = match &mut window {
                        Some(w) => w,
                        None => window.insert(self.new_slice()?),
                    };
                    w.merge(&stored, &mut self.groups)?;
                    self.store.remove(end)?;
                }
                if let Some(mut window) = window {
                    let window = window.drain(true)?;
                    out.batch(self.results(end, window)?)?;
                }
                continue;
            }
            // The slices this window needs are complete now: into the state table.
            let complete: Vec<i64> = self.open.range(..=end).map(|(&e, _)| e).collect();
            for e in complete {
                self.spill(e, ctx)?;
            }
            let mut window = self.new_slice()?;
            for s in self.f.spec.slices_of_window(end) {
                if let Some(stored) = self.store.read(s)? {
                    window.merge(&stored, &mut self.groups)?;
                }
            }
            if window.keys.len() > 0 {
                let window = window.drain(true)?;
                out.batch(self.results(end, window)?)?;
            }
            // Slices in no later window are done with.
            let spec = self.f.spec;
            let done: Vec<i64> = self
                .store
                .ends()
                .filter(|&s| spec.last_window_of_slice(s) <= end)
                .collect();
            for s in done {
                self.store.remove(s)?;
            }
        }
        Ok(())
    }

    /// `Local`: emits the partial states of the slices that end by `wm` + 1 ms.
    fn flush(&mut self, wm: i64, out: &mut dyn Output) -> Result<()> {
        let done: Vec<i64> = self
            .open
            .keys()
            .copied()
            .take_while(|&e| e - 1 <= wm)
            .collect();
        for e in done {
            let slice = self.open.remove(&e).expect("listed above");
            out.batch(self.partials(e, slice)?)?;
        }
        Ok(())
    }
}

impl Operator for WindowAggregate {
    fn name(&self) -> &str {
        match self.f.phase {
            AggregatePhase::Single => "WindowAggregate",
            AggregatePhase::Local => "LocalWindowAggregate",
            AggregatePhase::Global => "GlobalWindowAggregate",
        }
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if let Some(now) = self.f.time.clock() {
            self.fire(now, ctx, out)?; // processing time: the windows the clock has passed
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut cols = self.columns(&batch)?;
        // Rows of slices whose windows have fired are late (Flink drops them the same way);
        // `Local` keeps them, its `Global` decides.
        let watermark = self
            .watermark
            .filter(|_| self.f.phase != AggregatePhase::Local);
        if let Some(keep) = drop_late(&cols.slice_ends, watermark, &mut self.late_rows, ctx)? {
            if keep.true_count() == 0 {
                return Ok(());
            }
            cols = cols.filter(&keep)?;
        }
        match rows_by_value(&cols.slice_ends) {
            None => {
                let end = cols.slice_ends.value(0);
                self.update(end, &cols)?;
            }
            Some(parts) => {
                for (end, rows) in parts {
                    let part = cols.take(&rows)?;
                    self.update(end, &part)?;
                }
            }
        }
        let buffered: usize = self.open.values().map(|s| s.keys.len()).sum();
        if buffered > self.f.buffer_groups {
            self.empty_buffer(ctx, out)?;
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        wm: Watermark,
        ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if let Some(now) = self.f.time.clock() {
            self.fire(now, ctx, out)?;
        } else if let Watermark::EventTime(t) = wm {
            self.watermark = Some(t);
            match self.f.phase {
                AggregatePhase::Local => self.flush(t, out)?,
                _ => self.fire(t, ctx, out)?,
            }
        }
        out.emit(Message::Watermark(wm))
    }

    /// A checkpoint barrier: the buffer goes to the state table (`Local`: downstream, ahead of
    /// the barrier), so that a snapshot of the table is the whole state.
    fn on_barrier(
        &mut self,
        _barrier: &Barrier,
        ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        self.empty_buffer(ctx, out)
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// After the barrier the buffer is in the table (`Local`: sent on), so the table's
    /// snapshot, the slices it holds and the windows not fired are the whole state.
    fn snapshot_state(
        &mut self,
        checkpoint_id: CheckpointId,
        _ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        if !self.open.is_empty() {
            return Err(Error::internal("a window buffer outlived its barrier"));
        }
        let (store, table) = self.store.snapshot(checkpoint_id)?;
        let saved = Saved {
            watermark: self.watermark,
            store,
        };
        Ok(OperatorSnapshot {
            state: crate::checkpoint::encode_saved(&saved)?,
            tables: table.into_iter().collect(),
        })
    }

    /// Every old subtask's slices of this subtask's key groups (one old subtask at the same
    /// parallelism, several after a rescale). The windows still to fire are those of the
    /// restored slices past the watermark, the lowest of the old subtasks'.
    fn restore_state(&mut self, restored: RestoredState, ctx: &mut OperatorContext) -> Result<()> {
        let saved: Vec<Saved> = crate::checkpoint::decode_saved(&restored.all_states, self.name())?;
        self.watermark = super::lowest_watermark(saved.iter().map(|s| s.watermark));
        let stores = saved.into_iter().map(|s| s.store).collect();
        self.store.restore(stores, &restored.tables, ctx)?;
        if self.f.phase != AggregatePhase::Local {
            let ends: Vec<i64> = self.store.ends().collect();
            for end in ends {
                for w in self.f.spec.windows_of_slice(end) {
                    if self.watermark.is_none_or(|wm| w - 1 > wm) {
                        self.pending.insert(w);
                    }
                }
            }
        }
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut OperatorContext, out: &mut dyn Output) -> Result<()> {
        // The final watermark has fired everything already; this covers inputs without one.
        match self.f.phase {
            AggregatePhase::Local => self.flush(i64::MAX, out)?,
            _ => self.fire(i64::MAX, ctx, out)?,
        }
        super::note_late_rows(ctx, self.name(), self.late_rows);
        Ok(())
    }

    /// Stored groups and the table's bytes, with the buffered groups and their bytes.
    fn state_size(&self) -> Option<StateSize> {
        let groups: usize = self.open.values().map(|s| s.keys.len()).sum();
        let bytes: usize = self.open.values().map(Slice::memory_size).sum();
        let buffered = StateSize {
            entries: groups as u64,
            bytes: bytes as u64,
        };
        Some(self.store.size() + buffered)
    }
}
