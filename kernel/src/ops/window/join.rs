//! Window join: joins the rows of two windowed inputs that share a window (equal
//! `window_start` and `window_end`) and the join keys, once the watermark closes the window.
//!
//! Each side's rows are buffered per window end as they arrive. When the watermark reaches
//! end − 1 ms (the window aggregates upstream have emitted that window by then), the window's
//! two sides are joined by a hash join over whole batches: the right side's keys are interned
//! into group indices, its rows bucketed by group, and the left side's keys looked up in the
//! same table. Pairs pass the join's other conditions as one filter over the paired batch.
//! The window's rows are dropped after it fires, so state holds only open windows.
//!
//! The buffered rows are the operator's keyed state: at a checkpoint barrier, or when more
//! than `buffer_rows` are buffered, they are written to a `gemini-state` table (a
//! [`SliceStore`] per side, each window's rows a chunk per key group of the columns the
//! exchange hashed), read back when the window fires and deleted then.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, RecordBatch,
    UInt32Array,
};
use arrow::compute::kernels::boolean::not;
use arrow::compute::{concat_batches, filter, filter_record_batch, take, take_record_batch};
use arrow::datatypes::{DataType, Int64Type, Schema, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;

use super::slice_store::{SliceStore, SliceStoreState};
use super::spec::rows_by_value;
use super::{drop_late, nulls_false};
use crate::checkpoint::CheckpointId;
use crate::operator::{OperatorSnapshot, RestoredState};
use crate::ops::keyed_table::cast_back;
use gemini_state::StateSize;

use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::ops::group_keys::{join_keys, key_names, keys_valid, paired_schema, GroupKeys};
use crate::ops::{evaluate, timestamp_millis, HeldRows};
use crate::types::{Barrier, Message, Watermark};
use crate::{Error, Result};

/// Which rows a window join emits, as SQL's join types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowJoinType {
    Inner,
    Left,
    Right,
    Full,
    /// Left rows with a match (`EXISTS`, `IN`).
    LeftSemi,
    /// Left rows without a match (`NOT EXISTS`, `NOT IN`).
    LeftAnti,
    RightSemi,
    RightAnti,
}

/// One side of a window join.
#[derive(Debug, Clone)]
pub struct JoinSide {
    /// The join keys over this side's rows, besides the window.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// The column holding the window end (a timestamp).
    pub window_end: usize,
    /// The side's schema.
    pub schema: SchemaRef,
    /// The columns the exchange hashes this side's rows by (empty when one subtask gets
    /// them all): the key groups of its state.
    pub hashed: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct WindowJoinFactory {
    pub join_type: WindowJoinType,
    pub left: JoinSide,
    pub right: JoinSide,
    /// Names and types of the keys (both sides' keys have these types).
    pub key_schema: SchemaRef,
    /// Conditions besides key equality, over the left columns followed by the right ones.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    pub output: SchemaRef,
    /// Rows buffered in memory beyond which they are written to the state table.
    pub buffer_rows: usize,
}

impl OperatorFactory for WindowJoinFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        let store = |name, side: &JoinSide| {
            SliceStore::new(
                name,
                Arc::new(Schema::empty()),
                vec![side.schema.fields().len()],
            )
        };
        Ok(Box::new(WindowJoin {
            stores: [store("left", &self.left)?, store("right", &self.right)?],
            f: self.clone(),
            paired: paired_schema(&self.left.schema, &self.right.schema),
            windows: BTreeMap::new(),
            held: HeldRows::default(),
            watermark: None,
            late_rows: 0,
        }))
    }

    fn describe(&self) -> String {
        let keys = key_names(&self.key_schema);
        format!(
            "{:?} window join, keys {keys:?}{}",
            self.join_type,
            if self.filter.is_some() {
                ", with a condition"
            } else {
                ""
            }
        )
    }
}

/// The buffered rows of one window: left batches, right batches.
#[derive(Default)]
struct Window {
    sides: [Vec<RecordBatch>; 2],
}

/// What a checkpoint keeps of a window join besides its tables: the windows each side
/// holds, and the watermark, so that rows late before a failure are late after it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    watermark: Option<i64>,
    stores: [SliceStoreState; 2],
}

