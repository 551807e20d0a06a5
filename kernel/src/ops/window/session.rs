//! Session window aggregation: per group key, rows closer than the gap form one session
//! (Flink's `SESSION` windows, the window TVF and legacy `GROUP BY SESSION(ts, gap)` alike).
//!
//! A row at `t` opens the window `[t, t + gap)`; windows of a key that overlap or touch merge
//! (Flink's `TimeWindow.intersects`), so one row can bridge two sessions. Sessions cannot be
//! sliced, and merging two sessions' accumulators is not something a `GroupsAccumulator`
//! does, so the operator keeps the rows: each batch's key, argument and filter columns are
//! stored once, each session lists its rows, and when the watermark passes a session's end −
//! 1 ms its rows are gathered (arrow's `interleave`) and aggregated for all sessions firing
//! together in one `update_batch` per aggregate. A stored batch is freed when its last row's
//! session has fired. A row whose own window would already have fired and that merges into no
//! open session is late: dropped and counted.
//!
//! The kept rows are the operator's keyed state: at a checkpoint barrier, or when more than
//! `buffer_rows` are kept in memory, they are written to a `gemini-state` table (see
//! `session_store`), a row per entry under its key and time, and a session that fires takes
//! its key's rows of its time range back out of the table.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::compute::{cast, interleave};
use arrow::datatypes::{Field, Int64Type, SchemaRef};
use datafusion_expr::EmitTo;
use datafusion_physical_expr::PhysicalExpr;

use super::aggregate::{accumulator, WindowAggregateCall, WindowOutput};
use super::session_store::{SessionStore, StoredKey, TakenRows};
use super::TimeAttribute;
use gemini_state::StateSize;

use crate::checkpoint::CheckpointId;
use crate::operator::{
    Operator, OperatorContext, OperatorFactory, OperatorSnapshot, Output, RestoredState,
};
use crate::ops::group_keys::GroupKeys;
use crate::ops::{evaluate, HeldRows};
use crate::types::{Barrier, Message, Watermark};
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct SessionAggregateFactory {
    /// The gap in milliseconds: a session ends `gap` after its last row.
    pub gap: i64,
    /// The group keys over input rows; sessions are per key.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    pub key_schema: SchemaRef,
    /// What assigns rows to sessions.
    pub time: TimeAttribute,
    pub calls: Vec<WindowAggregateCall>,
    pub outputs: Vec<WindowOutput>,
    pub output: SchemaRef,
    /// Rows kept in memory beyond which they are written to the state table.
    pub buffer_rows: usize,
}

impl OperatorFactory for SessionAggregateFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        if self.gap <= 0 {
            return Err(Error::user(format!(
                "the gap of a session window must be positive, got {} ms",
                self.gap
            )));
        }
        let values: usize = self
            .calls
            .iter()
            .map(|c| c.function.expressions().len() + usize::from(c.filter.is_some()))
            .sum();
        Ok(Box::new(SessionAggregate {
            store: SessionStore::new(&self.key_schema)?,
            stored_keys: Vec::new(),
            values,
            f: self.clone(),
            keys: GroupKeys::new(self.key_schema.clone())?,
            sessions: Vec::new(),
            stored: Vec::new(),
            held: HeldRows::default(),
            due: BTreeSet::new(),
            watermark: None,
            late_rows: 0,
            key_ids: Vec::new(),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "{}session window gap {} ms, {}",
            self.time.describe(),
            self.gap,
            super::keys_and_calls(&self.key_schema, &self.calls)
        )
    }
}

/// A key's open sessions in a checkpoint: where its rows are, and each session's start, end
/// and rows written.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedKey {
    key_group: gemini_state::KeyGroup,
    key: Vec<u8>,
    sessions: Vec<(i64, i64, usize)>,
}

/// What a checkpoint keeps of a session aggregation besides its table; the watermark too, so
/// that rows late before a failure are late after it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    watermark: Option<i64>,
    store: super::session_store::SessionStoreState,
    keys: Vec<SavedKey>,
}

/// A stored row: (stored batch, row), packed.
type RowRef = u64;

