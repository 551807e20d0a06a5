//! OVER aggregation: `AGG(x) OVER (PARTITION BY k ORDER BY o ROWS BETWEEN n PRECEDING AND
//! CURRENT ROW)` (or `UNBOUNDED PRECEDING`), over an input that may retract rows: every input
//! row is output with the aggregate of its frame, and when a row enters or leaves a partition
//! the rows after it whose frames change are retracted and sent again. Flink runs OVER windows
//! over insert-only input only (FLINK-19059, which keeps it from running Nexmark q6); here the
//! result is a retract changelog either way.
//!
//! Each partition keeps its rows sorted by the ORDER BY columns' memcomparable bytes, ties in
//! arrival order, with the rows' own bytes (arrow-row) and the aggregates' argument values. A
//! batch is folded per partition: the first position the batch changes is found on the old
//! rows, the outputs from there on are computed before and after the changes, and only their
//! difference is sent (-D, then +I). Rows arriving in ORDER BY order change nothing before
//! them, so they cost one +I each.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array, Int8Array, RecordBatch};
use arrow::compute::{cast, SortOptions};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use arrow::row::RowConverter;
use datafusion_physical_expr::PhysicalExpr;
use gemini_state::StateSize;

use crate::changelog::{accumulates, split_row_kinds, with_row_kinds};
use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::ops::group_keys::GroupKeys;
use crate::ops::key_ttl::{describe_ttl, KeyTtl};
use crate::ops::{evaluate, whole_row_converter, SortKeys};
use crate::types::RowKind;
use crate::{Error, Result};

/// The aggregate functions an OVER window computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFunction {
    Count,
    Sum,
    /// Of integers, the quotient truncated as Flink's AVG of an integer type.
    Avg,
    Min,
    Max,
}

