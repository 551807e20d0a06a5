//! Accumulators of an unbounded group aggregation, one value per group in flat vectors.
//!
//! Every update folds a whole batch: row `i` adds to (sign +1) or retracts from (sign −1)
//! group `groups[i]`; sign 0 skips the row (its FILTER failed, or it retracts from an empty
//! group). DataFusion's `GroupsAccumulator` cannot serve here: it has no retraction, and it
//! evaluates groups only by draining them, while an updating aggregate reports the groups a
//! batch touched and keeps them.
//!
//! MIN and MAX keep the best value per group for an insert-only input, and a multiset of the
//! values for an updating one (a retracted minimum needs the next). COUNT(DISTINCT x) keeps,
//! per (group, value), how many rows hold the value, one counter per FILTER sharing the
//! argument (Flink's shared distinct views), so q15's eight distinct counts cost two lookups a
//! row.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array, PrimitiveArray,
};
use arrow::compute::cast;
use arrow::datatypes::{ArrowPrimitiveType, DataType, Decimal128Type, Float64Type, Int64Type};
use arrow::row::{RowConverter, Rows, SortField};
use foldhash::fast::FixedState;
use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use crate::checkpoint::ValueReader;
use crate::ops::keyed_table::put_record;
use crate::{Error, Result};

/// What an aggregate call computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateKind {
    /// `COUNT(*)` without an argument, `COUNT(x)` with one (nulls not counted).
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// `COUNT(DISTINCT x)`.
    CountDistinct,
}

/// The state of one or more aggregate calls over every group.
pub(crate) trait GroupAccumulator: Send {
    /// Folds the rows of one batch: `args` are the evaluated arguments (one array, or none for
    /// `COUNT(*)`), `signs` the per-call signs (after the FILTER) of each output.
    fn update(&mut self, arg: Option<&ArrayRef>, groups: &[usize], signs: &[&[i8]]) -> Result<()>;

    /// Output `output`'s values for `groups`, in that order.
    fn evaluate(&self, output: usize, groups: &[usize]) -> Result<ArrayRef>;

    /// `group` holds no rows any more: its values start afresh.
    fn reset(&mut self, group: usize);

    /// Bytes held.
    fn memory_size(&self) -> usize;

    /// Appends the state of each of `groups` to its buffer `out[i]` (checkpoints).
    fn save(&self, groups: &[usize], out: &mut [Vec<u8>]);

    /// Sets the state of each of `groups` (holding none) from what [`save`](Self::save)
    /// wrote, reading on from `values[i]`.
    fn load(&mut self, groups: &[usize], values: &mut [ValueReader]) -> Result<()>;
}

/// The accumulator of `kind` over arguments of type `arg` (already in the canonical types of
/// [`canonical_arg`]); `outputs` calls share it (more than one only for `CountDistinct`).
/// `retracting`: the input has -U and -D rows. `output` is the result type of each call.
pub(crate) fn accumulator(
    kind: AggregateKind,
    arg: Option<&DataType>,
    outputs: usize,
    retracting: bool,
    output: &DataType,
) -> Result<Box<dyn GroupAccumulator>> {
    let unsupported = || {
        Error::user(format!(
            "{kind:?} over {} is not supported in an unbounded aggregation",
            arg.map_or("no argument".into(), |t| t.to_string())
        ))
    };
    Ok(match (kind, arg) {
        (AggregateKind::Count, _) => Box::new(Count { counts: Vec::new() }),
        (AggregateKind::Sum | AggregateKind::Avg, Some(t)) => {
            let values = match t {
                DataType::Int64 => Sums::Int(Vec::new()),
                DataType::Float64 => Sums::Float(Vec::new()),
                DataType::Decimal128(_, s) => Sums::Decimal(Vec::new(), *s),
                _ => return Err(unsupported()),
            };
            Box::new(SumAvg {
                avg: kind == AggregateKind::Avg,
                values,
                counts: Vec::new(),
                output: output.clone(),
            })
        }
        (AggregateKind::Min | AggregateKind::Max, Some(t)) => {
            let max = kind == AggregateKind::Max;
            match t {
                DataType::Int64 => Box::new(MinMax::<i64> {
                    max,
                    best: Vec::new(),
                    multisets: retracting.then(Vec::new),
                    codec: Codec::Int,
                    value_bytes: 0,
                }),
                _ => Box::new(MinMax::<Box<[u8]>> {
                    max,
                    best: Vec::new(),
                    multisets: retracting.then(Vec::new),
                    codec: Codec::bytes(t)?,
                    value_bytes: 0,
                }),
            }
        }
        (AggregateKind::CountDistinct, Some(t)) => match t {
            DataType::Int64 => Box::new(Distinct::<i64>::new(outputs, Codec::Int)),
            _ => Box::new(Distinct::<Box<[u8]>>::new(outputs, Codec::bytes(t)?)),
        },
        _ => return Err(unsupported()),
    })
}

