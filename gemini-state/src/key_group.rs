//! Key groups: the unit in which keyed state moves between subtasks.
//!
//! A table holds the keys of one contiguous range of key groups. Which key group a key falls
//! in, and which subtask owns which range, is the kernel's rule (`kernel::keys`), not this
//! crate's: a table only checks that what it is given lies in its range.

/// Index of a key group, `0..max_parallelism` (at most 2^15, as in Flink).
pub type KeyGroup = u16;

/// A contiguous, inclusive-exclusive range of key groups owned by one subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGroupRange {
    pub start: KeyGroup,
    pub end: KeyGroup,
}

impl KeyGroupRange {
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