#[derive(Debug, Clone)]
pub struct OverCall {
    pub function: OverFunction,
    /// The argument; `None` for COUNT(*).
    pub arg: Option<Arc<dyn PhysicalExpr>>,
    /// Rows before the current one in the frame; `None` for UNBOUNDED PRECEDING.
    pub preceding: Option<usize>,
}

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
        Ok(Box::new(OverAggregate {
            keys: GroupKeys::new(self.key_schema.clone())?,
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
            .map(|c| {
                let frame = c
                    .preceding
                    .map_or("UNBOUNDED".to_string(), |n| n.to_string());
                format!("{:?} over {frame} preceding rows", c.function)
            })
            .collect();
        format!(
            "over aggregate: {}{}",
            calls.join(", "),
            describe_ttl(self.state_ttl_ms)
        )
    }
}

/// An argument value: integers exactly, other numbers as doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(v) => v as f64,
            Num::Float(v) => v,
        }
    }

    fn bits(v: Option<Num>) -> u128 {
        match v {
            None => u128::MAX,
            Some(Num::Int(i)) => i as u128,
            Some(Num::Float(f)) => f.to_bits() as u128,
        }
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

struct OverAggregate {
    f: OverAggregateFactory,
    keys: GroupKeys,
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
        match call.preceding {
            None => {
                let mut running = Accumulator::default();
                for (i, e) in entries.iter().enumerate() {
                    running.add(e.args[c]);
                    if i >= from {
                        out[i - from].push(running.value(call.function));
                    }
                }
            }
            Some(n) => {
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

/// One aggregate folded over a frame's argument values (`None`: a null argument, which every
/// function skips; COUNT(*)'s argument is a constant). Count, sum, minimum and maximum are
/// kept together, so one fold serves every function; `value` picks one.
#[derive(Default)]
struct Accumulator {
    count: i128,
    sum: Option<Num>,
    min: Option<Num>,
    max: Option<Num>,
}

impl Accumulator {
    fn add(&mut self, v: Option<Num>) {
        let Some(v) = v else { return };
        self.count += 1;
        self.sum = Some(match (self.sum, v) {
            (None, v) => v,
            (Some(Num::Int(a)), Num::Int(b)) => Num::Int(a + b),
            (Some(a), b) => Num::Float(a.as_f64() + b.as_f64()),
        });
        if self.min.is_none_or(|m| v.as_f64() < m.as_f64()) {
            self.min = Some(v);
        }
        if self.max.is_none_or(|m| v.as_f64() > m.as_f64()) {
            self.max = Some(v);
        }
    }

    fn value(&self, function: OverFunction) -> Option<Num> {
        match function {
            OverFunction::Count => Some(Num::Int(self.count)),
            OverFunction::Sum => self.sum,
            OverFunction::Avg => self.sum.map(|s| match s {
                Num::Int(s) => Num::Int(s / self.count),
                Num::Float(s) => Num::Float(s / self.count as f64),
            }),
            OverFunction::Min => self.min,
            OverFunction::Max => self.max,
        }
    }
}

impl OverAggregate {
    /// The argument values of every call, per row.
    fn arguments(&self, data: &RecordBatch) -> Result<Vec<Vec<Option<Num>>>> {
        let n = data.num_rows();
        let mut per_call = Vec::with_capacity(self.f.calls.len());
        for call in &self.f.calls {
            let Some(arg) = &call.arg else {
                per_call.push(vec![Some(Num::Int(1)); n]);
                continue;
            };
            let v = evaluate(arg, data)?;
            let values: Vec<Option<Num>> = if v.data_type().is_integer() {
                let ints = cast(&v, &DataType::Int64)?;
                ints.as_primitive::<Int64Type>()
                    .iter()
                    .map(|x| x.map(|x| Num::Int(x as i128)))
                    .collect()
            } else if v.data_type().is_numeric() {
                let floats = cast(&v, &DataType::Float64)?;
                floats
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|x| x.map(Num::Float))
                    .collect()
            } else {
                return Err(Error::user(format!(
                    "an OVER aggregate of type {} is not supported yet: numbers only",
                    v.data_type()
                )));
            };
            per_call.push(values);
        }
        Ok(per_call)
    }

    /// An output column of `values` as the call's result type.
    fn column(&self, call: usize, values: &[Option<Num>]) -> Result<ArrayRef> {
        let field = self.f.output.field(self.f.input.fields().len() + call);
        let ints = values.iter().all(|v| !matches!(v, Some(Num::Float(_))));
        let array: ArrayRef = if ints && field.data_type().is_integer() {
            Arc::new(Int64Array::from_iter(values.iter().map(|v| {
                v.and_then(|v| match v {
                    Num::Int(i) => i64::try_from(i).ok(),
                    Num::Float(f) => Some(f as i64),
                })
            })))
        } else {
            Arc::new(Float64Array::from_iter(
                values.iter().map(|v| v.map(Num::as_f64)),
            ))
        };
        Ok(cast(&array, field.data_type())?)
    }
}

impl Operator for OverAggregate {
    fn name(&self) -> &str {
        "OverAggregate"
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
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
        let args = self.arguments(&data)?;

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
                for e in std::mem::take(&mut self.partitions[g]) {
                    self.bytes -= (e.order.len() + e.row.len()) as u64;
                    self.entries -= 1;
                }
            }
        }

        let (mut gone, mut came): (Vec<Result_>, Vec<Result_>) = (Vec::new(), Vec::new());
        for g in touched {
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
            columns.push(self.column(c, &values)?);
        }
        let batch = RecordBatch::try_new(self.f.output.clone(), columns)?;
        out.batch(with_row_kinds(batch, Arc::new(Int8Array::from(kinds)))?)
    }

    fn state_size(&self) -> Option<StateSize> {
        Some(StateSize {
            entries: self.entries,
            bytes: self.bytes + self.keys.memory_size() as u64,
        })
    }
}

#[cfg(test)]
#[path = "over_agg_tests.rs"]
mod tests;