fn row_ref(batch: usize, row: usize) -> RowRef {
    ((batch as u64) << 32) | row as u64
}

fn unpack(r: RowRef) -> (usize, usize) {
    ((r >> 32) as usize, (r & 0xffff_ffff) as usize)
}

/// Picks of rows read back from the state table (rather than of a stored batch).
const TAKEN: usize = usize::MAX;

/// An open session of one key: `[start, end)`, `end` being its last row's time + gap.
struct Session {
    start: i64,
    end: i64,
    /// Its rows in memory.
    rows: Vec<RowRef>,
    /// How many of its rows are in the state table.
    written: usize,
}

/// A stored batch: the key columns, then each call's arguments and filter, then the rows'
/// times, and how many of its rows are still in open sessions.
struct Stored {
    columns: Vec<ArrayRef>,
    live: usize,
}

struct SessionAggregate {
    f: SessionAggregateFactory,
    /// Key ids: the index into `sessions`.
    keys: GroupKeys,
    /// Open sessions per key id, by start.
    sessions: Vec<Vec<Session>>,
    stored: Vec<Option<Stored>>,
    /// What `stored` holds (rows of batches still live).
    held: HeldRows,
    /// (end, key id) of open sessions, oldest first; an entry whose session has since grown
    /// or fired is skipped when it comes up.
    due: BTreeSet<(i64, u32)>,
    /// Rows written out, and where each key's rows are (by key id).
    store: SessionStore,
    stored_keys: Vec<Option<StoredKey>>,
    /// Value columns per row: the calls' arguments and filters.
    values: usize,
    watermark: Option<i64>,
    late_rows: u64,
    key_ids: Vec<usize>,
}

