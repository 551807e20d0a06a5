//! Vectorized hash partitioning: key columns → hash → key group → subtask.
//!
//! Hashes are computed a column at a time over whole arrays, combined per row, then rows are
//! bucketed by target subtask with one counting pass and gathered with arrow's `take`.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal128Type, Float32Type, Float64Type,
    Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow::error::ArrowError;

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("cannot hash-partition on a column of type {0}")]
    UnsupportedType(DataType),
    #[error(transparent)]
    Arrow(#[from] ArrowError),
}

const NULL_HASH: u64 = 0x9e37_79b9_7f4a_7c15;

/// A strong 64-bit finaliser (splitmix64's), so consecutive integers spread evenly.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline]
fn hash_bytes(b: &[u8]) -> u64 {
    // FNV-1a over 8-byte words, then mixed: keys are short (ids, names, channels).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        h = (h ^ u64::from_le_bytes(c.try_into().unwrap())).wrapping_mul(0x0100_0000_01b3);
    }
    for &x in chunks.remainder() {
        h = (h ^ x as u64).wrapping_mul(0x0100_0000_01b3);
    }
    mix64(h ^ b.len() as u64)
}

#[inline]
fn combine(acc: u64, h: u64) -> u64 {
    mix64(acc.rotate_left(27) ^ h)
}

fn hash_primitive<T: ArrowPrimitiveType>(
    col: &dyn Array,
    hashes: &mut [u64],
    to_bits: impl Fn(T::Native) -> u64,
) {
    let arr = col.as_primitive::<T>();
    let values = arr.values();
    match arr.nulls() {
        None => {
            for (h, v) in hashes.iter_mut().zip(values.iter()) {
                *h = combine(*h, mix64(to_bits(*v)));
            }
        }
        Some(nulls) => {
            for (i, (h, v)) in hashes.iter_mut().zip(values.iter()).enumerate() {
                let x = if nulls.is_valid(i) {
                    mix64(to_bits(*v))
                } else {
                    NULL_HASH
                };
                *h = combine(*h, x);
            }
        }
    }
}

fn hash_column(col: &ArrayRef, hashes: &mut [u64]) -> Result<(), PartitionError> {
    macro_rules! prim {
        ($t:ty) => {
            hash_primitive::<$t>(col.as_ref(), hashes, |v| v as u64)
        };
    }
    match col.data_type() {
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Date32 => prim!(Date32Type),
        DataType::Date64 => prim!(Date64Type),
        DataType::Timestamp(TimeUnit::Second, _) => prim!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => prim!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => prim!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => prim!(TimestampNanosecondType),
        DataType::Float32 => {
            hash_primitive::<Float32Type>(col.as_ref(), hashes, |v| v.to_bits() as u64)
        }
        DataType::Float64 => hash_primitive::<Float64Type>(col.as_ref(), hashes, |v| v.to_bits()),
        DataType::Decimal128(_, _) => hash_primitive::<Decimal128Type>(col.as_ref(), hashes, |v| {
            (v as u64) ^ ((v >> 64) as u64)
        }),
        DataType::Boolean => {
            let arr: &BooleanArray = col.as_boolean();
            for (i, h) in hashes.iter_mut().enumerate() {
                let x = if arr.is_valid(i) {
                    mix64(arr.value(i) as u64 + 1)
                } else {
                    NULL_HASH
                };
                *h = combine(*h, x);
            }
        }
        DataType::Utf8 => bytes_rows(
            col.as_string::<i32>().iter().map(|v| v.map(str::as_bytes)),
            hashes,
        ),
        DataType::LargeUtf8 => bytes_rows(
            col.as_string::<i64>().iter().map(|v| v.map(str::as_bytes)),
            hashes,
        ),
        DataType::Utf8View => bytes_rows(
            col.as_string_view().iter().map(|v| v.map(str::as_bytes)),
            hashes,
        ),
        DataType::Binary => bytes_rows(col.as_binary::<i32>().iter(), hashes),
        other => return Err(PartitionError::UnsupportedType(other.clone())),
    }
    Ok(())
}

fn bytes_rows<'a>(rows: impl Iterator<Item = Option<&'a [u8]>>, hashes: &mut [u64]) {
    for (h, v) in hashes.iter_mut().zip(rows) {
        *h = combine(*h, v.map_or(NULL_HASH, hash_bytes));
    }
}