struct WindowJoin {
    f: WindowJoinFactory,
    /// The schema the join condition reads: left columns, then right ones.
    paired: SchemaRef,
    /// Open windows by end, as buffered.
    windows: BTreeMap<i64, Window>,
    /// What `windows` holds.
    held: HeldRows,
    /// Each side's rows written out, by window end.
    stores: [SliceStore; 2],
    watermark: Option<i64>,
    late_rows: u64,
}

/// The matching (left row, right row) pairs of a window's two sides by key equality: the
/// right keys are interned and bucketed, the left keys looked up in the same table (a left
/// key the right side lacks gets a new group past the right's, so it matches nothing).
fn matching_pairs(
    key_schema: &SchemaRef,
    left_keys: &[ArrayRef],
    left_rows: usize,
    right_keys: &[ArrayRef],
    right_rows: usize,
) -> Result<(UInt32Array, UInt32Array)> {
    let mut table = GroupKeys::new(key_schema.clone())?;
    let mut groups = Vec::new();
    table.intern(right_keys, right_rows, &mut groups)?;
    let right_valid = keys_valid(right_keys)?;
    let buckets = table.len();
    // Right rows by group (a counting sort): bucket g is order[offsets[g]..offsets[g + 1]].
    let mut offsets = vec![0u32; buckets + 1];
    let usable = |r: usize| right_valid.as_ref().is_none_or(|v| v.value(r));
    for (r, &g) in groups.iter().enumerate() {
        if usable(r) {
            offsets[g + 1] += 1;
        }
    }
    for g in 0..buckets {
        offsets[g + 1] += offsets[g];
    }
    let mut fill = offsets.clone();
    let mut order = vec![0u32; offsets[buckets] as usize];
    for (r, &g) in groups.iter().enumerate() {
        if usable(r) {
            order[fill[g] as usize] = r as u32;
            fill[g] += 1;
        }
    }
    table.intern(left_keys, left_rows, &mut groups)?;
    let left_valid = keys_valid(left_keys)?;
    let (mut lefts, mut rights) = (Vec::new(), Vec::new());
    for (l, &g) in groups.iter().enumerate() {
        if g >= buckets || left_valid.as_ref().is_some_and(|v| !v.value(l)) {
            continue;
        }
        for &r in &order[offsets[g] as usize..offsets[g + 1] as usize] {
            lefts.push(l as u32);
            rights.push(r);
        }
    }
    Ok((UInt32Array::from(lefts), UInt32Array::from(rights)))
}

/// Which of `len` rows are named in `rows` (a side's rows that found a match).
fn matched(rows: &UInt32Array, len: usize) -> BooleanArray {
    let mut m = BooleanBufferBuilder::new(len);
    m.append_n(len, false);
    for &r in rows.values() {
        m.set_bit(r as usize, true);
    }
    BooleanArray::new(m.finish(), None)
}

impl WindowJoin {
    fn side(&self, input: usize) -> &JoinSide {
        if input == 0 {
            &self.f.left
        } else {
            &self.f.right
        }
    }

    /// All rows of one side of a window, as one batch.
    fn concat(&self, input: usize, batches: &[RecordBatch]) -> Result<RecordBatch> {
        Ok(concat_batches(&self.side(input).schema, batches)?)
    }

    fn keys(&self, input: usize, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        join_keys(&self.side(input).keys, &self.f.key_schema, batch)
    }