/// The type an argument is accumulated in: integers as BIGINT, floats as DOUBLE; anything
/// else (decimals; strings and timestamps for MIN, MAX and DISTINCT) as it is.
pub fn canonical_arg(t: &DataType) -> DataType {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => DataType::Int64,
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        other => other.clone(),
    }
}

/// Grows a per-group vector to cover `groups`.
fn grow<T: Clone>(v: &mut Vec<T>, groups: &[usize], fill: T) {
    if let Some(&max) = groups.iter().max() {
        if max >= v.len() {
            v.resize(max + 1, fill);
        }
    }
}

struct Count {
    counts: Vec<i64>,
}

impl GroupAccumulator for Count {
    fn update(&mut self, arg: Option<&ArrayRef>, groups: &[usize], signs: &[&[i8]]) -> Result<()> {
        grow(&mut self.counts, groups, 0);
        let signs = signs[0];
        match arg.and_then(|a| a.logical_nulls()) {
            Some(valid) => {
                for (i, &g) in groups.iter().enumerate() {
                    if valid.is_valid(i) {
                        self.counts[g] += i64::from(signs[i]);
                    }
                }
            }
            None => {
                for (&g, &s) in groups.iter().zip(signs) {
                    self.counts[g] += i64::from(s);
                }
            }
        }
        Ok(())
    }

    fn evaluate(&self, _output: usize, groups: &[usize]) -> Result<ArrayRef> {
        let at = |g: usize| self.counts.get(g).copied().unwrap_or(0);
        Ok(Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|&g| at(g)),
        )))
    }

    fn reset(&mut self, group: usize) {
        if let Some(c) = self.counts.get_mut(group) {
            *c = 0;
        }
    }

    fn memory_size(&self) -> usize {
        self.counts.capacity() * 8
    }

    fn save(&self, groups: &[usize], out: &mut [Vec<u8>]) {
        for (&g, buf) in groups.iter().zip(out) {
            let c = self.counts.get(g).copied().unwrap_or(0);
            buf.extend_from_slice(&c.to_le_bytes());
        }
    }

    fn load(&mut self, groups: &[usize], values: &mut [ValueReader]) -> Result<()> {
        grow(&mut self.counts, groups, 0);
        for (&g, v) in groups.iter().zip(values) {
            self.counts[g] = v.i64()?;
        }
        Ok(())
    }
}

enum Sums {
    Int(Vec<i64>),
    Float(Vec<f64>),
    /// Sums and the argument's scale.
    Decimal(Vec<i128>, i8),
}

/// SUM and AVG: the sum and the count of non-null values per group (a group whose values were
/// all null, or all retracted, sums to NULL).
struct SumAvg {
    avg: bool,
    values: Sums,
    counts: Vec<i64>,
    output: DataType,
}

fn fold<T: ArrowPrimitiveType, A: Copy + Default>(
    sums: &mut Vec<A>,
    counts: &mut [i64],
    arg: &ArrayRef,
    groups: &[usize],
    signs: &[i8],
    add: impl Fn(A, T::Native, i8) -> A,
) {
    grow(sums, groups, A::default());
    let values: &PrimitiveArray<T> = arg.as_primitive();
    for (i, &g) in groups.iter().enumerate() {
        let s = signs[i];
        if s == 0 || values.is_null(i) {
            continue;
        }
        sums[g] = add(sums[g], values.value(i), s);
        counts[g] += i64::from(s);
    }
}