impl SessionAggregate {
    /// Evaluates what a batch's rows need later: keys, arguments, filters.
    fn columns(&self, batch: &RecordBatch) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        let keys = self
            .f
            .keys
            .iter()
            .map(|k| evaluate(k, batch))
            .collect::<Result<Vec<_>>>()?;
        let mut rest = Vec::new();
        for c in &self.f.calls {
            for e in c.function.expressions() {
                rest.push(evaluate(&e, batch)?);
            }
            if let Some(filter) = &c.filter {
                rest.push(evaluate(filter, batch)?);
            }
        }
        Ok((keys, rest))
    }

    /// Adds row `row` at `t` to key `key`'s sessions; false if it is late.
    fn assign(&mut self, key: usize, t: i64, row: RowRef) -> bool {
        let gap = self.f.gap;
        let list = &mut self.sessions[key];
        // The sessions the row's window [t, t + gap) overlaps or touches.
        let first = list.partition_point(|s| s.end < t);
        let last = list.partition_point(|s| s.start <= t + gap);
        if first == last {
            if let Some(wm) = self.watermark {
                if t + gap - 1 <= wm {
                    return false;
                }
            }
            list.insert(
                first,
                Session {
                    start: t,
                    end: t + gap,
                    rows: vec![row],
                    written: 0,
                },
            );
            self.due.insert((t + gap, key as u32));
            return true;
        }
        // Merge sessions first..last into the first, with the row.
        let mut merged: Vec<Session> = list.drain(first + 1..last).collect();
        let s = &mut list[first];
        s.start = s.start.min(t);
        let old_end = s.end;
        for m in merged.drain(..) {
            s.end = s.end.max(m.end);
            s.rows.extend(m.rows);
            s.written += m.written;
        }
        s.end = s.end.max(t + gap);
        s.rows.push(row);
        if s.end != old_end {
            self.due.insert((s.end, key as u32));
        }
        true
    }

    /// Writes the rows kept in memory to the state table, freeing their batches.
    fn spill(&mut self, ctx: &OperatorContext) -> Result<()> {
        if self.held.rows == 0 {
            return Ok(());
        }
        let (mut picks, mut key_ids) = (Vec::new(), Vec::new());
        for (key, list) in self.sessions.iter_mut().enumerate() {
            for s in list.iter_mut() {
                picks.extend(s.rows.iter().map(|&r| unpack(r)));
                key_ids.extend(std::iter::repeat_n(key, s.rows.len()));
                s.written += s.rows.len();
                s.rows = Vec::new();
            }
        }
        let nkeys = self.f.keys.len();
        if picks.is_empty() {
            // Every kept batch's live rows have fired since: nothing to write.
            self.stored.clear();
            self.held = HeldRows::default();
            return Ok(());
        }
        let mut columns = self.gather(&picks, 0..nkeys + self.values + 1, &[])?;
        let times = columns.pop().expect("the time column");
        let values = columns.split_off(nkeys);
        self.store.write(
            &columns,
            times.as_primitive::<Int64Type>(),
            &values,
            &key_ids,
            &mut self.stored_keys,
            ctx,
        )?;
        self.stored.clear();
        self.held = HeldRows::default();
        Ok(())
    }

    /// Fires the sessions whose end − 1 ms the watermark `wm` has reached.
    fn fire(&mut self, wm: i64, out: &mut dyn Output) -> Result<()> {
        let mut firing: Vec<(usize, Session)> = Vec::new();
        while let Some(&(end, key)) = self.due.first() {
            if end - 1 > wm {
                break;
            }
            self.due.pop_first();
            let list = &mut self.sessions[key as usize];
            // Still there with this end? (Otherwise it grew, merged or fired.)
            if let Some(i) = list.iter().position(|s| s.end == end) {
                firing.push((key as usize, list.remove(i)));
            }
        }
        if firing.is_empty() {
            return Ok(());
        }
        // Rows in the state table come back out: each session's are a range of `taken`.
        let mut taken = TakenRows::default();
        let mut ranges = Vec::with_capacity(firing.len());
        // The keys of sessions with no row in memory, whose output keys are decoded.
        let mut bare = Vec::new();
        for (key, s) in &firing {
            let from = taken.len();
            if s.written > 0 {
                let stored = self.stored_keys[*key]
                    .as_ref()
                    .ok_or_else(|| Error::internal("a written session has no stored key"))?;
                self.store.take(stored, s.start, s.end, &mut taken)?;
                if s.rows.is_empty() {
                    bare.push(stored);
                }
            }
            ranges.push(from..taken.len());
        }
        let bare_keys = self.store.decode_keys(&bare)?;
        let taken_values = self.store.decode_values(&taken)?;
        let batch = self.results(&firing, &ranges, &bare_keys, &taken_values)?;
        for (_, s) in &firing {
            for &r in &s.rows {
                let (b, _) = unpack(r);
                if let Some(st) = self.stored[b].as_mut() {
                    st.live -= 1;
                    if st.live == 0 {
                        let rows = st.columns.first().map_or(0, |c| c.len());
                        self.held.remove(rows, &st.columns);
                        self.stored[b] = None;
                    }
                }
            }
        }
        out.batch(batch)
    }

    /// Columns `columns` of the rows `picks`, (stored batch, row) each, or (`TAKEN`, row) for
    /// a row of `taken` (those columns of rows read back), gathered by `interleave`.
    fn gather(
        &self,
        picks: &[(usize, usize)],
        columns: Range<usize>,
        taken: &[ArrayRef],
    ) -> Result<Vec<ArrayRef>> {
        // The sources the picks read, renumbered densely for `interleave`.
        let mut used: Vec<usize> = picks.iter().map(|p| p.0).collect();
        used.sort_unstable();
        used.dedup();
        let dense = |p: &(usize, usize)| (used.binary_search(&p.0).expect("listed"), p.1);
        let picks: Vec<(usize, usize)> = picks.iter().map(dense).collect();
        columns
            .clone()
            .map(|c| {
                let arrays: Vec<&dyn Array> = used
                    .iter()
                    .map(|&b| {
                        if b == TAKEN {
                            let c = c - columns.start;
                            return taken.get(c).map(|a| a.as_ref()).ok_or_else(|| {
                                Error::internal("a session row read back lacks a column")
                            });
                        }
                        self.stored[b]
                            .as_ref()
                            .map(|s| s.columns[c].as_ref())
                            .ok_or_else(|| Error::internal("a session row's batch was freed"))
                    })
                    .collect::<Result<_>>()?;
                Ok(interleave(&arrays, &picks)?)
            })
            .collect()
    }

    /// The result rows of firing sessions: their rows gathered, one group per session. The
    /// values of session `g`'s rows read back from the state table are `taken_values`' rows
    /// `ranges[g]`; `bare_keys` has a row for each session with no row in memory.
    fn results(
        &self,
        firing: &[(usize, Session)],
        ranges: &[Range<usize>],
        bare_keys: &[ArrayRef],
        taken_values: &[ArrayRef],
    ) -> Result<RecordBatch> {
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let mut firsts: Vec<(usize, usize)> = Vec::new();
        let mut groups: Vec<usize> = Vec::new();
        let mut bare = 0;
        for (g, ((_, s), range)) in firing.iter().zip(ranges).enumerate() {
            firsts.push(match s.rows.first() {
                Some(&r) => unpack(r),
                None => {
                    bare += 1;
                    (TAKEN, bare - 1)
                }
            });
            for &r in &s.rows {
                picks.push(unpack(r));
                groups.push(g);
            }
            for i in range.clone() {
                picks.push((TAKEN, i));
                groups.push(g);
            }
        }
        let nkeys = self.f.keys.len();
        let keys = self.gather(&firsts, 0..nkeys, bare_keys)?;
        let values = self.gather(&picks, nkeys..nkeys + self.values, taken_values)?;
        let n = firing.len();
        let mut results = Vec::with_capacity(self.f.calls.len());
        let mut values = values.into_iter();
        for call in &self.f.calls {
            let args: Vec<ArrayRef> = values
                .by_ref()
                .take(call.function.expressions().len())
                .collect();
            let filter = match call.filter {
                Some(_) => values.next().map(|f| f.as_boolean().clone()),
                None => None,
            };
            let mut acc = accumulator(call)?;
            acc.update_batch(&args, &groups, filter.as_ref(), n)?;
            results.push(acc.evaluate(EmitTo::All)?);
        }
        let time = |f: &dyn Fn(&Session) -> i64, field: &Field| -> Result<ArrayRef> {
            let v: Int64Array = firing.iter().map(|(_, s)| Some(f(s))).collect();
            Ok(cast(&v, field.data_type())?)
        };
        let mut columns = Vec::with_capacity(self.f.outputs.len());
        for (o, field) in self.f.outputs.iter().zip(self.f.output.fields()) {
            columns.push(match *o {
                WindowOutput::Key(k) => keys[k].clone(),
                WindowOutput::WindowStart => time(&|s| s.start, field)?,
                WindowOutput::WindowEnd => time(&|s| s.end, field)?,
                WindowOutput::WindowTime => time(&|s| s.end - 1, field)?,
                WindowOutput::Aggregate(a) => results[a].clone(),
            });
        }
        Ok(RecordBatch::try_new(self.f.output.clone(), columns)?)
    }
}