    /// Rows of `side` with nulls for every column: the other side of unmatched outer rows.
    fn nulls(&self, input: usize, rows: usize) -> Vec<ArrayRef> {
        self.side(input)
            .schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), rows))
            .collect()
    }

    /// Joins the two sides of one window.
    fn join(&self, window: Window, out: &mut dyn Output) -> Result<()> {
        use WindowJoinType::*;
        let [left, right] = window.sides;
        let ty = self.f.join_type;
        let needs_left = matches!(ty, Left | Full | LeftAnti);
        let needs_right = matches!(ty, Right | Full | RightAnti);
        if (left.is_empty() && !needs_right) || (right.is_empty() && !needs_left) {
            return Ok(());
        }
        let l = self.concat(0, &left)?;
        let r = self.concat(1, &right)?;
        let (mut li, mut ri) = matching_pairs(
            &self.f.key_schema,
            &self.keys(0, &l)?,
            l.num_rows(),
            &self.keys(1, &r)?,
            r.num_rows(),
        )?;
        let pair = |li: &UInt32Array, ri: &UInt32Array| -> Result<Vec<ArrayRef>> {
            let mut cols = Vec::with_capacity(l.num_columns() + r.num_columns());
            for c in l.columns() {
                cols.push(take(c, li, None)?);
            }
            for c in r.columns() {
                cols.push(take(c, ri, None)?);
            }
            Ok(cols)
        };
        let semi_or_anti = matches!(ty, LeftSemi | LeftAnti | RightSemi | RightAnti);
        // The passing pairs' columns, when the condition has made them already.
        let mut passing = None;
        if let Some(cond) = &self.f.filter {
            if !li.is_empty() {
                let batch = RecordBatch::try_new(self.paired.clone(), pair(&li, &ri)?)?;
                // A null condition does not pass.
                let keep = nulls_false(evaluate(cond, &batch)?.as_boolean());
                li = filter(&li, &keep)?.as_primitive().clone();
                ri = filter(&ri, &keep)?.as_primitive().clone();
                if !semi_or_anti {
                    passing = Some(filter_record_batch(&batch, &keep)?.columns().to_vec());
                }
            }
        }
        let emit = |cols: Vec<ArrayRef>, out: &mut dyn Output| -> Result<()> {
            out.batch(RecordBatch::try_new(self.f.output.clone(), cols)?)
        };
        let (lmatched, rmatched) = (matched(&li, l.num_rows()), matched(&ri, r.num_rows()));
        let rows = |side: &RecordBatch, keep: &BooleanArray| -> Result<Vec<ArrayRef>> {
            Ok(filter_record_batch(side, keep)?.columns().to_vec())
        };
        match ty {
            LeftSemi => return emit(rows(&l, &lmatched)?, out),
            LeftAnti => return emit(rows(&l, &not(&lmatched)?)?, out),
            RightSemi => return emit(rows(&r, &rmatched)?, out),
            RightAnti => return emit(rows(&r, &not(&rmatched)?)?, out),
            Inner | Left | Right | Full => {}
        }
        if !li.is_empty() {
            let cols = match passing {
                Some(cols) => cols,
                None => pair(&li, &ri)?,
            };
            emit(cols, out)?;
        }
        if needs_left {
            let mut cols = rows(&l, &not(&lmatched)?)?;
            let unmatched = cols.first().map_or(0, |c| c.len());
            if unmatched > 0 {
                cols.extend(self.nulls(1, unmatched));
                emit(cols, out)?;
            }
        }
        if needs_right {
            let rest = rows(&r, &not(&rmatched)?)?;
            let unmatched = rest.first().map_or(0, |c| c.len());
            if unmatched > 0 {
                let mut cols = self.nulls(0, unmatched);
                cols.extend(rest);
                emit(cols, out)?;
            }
        }
        Ok(())
    }

    /// Joins every window whose end − 1 ms the watermark `wm` has reached: its buffered rows
    /// with those written out.
    fn fire(&mut self, wm: i64, out: &mut dyn Output) -> Result<()> {
        loop {
            let next = [
                self.windows.keys().next().copied(),
                self.stores[0].ends().next(),
                self.stores[1].ends().next(),
            ];
            let Some(end) = next.into_iter().flatten().min() else {
                break;
            };
            if end - 1 > wm {
                break;
            }
            let mut window = self.windows.remove(&end).unwrap_or_default();
            for b in window.sides.iter().flatten() {
                self.held.remove(b.num_rows(), b.columns());
            }
            for input in 0..2 {
                if let Some(stored) = self.stores[input].read(end)? {
                    let schema = &self.side(input).schema;
                    let columns = stored.columns.into_iter().next().unwrap_or_default();
                    window.sides[input].push(rows_batch(schema, columns)?);
                    self.stores[input].remove(end)?;
                }
            }
            self.join(window, out)?;
        }
        Ok(())
    }

    /// Writes every buffered window to the state tables.
    fn spill(&mut self, ctx: &OperatorContext) -> Result<()> {
        for (end, window) in std::mem::take(&mut self.windows) {
            for (input, batches) in window.sides.iter().enumerate() {
                if batches.is_empty() {
                    continue;
                }
                let rows = self.concat(input, batches)?;
                self.held.remove(rows.num_rows(), rows.columns());
                let hashed: Vec<ArrayRef> = self
                    .side(input)
                    .hashed
                    .iter()
                    .map(|&c| rows.column(c).clone())
                    .collect();
                self.stores[input].write_rows(end, &hashed, rows.columns(), ctx)?;
            }
        }
        Ok(())
    }
}

