//! Lookup join: `JOIN t FOR SYSTEM_TIME AS OF s.proc_time ON …`, each stream row enriched
//! with the rows of a bounded table that match its key at the time it arrives (Flink's
//! processing-time temporal join against a lookup source).
//!
//! Every subtask loads the table whole on its first batch, as Flink's filesystem lookup does:
//! the table's rows that pass the query's conditions on the table alone, in one batch, its keys interned into groups, per group its rows. It is
//! loaded again on the first batch after `reload_after_ms` (`lookup.join.cache.ttl`). Stream
//! rows keep no state; each batch is probed as a whole (one hash lookup per row), the pairs are
//! gathered with `take`, the rest of the condition runs over all pairs at once, and for a LEFT
//! join rows left without a match are padded with nulls. Row kinds pass through, so an
//! updating stream stays updating.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, filter_record_batch, take};
use arrow::datatypes::SchemaRef;
use datafusion_physical_expr::PhysicalExpr;

use gemini_state::StateSize;

use crate::changelog::{split_row_kinds, with_row_kinds};
use crate::operator::{
    Operator, OperatorContext, OperatorFactory, Output, SourceFactory, SourcePoll,
};
use crate::ops::group_keys::{join_keys, key_names, keys_valid, paired_schema, GroupKeys};
use crate::ops::window::nulls_false;
use crate::ops::{evaluate, HeldRows};
use crate::types::wall_clock_ms;
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct LookupJoinFactory {
    /// The looked-up table's name, for messages.
    pub table_name: String,
    /// A bounded source of the table's columns the query reads.
    pub table: Arc<dyn SourceFactory>,
    /// The table's columns as the source gives them.
    pub table_schema: SchemaRef,
    /// Conditions on the table's rows alone: rows failing them are not kept.
    pub table_filter: Option<Arc<dyn PhysicalExpr>>,
    /// Key expressions over the stream's rows, and the table's key columns they must equal.
    pub stream_keys: Vec<Arc<dyn PhysicalExpr>>,
    pub table_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Names and types of the keys (both sides' keys are cast to these).
    pub key_schema: SchemaRef,
    /// The stream's columns, without an op column.
    pub stream_schema: SchemaRef,
    /// Conditions besides key equality, over the stream's columns followed by the table's.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// LEFT JOIN: stream rows without a match are kept, padded with nulls.
    pub left_outer: bool,
    /// The result's columns (stream's, then table's; the op column, if any, follows).
    pub output: SchemaRef,
    /// Load the table again after this long (`lookup.join.cache.ttl`); `None`: never.
    pub reload_after_ms: Option<i64>,
}

impl OperatorFactory for LookupJoinFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        Ok(Box::new(LookupJoin {
            paired: paired_schema(&self.stream_schema, &self.table_schema),
            f: self.clone(),
            loaded: None,
            groups: Vec::new(),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "{} lookup join on table {}, keys {:?}{}",
            if self.left_outer { "left" } else { "inner" },
            self.table_name,
            key_names(&self.key_schema),
            if self.filter.is_some() {
                ", with a condition"
            } else {
                ""
            }
        )
    }
}

/// The table as loaded: its rows, and per key group the rows holding that key.
struct Loaded {
    rows: RecordBatch,
    keys: GroupKeys,
    index: Vec<Vec<u32>>,
    at_ms: i64,
    held: HeldRows,
}

struct LookupJoin {
    f: LookupJoinFactory,
    /// The schema the condition reads: stream columns, then table ones.
    paired: SchemaRef,
    loaded: Option<Loaded>,
    groups: Vec<usize>,
}

impl LookupJoin {
    /// Reads the whole table through its source.
    fn load(&self, ctx: &mut OperatorContext) -> Result<Loaded> {
        let mut source = self.f.table.create(0, 1)?;
        let mut batches = Vec::new();
        loop {
            match source.poll_next(ctx)? {
                SourcePoll::Batch(b) => batches.push(b),
                SourcePoll::Pending => continue,
                SourcePoll::End => break,
                SourcePoll::Idle => {
                    return Err(Error::user(format!(
                        "lookup table '{}' is waiting for more rows: a lookup join needs a \
                         bounded table",
                        self.f.table_name
                    )))
                }
            }
        }
        let mut rows = concat_batches(&self.f.table_schema, &batches)?;
        if let Some(cond) = &self.f.table_filter {
            rows = filter_record_batch(&rows, &nulls_false(evaluate(cond, &rows)?.as_boolean()))?;
        }
        let keys = join_keys(&self.f.table_keys, &self.f.key_schema, &rows)?;
        let valid = keys_valid(&keys)?;
        let mut groups = Vec::new();
        let mut interned = GroupKeys::new(self.f.key_schema.clone())?;
        interned.intern(&keys, rows.num_rows(), &mut groups)?;
        let mut index: Vec<Vec<u32>> = vec![Vec::new(); interned.len()];
        for (r, &g) in groups.iter().enumerate() {
            // A null key equals nothing.
            if valid.as_ref().is_none_or(|v| v.value(r)) {
                index[g].push(r as u32);
            }
        }
        let mut held = HeldRows::default();
        held.add(rows.num_rows(), rows.columns());
        Ok(Loaded {
            rows,
            keys: interned,
            index,
            at_ms: wall_clock_ms(),
            held,
        })
    }

    /// Loads the table if it is not loaded yet or its time is up.
    fn ensure_loaded(&mut self, ctx: &mut OperatorContext) -> Result<()> {
        let stale = match (&self.loaded, self.f.reload_after_ms) {
            (None, _) => true,
            (Some(l), Some(ttl)) => wall_clock_ms().saturating_sub(l.at_ms) >= ttl,
            (Some(_), None) => false,
        };
        if stale {
            self.loaded = Some(self.load(ctx)?);
        }
        Ok(())
    }
}

impl Operator for LookupJoin {
    fn name(&self) -> &str {
        "LookupJoin"
    }

    /// The dimension table is read again on a restore: nothing to save.
    fn checkpointable(&self) -> bool {
        true
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
        let (data, ops) = split_row_kinds(batch)?;
        let keys = join_keys(&self.f.stream_keys, &self.f.key_schema, &data)?;
        let valid = keys_valid(&keys)?;
        let mut groups = std::mem::take(&mut self.groups);
        self.ensure_loaded(ctx)?;
        let table = self.loaded.as_mut().expect("just loaded");
        table.keys.lookup(&keys, data.num_rows(), &mut groups)?;
        let table = &*table;
        let (mut rows, mut found) = (Vec::new(), Vec::new());
        for (i, &g) in groups.iter().enumerate() {
            if g == GroupKeys::ABSENT || valid.as_ref().is_some_and(|v| !v.value(i)) {
                continue;
            }
            for &r in &table.index[g] {
                rows.push(i as u32);
                found.push(r);
            }
        }
        self.groups = groups;
        let (mut rows, mut found) = (UInt32Array::from(rows), UInt32Array::from(found));
        let gather = |rows: &UInt32Array, found: &UInt32Array| -> Result<Vec<ArrayRef>> {
            let mut columns = Vec::with_capacity(self.paired.fields().len());
            for c in data.columns() {
                columns.push(take(c, rows, None)?);
            }
            for c in table.rows.columns() {
                columns.push(if table.rows.num_rows() == 0 {
                    new_null_array(c.data_type(), found.len())
                } else {
                    take(c, found, None)?
                });
            }
            Ok(columns)
        };
        if let Some(cond) = &self.f.filter {
            if !rows.is_empty() {
                let paired = RecordBatch::try_new(self.paired.clone(), gather(&rows, &found)?)?;
                let keep = nulls_false(evaluate(cond, &paired)?.as_boolean());
                let (r, f): (Vec<u32>, Vec<u32>) = (0..keep.len())
                    .filter(|&p| keep.value(p))
                    .map(|p| (rows.value(p), found.value(p)))
                    .unzip();
                (rows, found) = (UInt32Array::from(r), UInt32Array::from(f));
            }
        }
        if self.f.left_outer {
            // Each stream row once at least: its matches, or itself with nulls.
            let mut r = Vec::with_capacity(rows.len());
            let mut f: Vec<Option<u32>> = Vec::with_capacity(rows.len());
            let mut p = 0;
            for i in 0..data.num_rows() as u32 {
                let start = p;
                while p < rows.len() && rows.value(p) == i {
                    r.push(i);
                    f.push(Some(found.value(p)));
                    p += 1;
                }
                if p == start {
                    r.push(i);
                    f.push(None);
                }
            }
            (rows, found) = (UInt32Array::from(r), UInt32Array::from(f));
        }
        if rows.is_empty() {
            return Ok(());
        }
        let joined = RecordBatch::try_new(self.f.output.clone(), gather(&rows, &found)?)?;
        out.batch(match ops {
            Some(ops) => with_row_kinds(joined, take(&ops, &rows, None)?)?,
            None => joined,
        })
    }

    /// The loaded table (a cache of the table, as Flink's lookup cache).
    fn state_size(&self) -> Option<StateSize> {
        self.loaded
            .as_ref()
            .map(|l| l.held.size(l.keys.memory_size() + l.rows.num_rows() * 4))
    }
}

#[cfg(test)]
#[path = "lookup_join_tests.rs"]
mod tests;