impl Operator for SessionAggregate {
    fn name(&self) -> &str {
        "SessionWindowAggregate"
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        if let Some(now) = self.f.time.clock() {
            self.fire(now, out)?;
        }
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let (keys, rest) = self.columns(&batch)?;
        let times = self.f.time.row_times(&batch)?;
        let time = times.as_primitive::<Int64Type>();
        let mut key_ids = std::mem::take(&mut self.key_ids);
        self.keys.intern(&keys, rows, &mut key_ids)?;
        if self.sessions.len() < self.keys.len() {
            self.sessions.resize_with(self.keys.len(), Vec::new);
        }
        let b = self.stored.len();
        let mut live = 0;
        let mut late = 0u64;
        for (i, &key) in key_ids.iter().enumerate() {
            // A row without a time has no session.
            if time.is_null(i) || !self.assign(key, time.value(i), row_ref(b, i)) {
                late += 1;
            } else {
                live += 1;
            }
        }
        self.key_ids = key_ids;
        super::count_late(ctx, &mut self.late_rows, late);
        let mut columns = keys;
        columns.extend(rest);
        columns.push(times);
        if live > 0 {
            self.held.add(rows, &columns);
        }
        self.stored
            .push((live > 0).then_some(Stored { columns, live }));
        if self.held.rows > self.f.buffer_rows as u64 {
            self.spill(ctx)?;
        }
        Ok(())
    }