impl GroupAccumulator for SumAvg {
    fn update(&mut self, arg: Option<&ArrayRef>, groups: &[usize], signs: &[&[i8]]) -> Result<()> {
        let arg = arg.ok_or_else(|| Error::internal("SUM without an argument"))?;
        grow(&mut self.counts, groups, 0);
        let (counts, signs) = (&mut self.counts, signs[0]);
        match &mut self.values {
            Sums::Int(v) => fold::<Int64Type, i64>(v, counts, arg, groups, signs, |a, x, s| {
                if s > 0 {
                    a.wrapping_add(x)
                } else {
                    a.wrapping_sub(x)
                }
            }),
            Sums::Float(v) => fold::<Float64Type, f64>(v, counts, arg, groups, signs, |a, x, s| {
                a + f64::from(s) * x
            }),
            Sums::Decimal(v, _) => {
                fold::<Decimal128Type, i128>(v, counts, arg, groups, signs, |a, x, s| {
                    a + i128::from(s) * x
                })
            }
        }
        Ok(())
    }

    fn evaluate(&self, _output: usize, groups: &[usize]) -> Result<ArrayRef> {
        let count = |g: usize| self.counts.get(g).copied().unwrap_or(0);
        let out: ArrayRef = match &self.values {
            Sums::Int(v) if !self.avg => Arc::new(Int64Array::from_iter(
                groups.iter().map(|&g| (count(g) > 0).then(|| v[g])),
            )),
            // Flink's AVG of an integer type: the quotient in that type, truncated.
            Sums::Int(v) if self.output.is_integer() => Arc::new(Int64Array::from_iter(
                groups
                    .iter()
                    .map(|&g| (count(g) > 0).then(|| v[g] / count(g))),
            )),
            Sums::Int(v) => Arc::new(Float64Array::from_iter(
                groups
                    .iter()
                    .map(|&g| (count(g) > 0).then(|| v[g] as f64 / count(g) as f64)),
            )),
            Sums::Float(v) => Arc::new(Float64Array::from_iter(groups.iter().map(|&g| {
                (count(g) > 0).then(|| {
                    if self.avg {
                        v[g] / count(g) as f64
                    } else {
                        v[g]
                    }
                })
            }))),
            Sums::Decimal(v, scale) => {
                let (out_scale, precision) = match &self.output {
                    DataType::Decimal128(p, s) => (*s, *p),
                    _ => (*scale, 38),
                };
                let shift = 10i128.pow((out_scale - *scale).max(0) as u32);
                let values = groups.iter().map(|&g| {
                    let n = count(g);
                    (n > 0).then(|| {
                        if !self.avg {
                            return v[g];
                        }
                        // Half-up division, as Flink's DECIMAL AVG.
                        let scaled = v[g] * shift;
                        let n = i128::from(n);
                        let (q, r) = (scaled / n, scaled % n);
                        q + (2 * r.abs() >= n) as i128 * scaled.signum()
                    })
                });
                let scale = if self.avg { out_scale } else { *scale };
                Arc::new(
                    Decimal128Array::from_iter(values)
                        .with_precision_and_scale(precision, scale)?,
                )
            }
        };
        if out.data_type() == &self.output {
            Ok(out)
        } else {
            Ok(cast(&out, &self.output)?)
        }
    }

    fn reset(&mut self, group: usize) {
        if let Some(c) = self.counts.get_mut(group) {
            *c = 0;
        }
        match &mut self.values {
            Sums::Int(v) => v[group] = 0,
            Sums::Float(v) => v[group] = 0.0,
            Sums::Decimal(v, _) => v[group] = 0,
        }
    }

