//! Tier 0's hash index: open addressing with linear probing over 16-byte slots, each the
//! key's full hash and where its entry lives.
//!
//! A lookup touches one cache line of index (four slots) and then the entry itself, and
//! since the slot a hash starts at is known without reading anything, a batch can prefetch
//! both ahead of use: random keys in a table far larger than the CPU caches then wait for
//! memory in parallel rather than one miss after another. hashbrown keeps its buckets
//! private, so this small table is ours.

/// Where an entry lives: segment index and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub segment: u32,
    pub offset: u32,
}

const EMPTY: Loc = Loc {
    segment: u32::MAX,
    offset: u32::MAX,
};

#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    loc: Loc,
}

const VACANT: Slot = Slot {
    hash: 0,
    loc: EMPTY,
};

#[derive(Debug)]
pub(crate) struct Index {
    slots: Vec<Slot>,
    /// `64 - log2(slots.len())`: a hash's high bits pick its home slot.
    shift: u32,
    len: usize,
}

impl Default for Index {
    fn default() -> Self {
        Index::with_slots(16)
    }
}

impl Index {
    fn with_slots(n: usize) -> Index {
        debug_assert!(n.is_power_of_two());
        Index {
            slots: vec![VACANT; n],
            shift: 64 - n.trailing_zeros(),
            len: 0,
        }
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, hash: u64) -> usize {
        (hash >> self.shift) as usize
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (each 16 bytes).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The slot of the entry with `hash` for which `is(loc)` holds.
    pub(crate) fn find(&self, hash: u64, mut is: impl FnMut(Loc) -> bool) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(hash);
        loop {
            let s = self.slots[i];
            if s.loc == EMPTY {
                return None;
            }
            if s.hash == hash && is(s.loc) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The slot holding exactly `loc` (an entry being moved or dropped).
    pub(crate) fn find_loc(&self, hash: u64, loc: Loc) -> Option<usize> {
        self.find(hash, |l| l == loc)
    }

    pub(crate) fn loc(&self, slot: usize) -> Loc {
        self.slots[slot].loc
    }

    pub(crate) fn set_loc(&mut self, slot: usize, loc: Loc) {
        self.slots[slot].loc = loc;
    }

    /// The first entry with `hash`, without comparing keys: what a batch prefetches.
    pub(crate) fn first_with(&self, hash: u64) -> Option<Loc> {
        self.find(hash, |_| true).map(|s| self.slots[s].loc)
    }

    /// Adds an entry the caller knows is absent.
    pub(crate) fn insert(&mut self, hash: u64, loc: Loc) {
        // At most 3/4 full: linear probing's clusters stay a cache line or two long.
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(Slot { hash, loc });
        self.len += 1;
    }

    /// Puts `s` in the first empty slot from its home on.
    fn place(&mut self, s: Slot) {
        let mask = self.mask();
        let mut i = self.home(s.hash);
        while self.slots[i].loc != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = s;
    }

    /// Empties `slot`, shifting later members of its cluster back so that every entry stays
    /// reachable from its home slot without tombstones.
    pub(crate) fn remove(&mut self, slot: usize) {
        let mask = self.mask();
        let mut hole = slot;
        let mut j = slot;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s.loc == EMPTY {
                break;
            }
            // `s` may fill the hole if the hole lies between its home and `j`.
            let from_home = j.wrapping_sub(self.home(s.hash)) & mask;
            let from_hole = j.wrapping_sub(hole) & mask;
            if from_home >= from_hole {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = VACANT;
        self.len -= 1;
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, Index::with_slots(self.slots.len() * 2));
        for s in old.slots.into_iter().filter(|s| s.loc != EMPTY) {
            self.place(s);
        }
        self.len = old.len;
    }

    /// Every entry's hash and location, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Loc)> + '_ {
        self.slots
            .iter()
            .filter(|s| s.loc != EMPTY)
            .map(|s| (s.hash, s.loc))
    }

    /// Asks the CPU to start loading the home slot of `hash` and the one after it: at the
    /// end of a cache line the probe would otherwise miss again on the next (usually the
    /// same line, which costs nothing more).
    pub(crate) fn prefetch(&self, hash: u64) {
        let home = self.home(hash);
        prefetch(&self.slots[home]);
        prefetch(&self.slots[(home + 1) & self.mask()]);
    }
}

/// A hint that `at` will be read soon. Prefetching never faults and changes no memory, but
/// the intrinsic is `unsafe` to call, hence the one exception to the crate's rule.
#[allow(unsafe_code)]
pub(crate) fn prefetch<T>(at: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it does not dereference `at` architecturally and cannot
    // fault, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn loc(n: u32) -> Loc {
        Loc {
            segment: n,
            offset: n,
        }
    }

    #[test]
    fn inserts_finds_and_removes_under_colliding_hashes() {
        // Few distinct hashes, so clusters are long and wrap around the end.
        let mut index = Index::default();
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut x = 7u64;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 3000) as u32;
            let hash =
                (u64::from(n % 97)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | u64::from(step % 2);
            match model.get(&n).copied() {
                Some(h) if x.is_multiple_of(3) => {
                    let slot = index.find_loc(h, loc(n)).expect("present");
                    index.remove(slot);
                    model.remove(&n);
                }
                Some(_) => {}
                None => {
                    index.insert(hash, loc(n));
                    model.insert(n, hash);
                }
            }
        }
        assert_eq!(index.len(), model.len());
        for (&n, &h) in &model {
            assert!(index.find_loc(h, loc(n)).is_some(), "entry {n} reachable");
        }
        let mut seen: Vec<u32> = index.iter().map(|(_, l)| l.segment).collect();
        seen.sort_unstable();
        let mut want: Vec<u32> = model.keys().copied().collect();
        want.sort_unstable();
        assert_eq!(seen, want);
    }
}