    /// A checkpoint barrier: the kept rows go to the state table, so that a snapshot of the
    /// table is the whole state.
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
        if let Some(now) = self.f.time.clock() {
            self.fire(now, out)?;
        } else if let Watermark::EventTime(t) = wm {
            self.watermark = Some(t);
            self.fire(t, out)?;
        }
        out.emit(Message::Watermark(wm))
    }

    /// The rows in memory, with the keys and the sessions' row lists over them (a row
    /// reference per held row, counted rather than walked), and the rows written out.
    fn state_size(&self) -> Option<StateSize> {
        let lists = self.held.rows as usize * size_of::<RowRef>();
        Some(self.held.size(self.keys.memory_size() + lists) + self.store.size())
    }

    fn on_end(&mut self, ctx: &mut OperatorContext, out: &mut dyn Output) -> Result<()> {
        self.fire(i64::MAX, out)?;
        super::note_late_rows(ctx, self.name(), self.late_rows);
        Ok(())
    }

    fn checkpointable(&self) -> bool {
        true
    }

    /// After the barrier every open session's rows are in the table: the sessions' bounds
    /// and where their keys' rows are make the rest.
    fn snapshot_state(
        &mut self,
        checkpoint_id: CheckpointId,
        _ctx: &mut OperatorContext,
    ) -> Result<OperatorSnapshot> {
        let mut keys = Vec::new();
        for (id, list) in self.sessions.iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            if list.iter().any(|s| !s.rows.is_empty()) {
                return Err(Error::internal("session rows outlived their barrier"));
            }
            let stored = self
                .stored_keys
                .get(id)
                .and_then(Option::as_ref)
                .ok_or_else(|| Error::internal("an open session has no rows in the state table"))?;
            let (key_group, key) = stored.saved();
            keys.push(SavedKey {
                key_group,
                key,
                sessions: list.iter().map(|s| (s.start, s.end, s.written)).collect(),
            });
        }
        let (store, table) = self.store.snapshot(checkpoint_id)?;
        let saved = Saved {
            watermark: self.watermark,
            store,
            keys,
        };
        Ok(OperatorSnapshot {
            state: crate::checkpoint::encode_saved(&saved)?,
            tables: table.into_iter().collect(),
        })
    }

    /// Every old subtask's open sessions of keys in this subtask's key groups; the watermark
    /// is the lowest of the old subtasks'.
    fn restore_state(&mut self, restored: RestoredState, ctx: &mut OperatorContext) -> Result<()> {
        let saved: Vec<Saved> = crate::checkpoint::decode_saved(&restored.all_states, self.name())?;
        self.watermark = super::lowest_watermark(saved.iter().map(|s| s.watermark));
        let (stores, keys): (Vec<_>, Vec<_>) = saved.into_iter().map(|s| (s.store, s.keys)).unzip();
        let mut keys: Vec<SavedKey> = keys.into_iter().flatten().collect();
        let range = self.store.restore(stores, &restored.tables, ctx)?;
        keys.retain(|k| range.contains(k.key_group));
        if keys.is_empty() {
            return Ok(());
        }
        let stored: Vec<StoredKey> = keys
            .iter()
            .map(|k| StoredKey::from_saved(k.key_group, k.key.clone()))
            .collect();
        let columns = self.store.decode_keys(&stored.iter().collect::<Vec<_>>())?;
        let mut ids = Vec::new();
        self.keys.intern(&columns, stored.len(), &mut ids)?;
        let n = self.keys.len();
        self.sessions.resize_with(n, Vec::new);
        self.stored_keys.resize_with(n, || None);
        for ((saved, stored), &id) in keys.into_iter().zip(stored).zip(&ids) {
            for &(start, end, written) in &saved.sessions {
                self.due.insert((end, id as u32));
                self.sessions[id].push(Session {
                    start,
                    end,
                    rows: Vec::new(),
                    written,
                });
            }
            self.stored_keys[id] = Some(stored);
        }
        Ok(())
    }
}
