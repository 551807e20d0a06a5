//! `'connector' = 'datagen'`: Flink's generator of sequential or random rows.
//!
//! Options as in Flink: `rows-per-second` (default 10000, the whole source's rate),
//! `number-of-rows` (unbounded if unset), and per column `fields.<col>.kind` = `random` |
//! `sequence`, `min`/`max` (random numbers), `length` (random strings, default 100),
//! `max-past` (random timestamps before now), `null-rate`, and `start`/`end` (sequences). A
//! sequence ends the source when exhausted. Random values are seeded per subtask, so a run is
//! repeatable (Flink's are not).
//!
//! A checkpoint records per subtask the rows emitted, the rows left and the random state;
//! restored at the same parallelism, each subtask goes on with the rows it had not emitted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, SchemaRef};
use formats::{Cell, ColumnBuilder, RowsBuilder};
use kernel::checkpoint::{CheckpointId, SplitState};
use kernel::connector::{parse_duration_ms, ColumnFilter, Connector, Options, TableDescriptor};
use kernel::operator::{OperatorContext, Source, SourceFactory, SourcePoll};
use kernel::types::sql_type_name;
use kernel::{Error, Result};

pub struct DatagenConnector;

const KEYS: &[&str] = &[
    "rows-per-second",
    "number-of-rows",
    "scan.parallelism",
    "fields.#.kind",
    "fields.#.min",
    "fields.#.max",
    "fields.#.max-past",
    "fields.#.length",
    "fields.#.var-len",
    "fields.#.start",
    "fields.#.end",
    "fields.#.null-rate",
];

impl Connector for DatagenConnector {
    fn name(&self) -> &'static str {
        "datagen"
    }

    fn option_keys(&self) -> &'static [&'static str] {
        KEYS
    }

    fn source(
        &self,
        table: &TableDescriptor,
        projection: Option<&[usize]>,
        _filters: &[ColumnFilter],
    ) -> Result<Arc<dyn SourceFactory>> {
        let t = &table.name;
        let o = &table.options;
        let all: Vec<usize> = (0..table.schema.fields().len()).collect();
        let cols = projection.unwrap_or(&all);
        let mut fields = Vec::new();
        for &c in cols {
            let f = table.schema.field(c);
            let key = |k: &str| format!("fields.{}.{k}", f.name());
            let kind = o.get(&key("kind")).unwrap_or("random");
            let null_rate: f64 = o
                .parse(t, &key("null-rate"), "a number between 0 and 1")?
                .unwrap_or(0.0);
            let gen = match kind {
                "sequence" => {
                    if !is_integer(f.data_type()) && f.data_type() != &DataType::Utf8 {
                        return Err(Error::user(format!(
                            "table '{t}': column '{}' of type {} cannot be a sequence; sequences are integers or strings",
                            f.name(),
                            sql_type_name(f.data_type())
                        )));
                    }
                    let start: i64 = o.parse(t, &key("start"), "an integer")?.ok_or_else(|| {
                        Error::user(format!(
                            "table '{t}': sequence column '{}' needs '{}'",
                            f.name(),
                            key("start")
                        ))
                    })?;
                    let end: i64 = o.parse(t, &key("end"), "an integer")?.ok_or_else(|| {
                        Error::user(format!(
                            "table '{t}': sequence column '{}' needs '{}'",
                            f.name(),
                            key("end")
                        ))
                    })?;
                    if end < start {
                        return Err(Error::user(format!(
                            "table '{t}': sequence of '{}' ends before it starts",
                            f.name()
                        )));
                    }
                    FieldGen::Sequence { start, end }
                }
                "random" => FieldGen::Random {
                    bounds: random_bounds(t, o, f.name(), f.data_type())?,
                    length: o.parse(t, &key("length"), "a length")?.unwrap_or(100),
                    var_len: o.bool(t, &key("var-len"), false)?,
                    max_past_ms: match o.get(&key("max-past")) {
                        None => 0,
                        Some(v) => parse_duration_ms(v).ok_or_else(|| {
                            Error::user(format!(
                                "table '{t}': option '{}' = '{v}' is not a duration",
                                key("max-past")
                            ))
                        })?,
                    },
                },
                other => {
                    return Err(Error::user(format!(
                        "table '{t}': option '{}' = '{other}'; valid kinds: random, sequence",
                        key("kind")
                    )))
                }
            };
            ColumnBuilder::new(f.data_type()).map_err(|ty| {
                Error::user(format!(
                    "table '{t}': datagen cannot generate column '{}' of type {ty}",
                    f.name()
                ))
            })?;
            fields.push((f.data_type().clone(), gen, null_rate));
        }
        let rows_per_second: f64 = o
            .parse(t, "rows-per-second", "a number")?
            .unwrap_or(10_000.0);
        if rows_per_second <= 0.0 {
            return Err(Error::user(format!(
                "table '{t}': 'rows-per-second' must be positive"
            )));
        }
        let schema = Arc::new(table.schema.project(cols)?);
        Ok(Arc::new(DatagenFactory {
            schema,
            fields,
            rows_per_second,
            number_of_rows: o.parse(t, "number-of-rows", "a row count")?,
        }))
    }
}

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