/// Hashes the given key columns of every row into `hashes` (cleared first).
pub fn hash_rows(
    columns: &[ArrayRef],
    num_rows: usize,
    hashes: &mut Vec<u64>,
) -> Result<(), PartitionError> {
    hashes.clear();
    hashes.resize(num_rows, 0);
    for col in columns {
        hash_column(col, hashes)?;
    }
    Ok(())
}

/// The key group of a row hash.
#[inline]
pub fn key_group_of_hash(hash: u64, max_parallelism: usize) -> u16 {
    // Fold the high bits in: `hash % n` alone would ignore them for powers of two.
    ((hash ^ (hash >> 32)) % max_parallelism as u64) as u16
}

/// Splits `batch` by the hash of its `keys` columns into `parallelism` parts; part `i` holds the
/// rows whose key group subtask `i` owns (`None` when it gets no rows).
pub fn hash_partition(
    batch: &RecordBatch,
    keys: &[usize],
    max_parallelism: usize,
    parallelism: usize,
) -> Result<Vec<Option<RecordBatch>>, PartitionError> {
    if parallelism == 1 {
        return Ok(vec![Some(batch.clone())]);
    }
    let n = batch.num_rows();
    let columns: Vec<ArrayRef> = keys.iter().map(|&k| batch.column(k).clone()).collect();
    let mut hashes = Vec::new();
    hash_rows(&columns, n, &mut hashes)?;
    let targets: Vec<u32> = hashes
        .iter()
        .map(|&h| {
            let kg = key_group_of_hash(h, max_parallelism) as usize;
            (kg * parallelism / max_parallelism) as u32
        })
        .collect();
    // Counting sort of row indices by target.
    let mut counts = vec![0usize; parallelism + 1];
    for &t in &targets {
        counts[t as usize + 1] += 1;
    }
    for i in 1..=parallelism {
        counts[i] += counts[i - 1];
    }
    let starts = counts.clone();
    let mut order = vec![0u32; n];
    for (row, &t) in targets.iter().enumerate() {
        let slot = &mut counts[t as usize];
        order[*slot] = row as u32;
        *slot += 1;
    }
    let mut parts = Vec::with_capacity(parallelism);
    for t in 0..parallelism {
        let (lo, hi) = (starts[t], starts[t + 1]);
        if lo == hi {
            parts.push(None);
        } else if hi - lo == n {
            parts.push(Some(batch.clone()));
        } else {
            let idx = UInt32Array::from(order[lo..hi].to_vec());
            parts.push(Some(take_record_batch(batch, &idx)?));
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::collections::HashMap;
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let ids: Vec<i64> = (0..10_000).map(|i| i % 500).collect();
        let names: Vec<String> = (0..10_000).map(|i| format!("n{}", i % 37)).collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("name", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn every_row_lands_once_and_equal_keys_land_together() {
        let b = batch();
        let parts = hash_partition(&b, &[0], 4096, 3).unwrap();
        let total: usize = parts.iter().flatten().map(|p| p.num_rows()).sum();
        assert_eq!(total, b.num_rows());
        let mut owner: HashMap<i64, usize> = HashMap::new();
        for (t, p) in parts.iter().enumerate() {
            let p = p.as_ref().expect("500 keys reach every one of 3 subtasks");
            for v in p.column(0).as_primitive::<Int64Type>().values() {
                assert_eq!(
                    *owner.entry(*v).or_insert(t),
                    t,
                    "key {v} split across subtasks"
                );
            }
        }
    }

    #[test]
    fn keys_spread_evenly() {
        let b = batch();
        let parts = hash_partition(&b, &[0, 1], 4096, 4).unwrap();
        for p in parts.iter().flatten() {
            let share = p.num_rows() as f64 / b.num_rows() as f64;
            assert!((0.15..0.35).contains(&share), "share {share}");
        }
    }

    #[test]
    fn nested_types_are_refused_with_their_name() {
        let b = batch();
        let col: ArrayRef = Arc::new(arrow::array::new_null_array(
            &DataType::List(Arc::new(Field::new("x", DataType::Int32, true))),
            b.num_rows(),
        ));
        let err = hash_rows(&[col], b.num_rows(), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("List"), "{err}");
    }
}