    fn memory_size(&self) -> usize {
        let sums = match &self.values {
            Sums::Int(v) => v.capacity() * 8,
            Sums::Float(v) => v.capacity() * 8,
            Sums::Decimal(v, _) => v.capacity() * 16,
        };
        sums + self.counts.capacity() * 8
    }

    fn save(&self, groups: &[usize], out: &mut [Vec<u8>]) {
        for (&g, buf) in groups.iter().zip(out) {
            let count = self.counts.get(g).copied().unwrap_or(0);
            match &self.values {
                Sums::Int(v) => {
                    buf.extend_from_slice(&v.get(g).copied().unwrap_or(0).to_le_bytes())
                }
                Sums::Float(v) => {
                    let sum = v.get(g).copied().unwrap_or(0.0);
                    buf.extend_from_slice(&sum.to_bits().to_le_bytes())
                }
                Sums::Decimal(v, _) => {
                    buf.extend_from_slice(&v.get(g).copied().unwrap_or(0).to_le_bytes())
                }
            }
            buf.extend_from_slice(&count.to_le_bytes());
        }
    }

    fn load(&mut self, groups: &[usize], values: &mut [ValueReader]) -> Result<()> {
        grow(&mut self.counts, groups, 0);
        match &mut self.values {
            Sums::Int(v) => grow(v, groups, 0),
            Sums::Float(v) => grow(v, groups, 0.0),
            Sums::Decimal(v, _) => grow(v, groups, 0),
        }
        for (&g, r) in groups.iter().zip(values) {
            match &mut self.values {
                Sums::Int(v) => v[g] = r.i64()?,
                Sums::Float(v) => v[g] = f64::from_bits(r.u64()?),
                Sums::Decimal(v, _) => v[g] = r.i128()?,
            }
            self.counts[g] = r.i64()?;
        }
        Ok(())
    }
}

/// How MIN, MAX and DISTINCT values are held: integers as themselves, anything else as
/// arrow-row bytes (memcomparable, so byte order is the SQL order).
enum Codec {
    Int,
    /// The converter, and the type it converts.
    Bytes(RowConverter, DataType),
}

impl Codec {
    fn bytes(t: &DataType) -> Result<Codec> {
        let converter = RowConverter::new(vec![SortField::new(t.clone())])?;
        Ok(Codec::Bytes(converter, t.clone()))
    }
}

/// A value type of [`Codec`].
trait Key: Ord + Hash + Eq + Clone + Send + 'static {
    /// The values of `arg`, `None` for nulls.
    fn read(codec: &Codec, arg: &ArrayRef) -> Result<Values>;
    fn at(values: &Values, i: usize) -> Option<Self>;
    fn write(codec: &Codec, keys: &[Option<&Self>]) -> Result<ArrayRef>;
    fn size(&self) -> usize;
    /// Appends the value to a checkpointed state.
    fn put(&self, buf: &mut Vec<u8>);
    /// The value [`put`](Key::put) wrote.
    fn get(r: &mut ValueReader) -> Result<Self>;
}

enum Values {
    Int(Int64Array),
    Bytes(Rows, Option<arrow::buffer::NullBuffer>),
}

impl Key for i64 {
    fn read(_codec: &Codec, arg: &ArrayRef) -> Result<Values> {
        Ok(Values::Int(arg.as_primitive::<Int64Type>().clone()))
    }

    fn at(values: &Values, i: usize) -> Option<Self> {
        match values {
            Values::Int(a) => a.is_valid(i).then(|| a.value(i)),
            Values::Bytes(..) => None,
        }
    }

    fn write(_codec: &Codec, keys: &[Option<&Self>]) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from_iter(
            keys.iter().map(|k| k.copied()),
        )))
    }

    fn size(&self) -> usize {
        8
    }

    fn put(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.to_le_bytes());
    }

    fn get(r: &mut ValueReader) -> Result<Self> {
        r.i64()
    }
}

impl Key for Box<[u8]> {
    fn read(codec: &Codec, arg: &ArrayRef) -> Result<Values> {
        let Codec::Bytes(conv, _) = codec else {
            return Err(Error::internal("byte values without a row converter"));
        };
        Ok(Values::Bytes(
            conv.convert_columns(std::slice::from_ref(arg))?,
            arg.logical_nulls(),
        ))
    }

