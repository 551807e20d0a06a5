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
use arrow::datatypes::{DataType, Float64Type, Int64Type, Int8Type, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion_physical_expr::PhysicalExpr;
use gemini_state::StateSize;

use crate::changelog::{is_accumulate, split_row_kinds, with_row_kinds};
use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::ops::evaluate;
use crate::ops::group_keys::GroupKeys;
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
}

impl OperatorFactory for OverAggregateFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Operator>> {
        let order_fields = self
            .order
            .iter()
            .map(|(e, o)| Ok(SortField::new_with_options(e.data_type(&self.input)?, *o)))
            .collect::<Result<Vec<_>>>()?;
        let row_fields = self
            .input
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(Box::new(OverAggregate {
            keys: GroupKeys::new(self.key_schema.clone())?,
            order: (!order_fields.is_empty())
                .then(|| RowConverter::new(order_fields))
                .transpose()?,
            rows: RowConverter::new(row_fields)?,
            f: self.clone(),
            partitions: Vec::new(),
            seq: 0,
            groups: Vec::new(),
            bytes: 0,
            entries: 0,
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
        format!("over aggregate: {}", calls.join(", "))
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
    order: Option<RowConverter>,
    rows: RowConverter,
    /// Per partition, its rows in ORDER BY order.
    partitions: Vec<Vec<Entry>>,
    /// Arrival number of the next row, the tie-breaker.
    seq: u64,
    groups: Vec<usize>,
    bytes: u64,
    entries: u64,
}

/// The values of `calls` for the frames of rows `from..` of `entries`.
fn frame_values(entries: &[Entry], calls: &[OverCall], from: usize) -> Vec<Vec<Option<Num>>> {
    (from..entries.len())
        .map(|i| {
            calls
                .iter()
                .enumerate()
                .map(|(c, call)| {
                    let lo = call.preceding.map_or(0, |n| i.saturating_sub(n));
                    aggregate(call.function, entries[lo..=i].iter().map(|e| e.args[c]))
                })
                .collect()
        })
        .collect()
}

/// One aggregate over a frame's argument values (`None` for a null argument; COUNT(*)'s
/// argument is a constant).
fn aggregate(function: OverFunction, values: impl Iterator<Item = Option<Num>>) -> Option<Num> {
    let mut count: i128 = 0;
    let mut acc: Option<Num> = None;
    for v in values.flatten() {
        count += 1;
        acc = Some(match (function, acc, v) {
            (_, None, v) => v,
            (OverFunction::Sum | OverFunction::Avg, Some(Num::Int(a)), Num::Int(b)) => {
                Num::Int(a + b)
            }
            (OverFunction::Sum | OverFunction::Avg, Some(a), b) => {
                Num::Float(a.as_f64() + b.as_f64())
            }
            (OverFunction::Min, Some(a), b) => {
                if b.as_f64() < a.as_f64() {
                    b
                } else {
                    a
                }
            }
            (OverFunction::Max, Some(a), b) => {
                if b.as_f64() > a.as_f64() {
                    b
                } else {
                    a
                }
            }
            (OverFunction::Count, Some(a), _) => a,
        });
    }
    match function {
        OverFunction::Count => Some(Num::Int(count)),
        OverFunction::Avg => acc.map(|s| match s {
            Num::Int(s) => Num::Int(s / count),
            Num::Float(s) => Num::Float(s / count as f64),
        }),
        _ => acc,
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
        let accumulate: Vec<bool> = match &ops {
            Some(ops) => {
                let ops = ops.as_primitive::<Int8Type>();
                (0..n).map(|i| is_accumulate(ops.value(i))).collect()
            }
            None => vec![true; n],
        };
        let mut groups = std::mem::take(&mut self.groups);
        self.keys
            .intern_batch(&self.f.partition, &data, &mut groups)?;
        if self.partitions.len() < self.keys.len() {
            self.partitions.resize_with(self.keys.len(), Vec::new);
        }
        let order = match &self.order {
            Some(c) => {
                let cols = self
                    .f
                    .order
                    .iter()
                    .map(|(e, _)| evaluate(e, &data))
                    .collect::<Result<Vec<_>>>()?;
                Some(c.convert_columns(&cols)?)
            }
            None => None,
        };
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

        let (mut gone, mut came): (Vec<Result_>, Vec<Result_>) = (Vec::new(), Vec::new());
        for g in touched {
            let list = &per_partition[&g];
            let entries = &mut self.partitions[g];
            let order_of = |i: usize| order.as_ref().map_or(&[][..], |o| o.row(i).data());
            // Where the first change lands among the old rows: nothing before it changes.
            let first = list
                .iter()
                .map(|&i| {
                    let o = order_of(i);
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
                let o = order_of(i);
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
            let mut counts: HashMap<(&[u8], Vec<u128>), i64> = HashMap::new();
            for (row, values) in old.iter().zip(&before) {
                let bits = values.iter().map(|&v| Num::bits(v)).collect();
                *counts.entry((&**row, bits)).or_default() -= 1;
            }
            for (e, values) in entries[first..].iter().zip(&after) {
                let bits = values.iter().map(|&v| Num::bits(v)).collect();
                *counts.entry((&*e.row, bits)).or_default() += 1;
            }
            for (row, values) in old.iter().zip(before) {
                let bits: Vec<u128> = values.iter().map(|&v| Num::bits(v)).collect();
                if let Some(c) = counts.get_mut(&(&**row, bits)) {
                    if *c < 0 {
                        *c += 1;
                        gone.push((row.clone(), values));
                    }
                }
            }
            for (e, values) in entries[first..].iter().zip(after) {
                let bits: Vec<u128> = values.iter().map(|&v| Num::bits(v)).collect();
                if let Some(c) = counts.get_mut(&(&*e.row, bits)) {
                    if *c > 0 {
                        *c -= 1;
                        came.push((e.row.clone(), values));
                    }
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
