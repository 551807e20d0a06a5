//! Unbounded group aggregation (`GROUP BY` without a window), Flink's `GroupAggregate`.
//!
//! Its result is a changelog: the first row of a group inserts the group's result (+I); later
//! rows replace it, retracting the old result before sending the new (-U, +U); a group whose
//! rows are all retracted is deleted (-D). An input batch is folded as a whole before anything
//! is sent, so a group touched by many rows of a batch changes once (Flink's mini-batch, one
//! batch at a time), and a group whose result did not change sends nothing.
//!
//! The input may itself be updating (an aggregate over an aggregate): +I and +U rows add to
//! their group, -U and -D rows take away, and a retraction reaching a group with no rows is
//! ignored, as in Flink.

mod accumulators;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int8Array, RecordBatch, UInt32Array};
use arrow::compute::kernels::boolean::or;
use arrow::compute::kernels::cmp::distinct;
use arrow::compute::{cast, concat, take};
use arrow::datatypes::{DataType, Int8Type, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;
use gemini_state::StateSize;

use accumulators::{accumulator, GroupAccumulator};
pub use accumulators::{canonical_arg, AggregateKind};

use crate::changelog::{is_accumulate, split_row_kinds, with_row_kinds};
use crate::operator::{Operator, OperatorContext, OperatorFactory, Output};
use crate::ops::evaluate;
use crate::ops::group_keys::GroupKeys;
use crate::ops::key_ttl::{describe_ttl, KeyTtl};
use crate::types::RowKind;
use crate::Result;

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
            units,
            outputs,
            row_counts: Vec::new(),
            emitted: Vec::new(),
            stamp: Vec::new(),
            batches: 0,
            groups: Vec::new(),
            ttl: KeyTtl::new(self.state_ttl_ms),
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
            "group by [{}] aggregate [{}]{}{}",
            keys.join(", "),
            calls.join(", "),
            if self.retracting {
                " (retracting input)"
            } else {
                ""
            },
            describe_ttl(self.state_ttl_ms)
        )
    }
}

struct GroupAggregate {
    f: GroupAggregateFactory,
    keys: GroupKeys,
    units: Vec<Unit>,
    /// Per call: its unit and the unit's output.
    outputs: Vec<(usize, usize)>,
    /// Rows each group holds (added minus retracted).
    row_counts: Vec<i64>,
    /// Whether the group's result has been sent (and not deleted since).
    emitted: Vec<bool>,
    /// The batch that last touched each group, to list a batch's groups once.
    stamp: Vec<u32>,
    batches: u32,
    groups: Vec<usize>,
    ttl: Option<KeyTtl>,
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

impl Operator for GroupAggregate {
    fn name(&self) -> &str {
        "GroupAggregate"
    }

    fn on_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut dyn Output,
    ) -> Result<()> {
        let (batch, ops) = split_row_kinds(batch)?;
        let rows = batch.num_rows();
        let mut groups = std::mem::take(&mut self.groups);
        let key_columns = self.keys.intern_batch(&self.f.keys, &batch, &mut groups)?;
        let n = self.keys.len();
        self.row_counts.resize(n, 0);
        self.emitted.resize(n, false);
        self.stamp.resize(n, 0);
        self.batches = self.batches.wrapping_add(1).max(1);

        // The groups this batch touches, once each, with the first row of each (its keys).
        let (mut touched, mut first_rows) = (Vec::new(), Vec::new());
        for (i, &g) in groups.iter().enumerate() {
            if self.stamp[g] != self.batches {
                self.stamp[g] = self.batches;
                touched.push(g);
                first_rows.push(i as u32);
            }
        }
        let expired = match &mut self.ttl {
            None => Vec::new(),
            Some(ttl) => {
                let mut expired = ttl.start_batch(n);
                for &g in &touched {
                    if ttl.expired(g) {
                        expired.push(g);
                    }
                    ttl.written(g);
                }
                expired
            }
        };
        for g in expired {
            self.clear(g);
        }
        let any_emitted = touched.iter().any(|&g| self.emitted[g]);
        let old = if any_emitted {
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
        self.groups = groups;
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
