//! Key groups: the unit in which keyed state moves between subtasks.
//!
//! A key hashes to one of `max_parallelism` key groups; a subtask owns a contiguous range of
//! them. The assignment follows Flink's so that a later rescale moves whole ranges.

/// Index of a key group, `0..max_parallelism`.
pub type KeyGroup = u16;

/// Default number of key groups (Flink's default upper bound for max parallelism is larger,
/// but 4096 keeps prefixes short and is plenty for one machine or a small cluster).
pub const DEFAULT_MAX_PARALLELISM: usize = 4096;

/// A contiguous, inclusive-exclusive range of key groups owned by one subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGroupRange {
    pub start: KeyGroup,
    pub end: KeyGroup,
}

impl KeyGroupRange {
    /// The range subtask `index` of `parallelism` owns out of `max_parallelism` key groups.
    pub fn for_subtask(max_parallelism: usize, parallelism: usize, index: usize) -> Self {
        assert!(parallelism > 0 && index < parallelism && parallelism <= max_parallelism);
        let start = (index * max_parallelism).div_ceil(parallelism);
        let end = ((index + 1) * max_parallelism).div_ceil(parallelism);
        KeyGroupRange {
            start: start as KeyGroup,
            end: end.min(max_parallelism) as KeyGroup,
        }
    }

    pub fn contains(&self, kg: KeyGroup) -> bool {
        kg >= self.start && kg < self.end
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The subtask that owns key group `kg`; the inverse of [`KeyGroupRange::for_subtask`].
pub fn subtask_for_key_group(max_parallelism: usize, parallelism: usize, kg: KeyGroup) -> usize {
    (kg as usize) * parallelism / max_parallelism
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_partition_all_key_groups_and_agree_with_the_inverse() {
        for parallelism in [1, 2, 3, 7, 64] {
            let mut next = 0u16;
            for i in 0..parallelism {
                let r = KeyGroupRange::for_subtask(4096, parallelism, i);
                assert_eq!(r.start, next, "ranges are contiguous");
                for kg in r.start..r.end {
                    assert_eq!(subtask_for_key_group(4096, parallelism, kg), i);
                }
                next = r.end;
            }
            assert_eq!(next, 4096);
        }
    }
}