    fn at(values: &Values, i: usize) -> Option<Self> {
        match values {
            Values::Bytes(rows, nulls) => nulls
                .as_ref()
                .is_none_or(|n| n.is_valid(i))
                .then(|| rows.row(i).as_ref().into()),
            Values::Int(_) => None,
        }
    }

    fn write(codec: &Codec, keys: &[Option<&Self>]) -> Result<ArrayRef> {
        let Codec::Bytes(conv, data_type) = codec else {
            return Err(Error::internal("byte values without a row converter"));
        };
        // Nulls go through the converter as the encoding of a null.
        let null = conv.convert_columns(&[arrow::array::new_null_array(data_type, 1)])?;
        let parser = conv.parser();
        let mut rows = conv.empty_rows(keys.len(), 0);
        for k in keys {
            match k {
                Some(bytes) => rows.push(parser.parse(bytes)),
                None => rows.push(null.row(0)),
            }
        }
        Ok(conv.convert_rows(&rows)?.remove(0))
    }

    fn size(&self) -> usize {
        self.len() + 16
    }

    fn put(&self, buf: &mut Vec<u8>) {
        put_record(buf, self);
    }

    fn get(r: &mut ValueReader) -> Result<Self> {
        Ok(r.sized()?.into())
    }
}

/// A multiset entry's bytes besides its value: the count.
const MULTISET_ENTRY: usize = 8;

struct MinMax<K: Key> {
    max: bool,
    /// The best value per group (insert-only input).
    best: Vec<Option<K>>,
    /// Value → rows holding it, per group (updating input).
    multisets: Option<Vec<BTreeMap<K, u64>>>,
    codec: Codec,
    /// Bytes of the values held, kept as they change (the runtime asks for the state size
    /// around every watermark, too often for a walk).
    value_bytes: usize,
}