/// A side's rows read back from the state table, as a batch of its schema.
fn rows_batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let types: Vec<DataType> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    Ok(RecordBatch::try_new(
        schema.clone(),
        cast_back(columns, &types)?,
    )?)
}

impl Operator for WindowJoin {
    fn name(&self) -> &str {
        "WindowJoin"
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
        if input > 1 {
            return Err(Error::internal(format!("window join input {input}")));
        }
        let mut batch = batch;
        let mut ends = timestamp_millis(batch.column(self.side(input).window_end))?;
        // Rows of a window that has fired are late, as rows without a window are.
        if let Some(keep) = drop_late(&ends, self.watermark, &mut self.late_rows, ctx)? {
            if keep.true_count() == 0 {
                return Ok(());
            }
            batch = filter_record_batch(&batch, &keep)?;
            ends = filter(&ends, &keep)?.as_primitive::<Int64Type>().clone();
        }
        match rows_by_value(&ends) {
            None => {
                let end = ends.value(0);
                self.held.add(batch.num_rows(), batch.columns());
                self.windows.entry(end).or_default().sides[input].push(batch);
            }
            Some(parts) => {
                for (end, rows) in parts {
                    let part = take_record_batch(&batch, &rows)?;
                    self.held.add(part.num_rows(), part.columns());
                    self.windows.entry(end).or_default().sides[input].push(part);
                }
            }
        }
        if self.held.rows > self.f.buffer_rows as u64 {
            self.spill(ctx)?;
        }
        Ok(())
    }

    /// A checkpoint barrier: the buffered rows go to the state tables, so that a snapshot of
    /// the tables is the whole state.
    fn on_barrier(
        &mut self,
        _barrier: &Barrier,
        ctx: &mut OperatorContext,
        _out: &mut dyn Output,
    ) -> Result<()> {
        self.spill(ctx)
    }

    fn on_watermark(
        &mut self,
        wm: Watermark,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            self.watermark = Some(t);
            self.fire(t, out)?;
        }
        out.emit(Message::Watermark(wm))
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// After the barrier every buffered row is in the side tables.
    fn snapshot_state(
        &mut self,
        checkpoint_id: CheckpointId,
        _ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        if !self.windows.is_empty() {
            return Err(Error::internal("a window join buffer outlived its barrier"));
        }
        let (left, left_table) = self.stores[0].snapshot(checkpoint_id)?;
        let (right, right_table) = self.stores[1].snapshot(checkpoint_id)?;
        let saved = Saved {
            watermark: self.watermark,
            stores: [left, right],
        };
        Ok(OperatorSnapshot {
            state: crate::checkpoint::encode_saved(&saved)?,
            tables: left_table.into_iter().chain(right_table).collect(),
        })
    }

    /// Every old subtask's windows of this subtask's key groups; the watermark is the lowest
    /// of the old subtasks'.
    fn restore_state(&mut self, restored: RestoredState, ctx: &mut OperatorContext) -> Result<()> {
        let saved: Vec<Saved> = crate::checkpoint::decode_saved(&restored.all_states, self.name())?;
        self.watermark = super::lowest_watermark(saved.iter().map(|s| s.watermark));
        let (left, right) = saved.into_iter().map(|s| s.stores.into()).unzip();
        self.stores[0].restore(left, &restored.tables, ctx)?;
        self.stores[1].restore(right, &restored.tables, ctx)?;
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut OperatorContext, out: &mut dyn Output) -> Result<()> {
        self.fire(i64::MAX, out)?;
        super::note_late_rows(ctx, self.name(), self.late_rows);
        Ok(())
    }

    /// The buffered rows and their bytes, with the rows and bytes written out.
    fn state_size(&self) -> Option<StateSize> {
        Some(self.held.size(0) + self.stores[0].size() + self.stores[1].size())
    }
}
