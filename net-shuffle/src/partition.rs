//! Vectorized hash partitioning: rows → the subtask that owns their key group.
//!
//! Key columns are hashed a column at a time and placed by the one rule of `kernel::keys`;
//! then rows are bucketed by target subtask with one counting pass and gathered with
//! arrow's `take`.

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use kernel::keys::{hash_rows, subtask_of_hash};
use kernel::Result;

/// Splits `batch` by the hash of its `keys` columns into `parallelism` parts; part `i` holds the
/// rows whose key group subtask `i` owns (`None` when it gets no rows).
pub fn hash_partition(
    batch: &RecordBatch,
    keys: &[usize],
    max_parallelism: usize,
    parallelism: usize,
) -> Result<Vec<Option<RecordBatch>>> {
    if parallelism == 1 {
        return Ok(vec![Some(batch.clone())]);
    }
    let n = batch.num_rows();
    let columns: Vec<ArrayRef> = keys.iter().map(|&k| batch.column(k).clone()).collect();
    let mut hashes = Vec::new();
    hash_rows(&columns, n, &mut hashes)?;
    let targets: Vec<u32> = hashes
        .iter()
        .map(|&h| subtask_of_hash(h, max_parallelism, parallelism) as u32)
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
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
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
    fn each_row_goes_to_the_subtask_whose_key_groups_state_keeps_it_under() {
        let b = batch();
        for parallelism in [2, 3, 7] {
            let parts = hash_partition(&b, &[0], 128, parallelism).unwrap();
            for (t, part) in parts.iter().enumerate() {
                let Some(part) = part else { continue };
                let range = kernel::keys::key_group_range(128, parallelism, t).unwrap();
                let groups = kernel::keys::key_groups_of_rows(
                    &[part.column(0).clone()],
                    part.num_rows(),
                    range,
                    128,
                    &mut Vec::new(),
                )
                .unwrap();
                assert!(groups.iter().all(|&kg| range.contains(kg)));
            }
        }
    }
}
