//! The one rule that places a keyed row: key columns → hash → key group → subtask.
//!
//! The exchange routes rows by it, keyed operators file their state under it, and a restore
//! or rescale hands state back by it, so it is computed here and nowhere else. A key hashes
//! to one of `max_parallelism` key groups; subtask `i` of `p` owns a contiguous range of them
//! (Flink's `KeyGroupRangeAssignment`), so a rescale moves whole ranges. Hashes are computed
//! a column at a time over whole arrays and combined per row.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Decimal128Type, Float32Type, Float64Type,
    Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
pub use gemini_state::{KeyGroup, KeyGroupRange};

use crate::{Error, Result};

/// The largest max parallelism, as in Flink (`2^15`): key groups fit a `u16`.
pub const UPPER_BOUND_MAX_PARALLELISM: usize = 1 << 15;

/// The smallest default max parallelism, as in Flink.
const LOWER_BOUND_DEFAULT_MAX_PARALLELISM: usize = 128;

/// Flink's default max parallelism for an operator of `parallelism`: 1.5 × the parallelism
/// rounded up to a power of two, at least 128 and at most 32768 (128 up to parallelism 85).
pub fn default_max_parallelism(parallelism: usize) -> usize {
    (parallelism + parallelism / 2).next_power_of_two().clamp(
        LOWER_BOUND_DEFAULT_MAX_PARALLELISM,
        UPPER_BOUND_MAX_PARALLELISM,
    )
}

/// Checks that `parallelism` subtasks can share `max_parallelism` key groups (each subtask
/// owns at least one), and that the max parallelism is within Flink's bounds.
pub fn check_parallelism(name: &str, parallelism: usize, max_parallelism: usize) -> Result<()> {
    if !(1..=UPPER_BOUND_MAX_PARALLELISM).contains(&max_parallelism) {
        return Err(Error::user(format!(
            "'pipeline.max-parallelism' = {max_parallelism} is outside 1..={UPPER_BOUND_MAX_PARALLELISM}"
        )));
    }
    if parallelism == 0 || parallelism > max_parallelism {
        return Err(Error::user(format!(
            "{name} has parallelism {parallelism}, but the job's max parallelism \
             ('pipeline.max-parallelism') is {max_parallelism}: a parallelism must be between \
             1 and the max parallelism"
        )));
    }
    Ok(())
}

/// The key group of a row hash.
#[inline]
pub fn key_group_of_hash(hash: u64, max_parallelism: usize) -> KeyGroup {
    // Fold the high bits in: `hash % n` alone would ignore them for powers of two.
    ((hash ^ (hash >> 32)) % max_parallelism as u64) as KeyGroup
}

/// The subtask of `parallelism` that owns key group `kg`.
#[inline]
pub fn subtask_of_key_group(kg: KeyGroup, max_parallelism: usize, parallelism: usize) -> usize {
    kg as usize * parallelism / max_parallelism
}

/// The subtask of `parallelism` that owns the rows of `hash`.
#[inline]
pub fn subtask_of_hash(hash: u64, max_parallelism: usize, parallelism: usize) -> usize {
    subtask_of_key_group(
        key_group_of_hash(hash, max_parallelism),
        max_parallelism,
        parallelism,
    )
}

/// The key groups subtask `subtask` of `parallelism` owns: exactly those
/// [`subtask_of_key_group`] sends it. The parallelism must have passed
/// [`check_parallelism`].
pub fn key_group_range(
    max_parallelism: usize,
    parallelism: usize,
    subtask: usize,
) -> Result<KeyGroupRange> {
    if parallelism == 0 || subtask >= parallelism || parallelism > max_parallelism {
        return Err(Error::internal(format!(
            "subtask {subtask} of {parallelism} has no key groups among {max_parallelism}"
        )));
    }
    let start = (subtask * max_parallelism).div_ceil(parallelism);
    let end = ((subtask + 1) * max_parallelism).div_ceil(parallelism);
    Ok(KeyGroupRange {
        start: start as KeyGroup,
        end: end as KeyGroup,
    })
}

/// The key group of each of `rows` rows, by the hash of their `keys` columns (empty: every
/// row in `range`'s first group, as a keyless aggregate's state).
pub fn key_groups_of_rows(
    keys: &[ArrayRef],
    rows: usize,
    range: KeyGroupRange,
    max_parallelism: usize,
    hashes: &mut Vec<u64>,
) -> Result<Vec<KeyGroup>> {
    if keys.is_empty() {
        return Ok(vec![range.start; rows]);
    }
    hash_rows(keys, rows, hashes)?;
    Ok(hashes
        .iter()
        .map(|&h| key_group_of_hash(h, max_parallelism))
        .collect())
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
        let word: [u8; 8] = c.try_into().expect("chunks of eight");
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x0100_0000_01b3);
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

fn hash_column(col: &ArrayRef, hashes: &mut [u64]) -> Result<()> {
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
        other => {
            return Err(Error::internal(format!(
                "cannot hash-partition on a column of type {other}"
            )))
        }
    }
    Ok(())
}

fn bytes_rows<'a>(rows: impl Iterator<Item = Option<&'a [u8]>>, hashes: &mut [u64]) {
    for (h, v) in hashes.iter_mut().zip(rows) {
        *h = combine(*h, v.map_or(NULL_HASH, hash_bytes));
    }
}

/// Hashes the given key columns of every row into `hashes` (cleared first).
pub fn hash_rows(columns: &[ArrayRef], num_rows: usize, hashes: &mut Vec<u64>) -> Result<()> {
    hashes.clear();
    hashes.resize(num_rows, 0);
    for col in columns {
        hash_column(col, hashes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn the_default_max_parallelism_is_flinks() {
        assert_eq!(default_max_parallelism(1), 128);
        assert_eq!(default_max_parallelism(85), 128);
        assert_eq!(default_max_parallelism(86), 256);
        assert_eq!(default_max_parallelism(200), 512);
        assert_eq!(default_max_parallelism(40_000), UPPER_BOUND_MAX_PARALLELISM);
    }

    #[test]
    fn ranges_partition_all_key_groups_and_agree_with_the_routing() {
        for (max, parallelism) in [
            (128, 1),
            (128, 2),
            (128, 3),
            (128, 7),
            (128, 128),
            (4096, 64),
        ] {
            let mut next = 0;
            for i in 0..parallelism {
                let r = key_group_range(max, parallelism, i).unwrap();
                assert_eq!(r.start, next, "ranges are contiguous");
                assert!(
                    !r.is_empty(),
                    "subtask {i} of {parallelism} owns a key group"
                );
                for kg in r.start..r.end {
                    assert_eq!(subtask_of_key_group(kg, max, parallelism), i);
                }
                next = r.end;
            }
            assert_eq!(next as usize, max);
        }
    }

    #[test]
    fn a_parallelism_above_the_max_is_refused_in_words() {
        check_parallelism("operator x", 128, 128).unwrap();
        let err = check_parallelism("operator x", 129, 128).unwrap_err();
        assert!(err.is_user_error());
        assert!(
            err.to_string().contains("pipeline.max-parallelism"),
            "{err}"
        );
        assert!(check_parallelism("operator x", 1, 40_000).is_err());
        assert!(key_group_range(128, 129, 0).is_err());
    }

    #[test]
    fn nested_types_are_refused_with_their_name() {
        let col: ArrayRef = Arc::new(arrow::array::new_null_array(
            &DataType::List(Arc::new(Field::new("x", DataType::Int32, true))),
            3,
        ));
        let err = hash_rows(&[col], 3, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("List"), "{err}");
    }
}