#[derive(Debug, Clone)]
enum FieldGen {
    Sequence {
        start: i64,
        end: i64,
    },
    Random {
        bounds: Bounds,
        length: usize,
        var_len: bool,
        max_past_ms: u64,
    },
}

#[derive(Debug)]
struct DatagenFactory {
    schema: SchemaRef,
    fields: Vec<(DataType, FieldGen, f64)>,
    rows_per_second: f64,
    number_of_rows: Option<u64>,
}

/// Splits `n` items into `parts` contiguous shares; returns (offset, len) of share `i`.
fn share(n: u64, parts: usize, i: usize) -> (u64, u64) {
    let (p, i) = (parts as u64, i as u64);
    let base = n / p;
    let extra = n % p;
    (i * base + i.min(extra), base + u64::from(i < extra))
}

impl DatagenFactory {
    /// Subtask `subtask` of `parallelism`, from its first row.
    fn subtask(&self, subtask: usize, parallelism: usize) -> Datagen {
        // Each subtask owns a contiguous block of every sequence and of the row count.
        let mut rows = self
            .number_of_rows
            .map(|n| share(n, parallelism, subtask).1);
        let mut fields = self.fields.clone();
        for (_, g, _) in fields.iter_mut() {
            if let FieldGen::Sequence { start, end } = g {
                let len = (*end - *start) as u64 + 1;
                let (off, n) = share(len, parallelism, subtask);
                *start += off as i64;
                *end = *start + n as i64 - 1;
                rows = Some(rows.map_or(n, |r| r.min(n)));
            }
        }
        Datagen {
            schema: self.schema.clone(),
            fields,
            rate: self.rows_per_second / parallelism as f64,
            remaining: rows,
            emitted: 0,
            started: None,
            rng: SplitMix64(0x5eed ^ (subtask as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            split: format!("subtask-{subtask}-of-{parallelism}"),
        }
    }
}

impl SourceFactory for DatagenFactory {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        Ok(Box::new(self.subtask(subtask, parallelism)))
    }

    fn restore(
        &self,
        subtask: usize,
        parallelism: usize,
        splits: Vec<SplitState>,
    ) -> Result<Box<dyn Source>> {
        let mut source = self.subtask(subtask, parallelism);
        let [split] = splits.as_slice() else {
            return Err(Error::user(format!(
                "a datagen source resumes at the parallelism it ran with; subtask {subtask} of {parallelism} got {} of its splits",
                splits.len()
            )));
        };
        if split.split != source.split {
            return Err(Error::user(format!(
                "a datagen source resumes at the parallelism it ran with: the checkpoint has '{}' where this run has '{}'",
                split.split, source.split
            )));
        }
        let words: Vec<u64> = split
            .position
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let [emitted, remaining, rng] = words[..] else {
            return Err(Error::user(
                "a datagen source's checkpointed position does not parse",
            ));
        };
        source.emitted = emitted;
        source.remaining = source.remaining.map(|_| remaining);
        source.rng = SplitMix64(rng);
        Ok(Box::new(source))
    }

    fn describe(&self) -> String {
        let rows = self
            .number_of_rows
            .map_or("unbounded".to_string(), |n| format!("{n} rows"));
        format!("source datagen, {rows} at {} rows/s", self.rows_per_second)
    }
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Datagen {
    schema: SchemaRef,
    fields: Vec<(DataType, FieldGen, f64)>,
    rate: f64,
    remaining: Option<u64>,
    emitted: u64,
    started: Option<Instant>,
    rng: SplitMix64,
    /// This subtask's share, named for checkpoints.
    split: String,
}

impl Datagen {
    fn value(&mut self, i: usize, row: u64) -> Cell<'static> {
        let (ty, gen, null_rate) = &self.fields[i];
        if *null_rate > 0.0 && self.rng.next_f64() < *null_rate {
            return Cell::Null;
        }
        match gen {
            FieldGen::Sequence { start, .. } => {
                let v = start + row as i64;
                if ty == &DataType::Utf8 {
                    Cell::Str(v.to_string().into())
                } else {
                    Cell::Int(v)
                }
            }
            FieldGen::Random {
                bounds,
                length,
                var_len,
                max_past_ms,
            } => {
                let (length, var_len, max_past_ms) = (*length, *var_len, *max_past_ms);
                let r = &mut self.rng;
                match (ty, *bounds) {
                    (DataType::Boolean, _) => Cell::Bool(r.next_u64() & 1 == 1),
                    (_, Bounds::Int(lo, hi)) => {
                        let span = (hi as i128 - lo as i128 + 1) as u128;
                        Cell::Int((lo as i128 + (r.next_u64() as u128 % span) as i128) as i64)
                    }
                    (DataType::Decimal128(p, s), Bounds::Float(lo, hi)) => {
                        let v = between(lo, hi, r.next_f64());
                        // Float rounding may land a hair past the largest value.
                        let largest = 10i128.pow(*p as u32) - 1;
                        let unscaled = (v * 10f64.powi(*s as i32)).round() as i128;
                        Cell::Decimal(unscaled.clamp(-largest, largest))
                    }
                    (_, Bounds::Float(lo, hi)) => Cell::Float(between(lo, hi, r.next_f64())),
                    (DataType::Utf8, _) => {
                        let len = if var_len {
                            1 + (r.next_u64() as usize % length.max(1))
                        } else {
                            length
                        };
                        const HEX: &[u8; 16] = b"0123456789abcdef";
                        let s: String = (0..len)
                            .map(|_| HEX[(r.next_u64() & 15) as usize] as char)
                            .collect();
                        Cell::Str(s.into())
                    }
                    (DataType::Timestamp(..), _) => {
                        let now = chrono::Utc::now().timestamp_millis();
                        let past = if max_past_ms == 0 {
                            0
                        } else {
                            (r.next_u64() % max_past_ms) as i64
                        };
                        Cell::Timestamp(now - past)
                    }
                    (DataType::Date32, _) => {
                        let today = chrono::Utc::now().timestamp_millis() / 86_400_000;
                        Cell::Date(today as i32)
                    }
                    _ => Cell::Null,
                }
            }
        }
    }
}

/// The number `at` of the way from `lo` to `hi` (`at` in `[0, 1)`), without overflowing
/// when the two are far apart.
fn between(lo: f64, hi: f64, at: f64) -> f64 {
    lo * (1.0 - at) + hi * at
}

/// The range random numbers of a column are drawn from, inclusive.
#[derive(Debug, Clone, Copy)]
enum Bounds {
    Int(i64, i64),
    Float(f64, f64),
    /// Not a number column: `min`/`max` do not apply.
    None,
}

/// The full range of a number type (decimals: every value of their precision and scale).
fn type_bounds(t: &DataType) -> Bounds {
    match t {
        DataType::Int8 => Bounds::Int(i8::MIN as i64, i8::MAX as i64),
        DataType::Int16 => Bounds::Int(i16::MIN as i64, i16::MAX as i64),
        DataType::Int32 => Bounds::Int(i32::MIN as i64, i32::MAX as i64),
        DataType::Int64 => Bounds::Int(i64::MIN, i64::MAX),
        DataType::Float32 => Bounds::Float(f32::MIN as f64, f32::MAX as f64),
        DataType::Float64 => Bounds::Float(f64::MIN, f64::MAX),
        DataType::Decimal128(p, s) => {
            let limit = 10f64.powi(*p as i32 - *s as i32) - 10f64.powi(-(*s as i32));
            Bounds::Float(-limit, limit)
        }
        _ => Bounds::None,
    }
}

/// `fields.<col>.min` and `.max` of a random column, checked: numbers of the column's type,
/// within its range, min not above max. Flink refuses the same.
fn random_bounds(t: &str, o: &Options, col: &str, ty: &DataType) -> Result<Bounds> {
    let keys = (format!("fields.{col}.min"), format!("fields.{col}.max"));
    let range = RangeOf { t, o, col, ty };
    match type_bounds(ty) {
        Bounds::None => {
            if let Some(key) = [&keys.0, &keys.1].into_iter().find(|k| o.get(k).is_some()) {
                return Err(Error::user(format!(
                    "table '{t}': option '{key}' applies to number columns, not to '{col}' ({})",
                    sql_type_name(ty)
                )));
            }
            Ok(Bounds::None)
        }
        Bounds::Int(lo, hi) => {
            let (min, max) = range.bounds(&keys, (lo, hi), (lo, hi), "an integer")?;
            Ok(Bounds::Int(min, max))
        }
        // Without bounds, doubles are drawn from FLOAT's range, as floats are.
        Bounds::Float(lo, hi) => {
            let default = (lo.max(f32::MIN as f64), hi.min(f32::MAX as f64));
            let (min, max) = range.bounds(&keys, (lo, hi), default, "a number")?;
            Ok(Bounds::Float(min, max))
        }
    }
}

/// Where the bounds of one random column are read.
struct RangeOf<'a> {
    t: &'a str,
    o: &'a Options,
    col: &'a str,
    ty: &'a DataType,
}