impl<K: Key> GroupAccumulator for MinMax<K> {
    fn update(&mut self, arg: Option<&ArrayRef>, groups: &[usize], signs: &[&[i8]]) -> Result<()> {
        let arg = arg.ok_or_else(|| Error::internal("MIN/MAX without an argument"))?;
        let values = K::read(&self.codec, arg)?;
        let signs = signs[0];
        match &mut self.multisets {
            None => {
                grow(&mut self.best, groups, None);
                for (i, &g) in groups.iter().enumerate() {
                    if signs[i] <= 0 {
                        continue;
                    }
                    let Some(v) = K::at(&values, i) else { continue };
                    let better = match &self.best[g] {
                        None => true,
                        Some(b) => (v > *b) == self.max && v != *b,
                    };
                    if better {
                        self.value_bytes += v.size();
                        if let Some(old) = self.best[g].replace(v) {
                            self.value_bytes -= old.size();
                        }
                    }
                }
            }
            Some(sets) => {
                grow(sets, groups, BTreeMap::new());
                for (i, &g) in groups.iter().enumerate() {
                    let Some(v) = (signs[i] != 0).then(|| K::at(&values, i)).flatten() else {
                        continue;
                    };
                    if signs[i] > 0 {
                        let size = v.size() + MULTISET_ENTRY;
                        let n = sets[g].entry(v).or_insert(0);
                        if *n == 0 {
                            self.value_bytes += size;
                        }
                        *n += 1;
                    } else if let Some(n) = sets[g].get_mut(&v) {
                        *n -= 1;
                        if *n == 0 {
                            sets[g].remove(&v);
                            self.value_bytes -= v.size() + MULTISET_ENTRY;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn evaluate(&self, _output: usize, groups: &[usize]) -> Result<ArrayRef> {
        let keys: Vec<Option<&K>> = match &self.multisets {
            None => groups
                .iter()
                .map(|&g| self.best.get(g).and_then(|b| b.as_ref()))
                .collect(),
            Some(sets) => groups
                .iter()
                .map(|&g| {
                    let set = sets.get(g)?;
                    if self.max {
                        set.keys().next_back()
                    } else {
                        set.keys().next()
                    }
                })
                .collect(),
        };
        K::write(&self.codec, &keys)
    }

    fn reset(&mut self, group: usize) {
        if let Some(old) = self.best.get_mut(group).and_then(Option::take) {
            self.value_bytes -= old.size();
        }
        if let Some(s) = self.multisets.as_mut().and_then(|s| s.get_mut(group)) {
            self.value_bytes -= s.keys().map(|k| k.size() + MULTISET_ENTRY).sum::<usize>();
            s.clear();
        }
    }

    fn memory_size(&self) -> usize {
        let sets = self
            .multisets
            .as_ref()
            .map_or(0, |sets| sets.capacity() * 32);
        self.value_bytes + self.best.capacity() * size_of::<Option<K>>() + sets
    }

    /// Insert-only: a flag and the best value. Updating: the multiset's size, then each
    /// value and its count.
    fn save(&self, groups: &[usize], out: &mut [Vec<u8>]) {
        for (&g, buf) in groups.iter().zip(out) {
            match &self.multisets {
                None => match self.best.get(g).and_then(|b| b.as_ref()) {
                    None => buf.push(0),
                    Some(v) => {
                        buf.push(1);
                        v.put(buf);
                    }
                },
                Some(sets) => {
                    let set = sets.get(g);
                    buf.extend_from_slice(&(set.map_or(0, |s| s.len()) as u32).to_le_bytes());
                    for (v, n) in set.into_iter().flatten() {
                        v.put(buf);
                        buf.extend_from_slice(&n.to_le_bytes());
                    }
                }
            }
        }
    }

    fn load(&mut self, groups: &[usize], values: &mut [ValueReader]) -> Result<()> {
        match &mut self.multisets {
            None => {
                grow(&mut self.best, groups, None);
                for (&g, r) in groups.iter().zip(values) {
                    if r.u8()? == 1 {
                        let v = K::get(r)?;
                        self.value_bytes += v.size();
                        self.best[g] = Some(v);
                    }
                }
            }
            Some(sets) => {
                grow(sets, groups, BTreeMap::new());
                for (&g, r) in groups.iter().zip(values) {
                    for _ in 0..r.u32()? {
                        let v = K::get(r)?;
                        self.value_bytes += v.size() + MULTISET_ENTRY;
                        sets[g].insert(v, r.u64()?);
                    }
                }
            }
        }
        Ok(())
    }
}

/// COUNT(DISTINCT x) for every call sharing the argument x: per (group, value), one counter
/// per call of the rows that passed its FILTER.
struct Distinct<K: Key> {
    /// (group, value) → its counters' slot in `counters`.
    slots: HashMap<(u32, K), u32, FixedState>,
    /// `calls` counters per slot.
    counters: Vec<u32>,
    /// Slots no (group, value) uses any more.
    free: Vec<u32>,
    /// Distinct values per call, per group.
    distinct: Vec<Vec<i64>>,
    calls: usize,
    codec: Codec,
    key_bytes: usize,
}

impl<K: Key> Distinct<K> {
    fn new(calls: usize, codec: Codec) -> Self {
        Distinct {
            slots: HashMap::with_hasher(FixedState::with_seed(0x0d15_71c7)),
            counters: Vec::new(),
            free: Vec::new(),
            distinct: vec![Vec::new(); calls],
            calls,
            codec,
            key_bytes: 0,
        }
    }
}

impl<K: Key> GroupAccumulator for Distinct<K> {
    fn update(&mut self, arg: Option<&ArrayRef>, groups: &[usize], signs: &[&[i8]]) -> Result<()> {
        let arg = arg.ok_or_else(|| Error::internal("COUNT(DISTINCT) without an argument"))?;
        let values = K::read(&self.codec, arg)?;
        for d in &mut self.distinct {
            grow(d, groups, 0);
        }
        let Distinct {
            slots,
            counters,
            free,
            distinct,
            calls,
            key_bytes,
            ..
        } = self;
        let calls = *calls;
        for (i, &g) in groups.iter().enumerate() {
            if signs.iter().all(|s| s[i] == 0) {
                continue;
            }
            let Some(v) = K::at(&values, i) else { continue };
            // One hash lookup a row: the entry stays at hand for its removal.
            let entry = match slots.entry((g as u32, v)) {
                Entry::Occupied(e) => e,
                Entry::Vacant(e) => {
                    *key_bytes += e.key().1.size() + 4;
                    let slot = free.pop().unwrap_or_else(|| {
                        counters.resize(counters.len() + calls, 0);
                        (counters.len() / calls - 1) as u32
                    });
                    e.insert_entry(slot)
                }
            };
            let slot = *entry.get() as usize;
            let mut empty = true;
            for (c, s) in signs.iter().enumerate() {
                let counter = &mut counters[slot * calls + c];
                match s[i] {
                    1 => {
                        *counter += 1;
                        if *counter == 1 {
                            distinct[c][g] += 1;
                        }
                    }
                    -1 if *counter > 0 => {
                        *counter -= 1;
                        if *counter == 0 {
                            distinct[c][g] -= 1;
                        }
                    }
                    _ => {}
                }
                empty &= *counter == 0;
            }
            if empty {
                let ((_, value), _) = entry.remove_entry();
                *key_bytes -= value.size() + 4;
                free.push(slot as u32);
            }
        }
        Ok(())
    }

    fn evaluate(&self, output: usize, groups: &[usize]) -> Result<ArrayRef> {
        let d = &self.distinct[output];
        Ok(Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|&g| d.get(g).copied().unwrap_or(0)),
        )))
    }

    fn reset(&mut self, group: usize) {
        // A group's rows are all retracted, so are its values: their slots are gone already.
        for d in &mut self.distinct {
            if let Some(n) = d.get_mut(group) {
                *n = 0;
            }
        }
    }

    fn memory_size(&self) -> usize {
        self.slots.capacity() * (size_of::<(u32, K)>() + 4)
            + self.key_bytes
            + self.counters.capacity() * 4
            + self
                .distinct
                .iter()
                .map(|d| d.capacity() * 8)
                .sum::<usize>()
    }

    /// The number of values, then each value and its counters. The values of a group are
    /// found with one pass over all (group, value) slots.
    fn save(&self, groups: &[usize], out: &mut [Vec<u8>]) {
        let at: HashMap<u32, usize, FixedState> = groups
            .iter()
            .enumerate()
            .map(|(i, &g)| (g as u32, i))
            .collect();
        let mut held: Vec<Vec<(&K, u32)>> = vec![Vec::new(); groups.len()];
        for ((g, v), &slot) in &self.slots {
            if let Some(&i) = at.get(g) {
                held[i].push((v, slot));
            }
        }
        for (values, buf) in held.iter_mut().zip(out) {
            values.sort_unstable_by(|a, b| a.0.cmp(b.0));
            buf.extend_from_slice(&(values.len() as u32).to_le_bytes());
            for (v, slot) in values.iter() {
                v.put(buf);
                let start = *slot as usize * self.calls;
                for c in &self.counters[start..start + self.calls] {
                    buf.extend_from_slice(&c.to_le_bytes());
                }
            }
        }
    }

    fn load(&mut self, groups: &[usize], values: &mut [ValueReader]) -> Result<()> {
        for d in &mut self.distinct {
            grow(d, groups, 0);
        }
        for (&g, r) in groups.iter().zip(values) {
            for _ in 0..r.u32()? {
                let v = K::get(r)?;
                self.key_bytes += v.size() + 4;
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.counters.resize(self.counters.len() + self.calls, 0);
                    (self.counters.len() / self.calls - 1) as u32
                });
                for c in 0..self.calls {
                    let n = r.u32()?;
                    self.counters[slot as usize * self.calls + c] = n;
                    if n > 0 {
                        self.distinct[c][g] += 1;
                    }
                }
                self.slots.insert((g as u32, v), slot);
            }
        }
        Ok(())
    }
}
