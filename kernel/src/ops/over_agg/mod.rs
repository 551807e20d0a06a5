//! OVER aggregation: `AGG(x) OVER (PARTITION BY k ORDER BY o <frame>)`, every input row output
//! with the aggregates of its frame. Two operators:
//!
//! - [`time_ordered`]: Flink's OVER window, ordered by a time attribute over an insert-only
//!   input; ROWS or RANGE frames; append-only output, each row sent once (for the rowtime,
//!   when the watermark passes it).
//! - [`retracting`]: any ORDER BY, over an input that may retract rows (Nexmark q6, which
//!   Flink cannot run); ROWS frames; a retract changelog.
//!
//! This module holds what both share: the functions, frames, argument values and folds.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, Schema};
use datafusion_physical_expr::PhysicalExpr;

use crate::ops::evaluate;
use crate::{Error, Result};

pub mod retracting;
pub mod time_ordered;

pub use retracting::OverAggregateFactory;
pub use time_ordered::{OverTime, TimeOverAggregateFactory};

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

/// Which rows before the current one a frame holds; it always ends at the current row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// `ROWS BETWEEN n PRECEDING` (`None`: UNBOUNDED): n rows before the current one.
    Rows(Option<usize>),
    /// `RANGE BETWEEN INTERVAL … PRECEDING` (`None`: UNBOUNDED), on a time attribute: rows
    /// at most this many milliseconds older, and every row of the current row's time.
    Range(Option<i64>),
}

impl std::fmt::Display for OverFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverFrame::Rows(None) => write!(f, "ROWS UNBOUNDED PRECEDING"),
            OverFrame::Rows(Some(n)) => write!(f, "ROWS {n} PRECEDING"),
            OverFrame::Range(None) => write!(f, "RANGE UNBOUNDED PRECEDING"),
            OverFrame::Range(Some(ms)) => write!(f, "RANGE {ms} ms PRECEDING"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OverCall {
    pub function: OverFunction,
    /// The argument; `None` for COUNT(*).
    pub arg: Option<Arc<dyn PhysicalExpr>>,
    pub frame: OverFrame,
}

/// An argument value: integers exactly (sums wrap on overflow, as Flink's BIGINT arithmetic),
/// other numbers as doubles.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
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
            Some(Num::Int(i)) => i as u64 as u128,
            Some(Num::Float(f)) => f.to_bits() as u128,
        }
    }

    fn add(a: Option<Num>, b: Num) -> Num {
        match (a, b) {
            (None, b) => b,
            (Some(Num::Int(a)), Num::Int(b)) => Num::Int(a.wrapping_add(b)),
            (Some(a), b) => Num::Float(a.as_f64() + b.as_f64()),
        }
    }

    /// Appends `v` to a checkpointed state: a tag (none, integer, double), then its bits.
    fn put(v: Option<Num>, buf: &mut Vec<u8>) {
        match v {
            None => buf.push(0),
            Some(Num::Int(i)) => {
                buf.push(1);
                buf.extend_from_slice(&i.to_le_bytes());
            }
            Some(Num::Float(f)) => {
                buf.push(2);
                buf.extend_from_slice(&f.to_bits().to_le_bytes());
            }
        }
    }

    /// The value [`Num::put`] wrote.
    fn get(r: &mut crate::checkpoint::ValueReader) -> Result<Option<Num>> {
        Ok(match r.u8()? {
            0 => None,
            1 => Some(Num::Int(r.i64()?)),
            2 => Some(Num::Float(f64::from_bits(r.u64()?))),
            t => {
                return Err(Error::user(format!(
                    "a checkpointed OVER argument has an unknown tag {t}"
                )))
            }
        })
    }

    fn sub(a: Num, b: Num) -> Num {
        match (a, b) {
            (Num::Int(a), Num::Int(b)) => Num::Int(a.wrapping_sub(b)),
            (a, b) => Num::Float(a.as_f64() - b.as_f64()),
        }
    }
}

/// `function`'s value from a frame's count of non-null arguments, their sum, minimum and
/// maximum.
fn value_of(
    function: OverFunction,
    count: i64,
    sum: Option<Num>,
    min: Option<Num>,
    max: Option<Num>,
) -> Option<Num> {
    match function {
        OverFunction::Count => Some(Num::Int(count)),
        OverFunction::Sum => sum,
        OverFunction::Avg => sum.map(|s| match s {
            Num::Int(s) => Num::Int(s / count),
            Num::Float(s) => Num::Float(s / count as f64),
        }),
        OverFunction::Min => min,
        OverFunction::Max => max,
    }
}

/// A call's argument over a batch, its type settled once per batch so that reading a row is a
/// plain index.
#[derive(Debug, Clone)]
enum ArgColumn {
    /// COUNT(*): every row counts.
    Rows,
    /// An integer argument, as BIGINT.
    Int(Int64Array),
    /// Another number, as DOUBLE.
    Float(Float64Array),
}

impl ArgColumn {
    fn of(array: &ArrayRef) -> Self {
        match array.data_type() {
            DataType::Int64 => ArgColumn::Int(array.as_primitive::<Int64Type>().clone()),
            _ => ArgColumn::Float(array.as_primitive::<Float64Type>().clone()),
        }
    }

    /// Row `i`; `None` is a null, which every function skips.
    fn at(&self, i: usize) -> Option<Num> {
        match self {
            ArgColumn::Rows => Some(Num::Int(1)),
            ArgColumn::Int(a) => a.is_valid(i).then(|| Num::Int(a.value(i))),
            ArgColumn::Float(a) => a.is_valid(i).then(|| Num::Float(a.value(i))),
        }
    }

    /// The values as an array (`None` for COUNT(*)).
    fn array(&self) -> Option<&dyn Array> {
        match self {
            ArgColumn::Rows => None,
            ArgColumn::Int(a) => Some(a),
            ArgColumn::Float(a) => Some(a),
        }
    }
}

/// Each call's argument over `data`.
fn argument_columns(calls: &[OverCall], data: &RecordBatch) -> Result<Vec<ArgColumn>> {
    calls
        .iter()
        .map(|call| {
            let Some(arg) = &call.arg else {
                return Ok(ArgColumn::Rows);
            };
            let v = evaluate(arg, data)?;
            let to = if v.data_type().is_integer() {
                DataType::Int64
            } else if v.data_type().is_numeric() {
                DataType::Float64
            } else {
                return Err(Error::user(format!(
                    "an OVER aggregate of type {} is not supported yet: numbers only",
                    v.data_type()
                )));
            };
            Ok(ArgColumn::of(&cast(&v, &to)?))
        })
        .collect()
}

/// The argument values of every call (outer) per row of `data` (inner).
fn arguments(calls: &[OverCall], data: &RecordBatch) -> Result<Vec<Vec<Option<Num>>>> {
    let n = data.num_rows();
    Ok(argument_columns(calls, data)?
        .iter()
        .map(|a| (0..n).map(|i| a.at(i)).collect())
        .collect())
}

/// Call `call`'s output column of `values`, typed as `output`'s field after the `input_width`
/// input columns.
fn result_column(
    output: &Schema,
    input_width: usize,
    call: usize,
    values: &[Option<Num>],
) -> Result<ArrayRef> {
    let field = output.field(input_width + call);
    let ints = values.iter().all(|v| !matches!(v, Some(Num::Float(_))));
    let array: ArrayRef = if ints && field.data_type().is_integer() {
        Arc::new(Int64Array::from_iter(values.iter().map(|v| {
            v.and_then(|v| match v {
                Num::Int(i) => Some(i),
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