impl RangeOf<'_> {
    /// The `(min, max)` options named by `keys`, each within `range` (NaN and infinities
    /// are not), `default` where unset.
    fn bounds<T>(
        &self,
        keys: &(String, String),
        range: (T, T),
        default: (T, T),
        what: &str,
    ) -> Result<(T, T)>
    where
        T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display,
    {
        let t = self.t;
        let bound = |key: &str, default: T| -> Result<T> {
            let Some(v) = self.o.parse::<T>(t, key, what)? else {
                return Ok(default);
            };
            if !(range.0 <= v && v <= range.1) {
                return Err(Error::user(format!(
                    "table '{t}': option '{key}' = '{v}' is outside the range of column '{}' ({})",
                    self.col,
                    sql_type_name(self.ty)
                )));
            }
            Ok(v)
        };
        let (min, max) = (bound(&keys.0, default.0)?, bound(&keys.1, default.1)?);
        if min > max {
            return Err(Error::user(format!(
                "table '{t}': '{}' = {min} is above '{}' = {max}",
                keys.0, keys.1
            )));
        }
        Ok((min, max))
    }
}

impl Source for Datagen {
    fn name(&self) -> &str {
        "datagen"
    }

    fn poll_next(&mut self, _ctx: &mut OperatorContext) -> Result<SourcePoll> {
        if self.remaining == Some(0) {
            return Ok(SourcePoll::End);
        }
        // A restored source is due where it stopped, not at the stream's start.
        let (emitted, rate) = (self.emitted, self.rate);
        let started = *self.started.get_or_insert_with(|| {
            let done = Duration::from_secs_f64(emitted as f64 / rate);
            Instant::now()
                .checked_sub(done)
                .unwrap_or_else(Instant::now)
        });
        // Pace to the rate: rows allowed so far, in batches of about a tenth of a second.
        let batch_target = ((self.rate / 10.0) as u64).clamp(1, 8192);
        let allowed = (started.elapsed().as_secs_f64() * self.rate) as u64 + batch_target;
        if self.emitted >= allowed {
            let wait = (self.emitted + 1) as f64 / self.rate - started.elapsed().as_secs_f64();
            std::thread::sleep(Duration::from_secs_f64(wait.clamp(0.0, 0.1)));
            return Ok(SourcePoll::Pending);
        }
        let n = batch_target
            .min(allowed - self.emitted)
            .min(self.remaining.unwrap_or(u64::MAX)) as usize;
        let mut rows = RowsBuilder::new(self.schema.clone()).map_err(|ty| {
            Error::internal(format!(
                "datagen column of type {ty} passed the plan-time check"
            ))
        })?;
        for r in 0..n {
            let row = self.emitted + r as u64;
            rows.append_row(|i, b| b.append_cell(&self.value(i, row)))
                .map_err(|e| {
                    Error::internal(format!("datagen made a value that does not fit: {e}"))
                })?;
        }
        self.emitted += n as u64;
        if let Some(rem) = self.remaining.as_mut() {
            *rem -= n as u64;
        }
        Ok(SourcePoll::Batch(rows.finish()?))
    }

    fn snapshot(&mut self, _checkpoint_id: CheckpointId) -> Result<Vec<SplitState>> {
        let mut position = Vec::with_capacity(24);
        for word in [self.emitted, self.remaining.unwrap_or(u64::MAX), self.rng.0] {
            position.extend_from_slice(&word.to_le_bytes());
        }
        Ok(vec![SplitState {
            split: self.split.clone(),
            position,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Int8Type, Schema};
    use std::collections::BTreeMap;

    fn table(column: DataType, options: &[(&str, &str)]) -> TableDescriptor {
        let mut map: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.insert("connector".into(), "datagen".into());
        TableDescriptor {
            name: "t".into(),
            schema: Arc::new(Schema::new(vec![Field::new("x", column, true)])),
            partition_keys: vec![],
            options: Options::new(map),
        }
    }

    fn refusal(column: DataType, options: &[(&str, &str)]) -> String {
        match DatagenConnector.source(&table(column, options), None, &[]) {
            Ok(_) => panic!("{options:?} was accepted"),
            Err(e) => {
                assert!(e.is_user_error(), "{e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn bounds_above_each_other_or_outside_the_type_are_refused() {
        let e = refusal(
            DataType::Int32,
            &[("fields.x.min", "10"), ("fields.x.max", "5")],
        );
        assert!(
            e.contains("'fields.x.min' = 10 is above 'fields.x.max' = 5"),
            "{e}"
        );
        let e = refusal(DataType::Int8, &[("fields.x.min", "-1000")]);
        assert!(
            e.contains("outside the range of column 'x' (TINYINT)"),
            "{e}"
        );
        let e = refusal(DataType::Decimal128(4, 2), &[("fields.x.max", "100")]);
        assert!(e.contains("DECIMAL(4, 2)"), "{e}");
        let e = refusal(
            DataType::Float64,
            &[("fields.x.min", "2.5"), ("fields.x.max", "1")],
        );
        assert!(e.contains("above"), "{e}");
        let e = refusal(DataType::Utf8, &[("fields.x.min", "1")]);
        assert!(e.contains("number columns"), "{e}");
        let e = refusal(DataType::Int32, &[("fields.x.max", "1.5")]);
        assert!(e.contains("not an integer"), "{e}");
    }

    #[test]
    fn random_values_keep_to_their_bounds() {
        let t = table(
            DataType::Int8,
            &[
                ("fields.x.min", "-3"),
                ("fields.x.max", "4"),
                ("number-of-rows", "500"),
                ("rows-per-second", "1000000"),
            ],
        );
        let factory = DatagenConnector.source(&t, None, &[]).unwrap();
        let mut source = factory.create(0, 1).unwrap();
        let metrics = Arc::new(kernel::metrics::JobMetrics::default());
        let mut ctx = OperatorContext::new(0, 1, 128, metrics);
        let mut seen = 0;
        while seen < 500 {
            match source.poll_next(&mut ctx).unwrap() {
                SourcePoll::Batch(b) => {
                    let col = b.column(0).as_primitive::<Int8Type>();
                    assert_eq!(col.null_count(), 0);
                    assert!(col.values().iter().all(|v| (-3..=4).contains(v)));
                    seen += b.num_rows();
                }
                SourcePoll::Pending | SourcePoll::Idle => {}
                SourcePoll::End => break,
            }
        }
        assert_eq!(seen, 500);
    }
}
