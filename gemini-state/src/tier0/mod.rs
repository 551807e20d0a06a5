//! Tier 0: a subtask's hot state in memory, typed bytes in arena segments behind a hash
//! index, updated in place.
//!
//! The hash index ([`index`]) maps a key's hash to where its entry lives; an entry that
//! moves (to grow, to copy on write, to compact) has its slot updated. Batches prefetch the
//! slots and entries they will need a few keys ahead.
//!
//! Writes carry a generation number. [`Tier0::freeze`] ends a generation in O(segments): it
//! hands out shared references to the segments, and from then on a write that finds its
//! entry in a shared segment copies it into the active segment instead of writing in place
//! ([`Held::get_mut`] fails while the snapshot writer holds the segment). The frozen
//! generation's entries thus stay exactly as they were at the freeze, and the writer sorts
//! them into a run file off the operator's thread. Entries of generations that reached a
//! run file are clean: evicting them under memory pressure only forgets them.

mod index;
mod segment;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use index::{prefetch, Index, Loc};
use segment::{capacity_for, HEADER, MAX_PADDING, SEGMENT_BYTES};
pub(crate) use segment::{Header, Held, Segment, DEAD, MAYBE_IN_RUNS, TOMBSTONE};

#[derive(Debug, Default, Clone, Copy)]
struct SegmentInfo {
    /// Bytes of entries the index points at.
    live: usize,
    /// The newest generation written into the segment.
    max_gen: u32,
}

/// An entry as read: its flags, write time and value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found<'a> {
    pub flags: u8,
    pub written_at: i64,
    pub value: &'a [u8],
}

impl Found<'_> {
    pub(crate) fn is_tombstone(&self) -> bool {
        self.flags & TOMBSTONE != 0
    }
}

/// Keys in order, for scans: built on a table's first scan (tables read only by key never
/// pay for it), then kept up to date by inserts and removals. It holds its own copy of each
/// key and finds the entry through the hash index, so entries can move and segments can go
/// without touching it.
type Ordered = BTreeSet<Box<[u8]>>;

/// A frozen generation range: the segments that may hold its entries, shared with the
/// writer that turns them into a run file.
#[derive(Debug)]
pub(crate) struct Frozen {
    pub segments: Vec<Arc<Segment>>,
    /// Entries with `after < gen <= upto` belong to the freeze.
    pub after: u32,
    pub upto: u32,
}

impl Frozen {
    /// The frozen entries (tombstones included) sorted by key.
    pub(crate) fn sorted(&self) -> Vec<(&[u8], Found<'_>)> {
        let mut out = Vec::new();
        for seg in &self.segments {
            for at in seg.offsets() {
                let h = seg.header(at);
                if h.flags & DEAD != 0 || h.gen <= self.after || h.gen > self.upto {
                    continue;
                }
                out.push((
                    seg.key(at),
                    Found {
                        flags: h.flags,
                        written_at: h.written_at,
                        value: seg.value(at, &h),
                    },
                ));
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }
}

#[derive(Debug)]
pub(crate) struct Tier0 {
    segments: Vec<Option<Held>>,
    info: Vec<SegmentInfo>,
    free_segments: Vec<u32>,
    /// Emptied segments kept for reuse: fresh ones cost the kernel zeroing their pages.
    spare: Vec<Segment>,
    /// Capacity of the live segments.
    segment_bytes: usize,
    active: u32,
    index: Index,
    ordered: RefCell<Option<Ordered>>,
    hasher: foldhash::fast::FixedState,
    /// The generation writes go to.
    gen: u32,
    /// The newest generation handed to a freeze (its entries will reach a run file).
    frozen: u32,
    /// The newest generation known to be in a run file.
    durable: u32,
    live_entries: usize,
    /// Bytes written since the last freeze.
    unfrozen_bytes: usize,
    /// Bytes of live keys and values (what the table reports as its size).
    live_bytes: u64,
}

impl Default for Tier0 {
    fn default() -> Self {
        Tier0::new()
    }
}

impl Tier0 {
    pub(crate) fn new() -> Tier0 {
        Tier0 {
            segments: vec![Some(Held::Own(Segment::with_capacity(SEGMENT_BYTES)))],
            info: vec![SegmentInfo::default()],
            free_segments: Vec::new(),
            spare: Vec::new(),
            segment_bytes: SEGMENT_BYTES,
            active: 0,
            index: Index::default(),
            ordered: RefCell::new(None),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed),
            gen: 1,
            frozen: 0,
            durable: 0,
            live_entries: 0,
            unfrozen_bytes: 0,
            live_bytes: 0,
        }
    }

    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }

    fn segment(&self, i: u32) -> &Segment {
        self.segments[i as usize]
            .as_ref()
            .expect("live segment")
            .get()
    }

    /// The index slot of `key`'s entry.
    fn find(&self, key: &[u8], hash: u64) -> Option<usize> {
        self.index.find(hash, |loc| {
            self.segment(loc.segment).key(loc.offset as usize) == key
        })
    }

    /// Called by a batch of lookups (`hashes`) as it reaches key `i`: starts loading the
    /// index slot of key `i + 16` and the entry of key `i + 8`, whose slot was asked for
    /// eight keys ago. Random keys in a table larger than the CPU caches then wait for
    /// memory together instead of one miss after another (a miss costs about 100 ns, a
    /// lookup that hits cache a few). Only tables that fit in the first-level cache skip
    /// it: 16 K entries (2.5 MB) already miss the second level, and updated 1.2× faster
    /// with it.
    pub(crate) fn prefetch_ahead(&self, hashes: &[u64], i: usize) {
        const SLOT_AHEAD: usize = 16;
        const ENTRY_AHEAD: usize = 8;
        const ENTRY_PREFETCH_BYTES: usize = 128;
        if self.index.capacity() < 1 << 10 {
            return;
        }
        if let Some(&hash) = hashes.get(i + SLOT_AHEAD) {
            self.index.prefetch(hash);
        }
        // The first entry with the hash: almost always the key's own.
        if let Some(loc) = hashes
            .get(i + ENTRY_AHEAD)
            .and_then(|&h| self.index.first_with(h))
        {
            // A 32-byte header, a short key and a short value span two or three cache
            // lines, and a prefetch loads one.
            let entry = self
                .segment(loc.segment)
                .data
                .as_ptr()
                .wrapping_add(loc.offset as usize);
            for at in [0, 64, ENTRY_PREFETCH_BYTES - 1] {
                prefetch(entry.wrapping_add(at));
            }
        }
    }

    fn found_at(&self, loc: Loc) -> Found<'_> {
        let seg = self.segment(loc.segment);
        let h = seg.header(loc.offset as usize);
        Found {
            flags: h.flags,
            written_at: h.written_at,
            value: seg.value(loc.offset as usize, &h),
        }
    }

    /// The entry under `key` (a composite key) with `hash = self.hash(key)`.
    pub(crate) fn get(&self, key: &[u8], hash: u64) -> Option<Found<'_>> {
        let slot = self.find(key, hash)?;
        Some(self.found_at(self.index.loc(slot)))
    }

    /// Stores `value` under `key`, in place when it fits. `in_runs`: a run file may hold
    /// the key (only consulted when tier 0 does not know it).
    pub(crate) fn put(&mut self, key: &[u8], hash: u64, value: &[u8], time: i64, in_runs: bool) {
        self.write(key, hash, value, time, 0, in_runs);
    }

    /// Deletes `key`: a tombstone if a run file may hold it (`in_runs` for keys tier 0 does
    /// not know), otherwise the entry is simply forgotten.
    pub(crate) fn delete(&mut self, key: &[u8], hash: u64, time: i64, in_runs: bool) {
        match self.find(key, hash) {
            Some(slot) => {
                let loc = self.index.loc(slot);
                let h = self.segment(loc.segment).header(loc.offset as usize);
                if h.flags & MAYBE_IN_RUNS != 0 || h.gen <= self.frozen {
                    self.write(key, hash, &[], time, TOMBSTONE, true);
                } else {
                    self.remove(slot);
                }
            }
            None if in_runs => self.write(key, hash, &[], time, TOMBSTONE, true),
            None => {}
        }
    }

    /// Caches a clean version read from a run file (it is already durable).
    pub(crate) fn cache(&mut self, key: &[u8], hash: u64, value: &[u8], time: i64) {
        if self.find(key, hash).is_some() {
            return;
        }
        // Generation 0 is older than every freeze: clean, never written out again.
        self.insert_new(key, hash, value, time, MAYBE_IN_RUNS, 0);
    }

    fn write(&mut self, key: &[u8], hash: u64, value: &[u8], time: i64, kind: u8, in_runs: bool) {
        self.unfrozen_bytes += key.len() + value.len();
        let Some(at) = self.find(key, hash) else {
            let flags = kind | if in_runs { MAYBE_IN_RUNS } else { 0 };
            self.insert_new(key, hash, value, time, flags, self.gen);
            return;
        };
        let loc = self.index.loc(at);
        let gen = self.gen;
        let h = self.segment(loc.segment).header(loc.offset as usize);
        let mut flags = (h.flags & MAYBE_IN_RUNS) | kind;
        if h.gen <= self.frozen {
            flags |= MAYBE_IN_RUNS;
        }
        let was_tombstone = h.flags & TOMBSTONE != 0;
        let is_tombstone = kind & TOMBSTONE != 0;
        self.live_bytes = self.live_bytes - u64::from(h.value_len) + value.len() as u64;
        match (was_tombstone, is_tombstone) {
            (false, true) => {
                self.live_entries -= 1;
                self.live_bytes -= key.len() as u64;
            }
            (true, false) => {
                self.live_entries += 1;
                self.live_bytes += key.len() as u64;
            }
            _ => {}
        }
        let fits = value.len() <= h.capacity as usize;
        let writable = self.segments[loc.segment as usize]
            .as_mut()
            .expect("live")
            .get_mut();
        if let Some(seg) = writable {
            if fits {
                seg.overwrite(loc.offset as usize, flags, value, gen, time);
                let info = &mut self.info[loc.segment as usize];
                info.max_gen = info.max_gen.max(gen);
                return;
            }
            seg.set_flags(loc.offset as usize, h.flags | DEAD);
        }
        // Copy on write (the segment is frozen) or grow: a new copy in the active segment.
        self.info[loc.segment as usize].live -= h.size();
        let new = self.append_at_gen(key, value, time, flags, self.gen);
        self.index.set_loc(at, new);
    }

    fn insert_new(&mut self, key: &[u8], hash: u64, value: &[u8], time: i64, flags: u8, gen: u32) {
        let loc = self.append_at_gen(key, value, time, flags, gen);
        self.index.insert(hash, loc);
        if let Some(o) = self.ordered.get_mut() {
            o.insert(key.into());
        }
        if flags & TOMBSTONE == 0 {
            self.live_entries += 1;
            self.live_bytes += (key.len() + value.len()) as u64;
        }
    }

    /// Appends a copy of an entry to the active segment (a new one if it is full or shared).
    fn append_at_gen(&mut self, key: &[u8], value: &[u8], time: i64, flags: u8, gen: u32) -> Loc {
        let capacity = capacity_for(value.len());
        let size = HEADER + key.len() + capacity;
        let active = self.active as usize;
        let writable = self.segments[active]
            .as_mut()
            .and_then(Held::get_mut)
            .is_some_and(|s| s.fits(size));
        if !writable {
            // Room for the padding that may go before the entry.
            self.new_active(size + MAX_PADDING);
        }
        let active = self.active as usize;
        let seg = self.segments[active]
            .as_mut()
            .and_then(Held::get_mut)
            .expect("the active segment is writable");
        let header = Header {
            flags,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            capacity: capacity as u32,
            gen,
            written_at: time,
        };
        let offset = seg.append(&header, key, value);
        let info = &mut self.info[active];
        info.live += size;
        info.max_gen = info.max_gen.max(gen);
        Loc {
            segment: active as u32,
            offset: offset as u32,
        }
    }

    fn new_active(&mut self, at_least: usize) {
        let seg = match self.spare.pop() {
            Some(seg) if at_least <= SEGMENT_BYTES => seg,
            _ => Segment::with_capacity(at_least.max(SEGMENT_BYTES)),
        };
        self.segment_bytes += seg.data.capacity();
        let seg = Held::Own(seg);
        let i = match self.free_segments.pop() {
            Some(i) => {
                self.segments[i as usize] = Some(seg);
                self.info[i as usize] = SegmentInfo::default();
                i
            }
            None => {
                self.segments.push(Some(seg));
                self.info.push(SegmentInfo::default());
                (self.segments.len() - 1) as u32
            }
        };
        self.active = i;
    }

    /// Forgets the entry in index slot `at` (no tombstone).
    fn remove(&mut self, at: usize) {
        let loc = self.index.loc(at);
        let offset = loc.offset as usize;
        let held = self.segments[loc.segment as usize].as_mut().expect("live");
        let h = held.get().header(offset);
        if let Some(o) = self.ordered.get_mut() {
            o.remove(held.get().key(offset));
        }
        if let Some(seg) = held.get_mut() {
            seg.set_flags(offset, h.flags | DEAD);
        }
        self.info[loc.segment as usize].live -= h.size();
        self.drop_from_index(h, at);
    }

    /// Ends the current generation: the returned segments hold its entries (and older
    /// ones not yet durable) and stay unchanged while shared.
    pub(crate) fn freeze(&mut self) -> Frozen {
        let after = self.frozen;
        let upto = self.gen;
        let segments = self
            .segments
            .iter_mut()
            .zip(&self.info)
            .filter(|(_, info)| info.max_gen > after)
            .filter_map(|(s, _)| s.as_mut().map(Held::share))
            .collect();
        self.frozen = upto;
        self.gen += 1;
        self.unfrozen_bytes = 0;
        Frozen {
            segments,
            after,
            upto,
        }
    }

    /// Generations up to `gen` are in run files: their entries may be evicted.
    pub(crate) fn mark_durable(&mut self, gen: u32) {
        self.durable = self.durable.max(gen);
    }

    /// Bytes of keys and values written since the last freeze.
    pub(crate) fn unfrozen_bytes(&self) -> usize {
        self.unfrozen_bytes
    }

    /// Whether anything was written since the last freeze.
    pub(crate) fn has_unfrozen_writes(&self) -> bool {
        self.info.iter().any(|i| i.max_gen > self.frozen)
    }

    /// Drops clean segments, oldest first, until at most `target` bytes are held; returns
    /// the bytes freed. Only segments nobody shares and with nothing newer than the durable
    /// generation are dropped, so nothing unwritten is lost.
    pub(crate) fn evict(&mut self, target: usize) -> usize {
        // Memory is wanted back: no spares.
        self.spare.clear();
        let mut freed = 0;
        for i in 0..self.segments.len() {
            if self.memory() <= target {
                break;
            }
            let i32_ = i as u32;
            if i32_ == self.active || self.info[i].max_gen > self.durable {
                continue;
            }
            let Some(seg) = self.take_unshared(i32_) else {
                continue;
            };
            for (at, h, hash) in self.undead_in(&seg) {
                // Forgetting shifts slots, so each entry is looked up as its turn comes.
                if let Some(slot) = self.index.find_loc(hash, here(i32_, at)) {
                    self.forget(h, slot, seg.key(at));
                }
            }
            freed += self.release_segment(i32_, seg);
        }
        freed
    }

    /// In-memory compaction: moves the live entries of segments that are mostly garbage
    /// (deleted, superseded or grown entries leave their old bytes behind) into the active
    /// segment and frees them. Entries keep their generation, so what is dirty stays dirty.
    /// Segments a snapshot still reads are left alone. Returns the bytes freed.
    pub(crate) fn compact_garbage(&mut self) -> usize {
        let mut freed = 0;
        for i in 0..self.segments.len() {
            let i32_ = i as u32;
            let Some(seg) = &self.segments[i] else {
                continue;
            };
            if i32_ == self.active || self.info[i].live * 2 > seg.get().data.capacity() {
                continue;
            }
            let Some(seg) = self.take_unshared(i32_) else {
                continue;
            };
            for (at, h, hash) in self.undead_in(&seg) {
                let Some(slot) = self.index.find_loc(hash, here(i32_, at)) else {
                    continue;
                };
                let value = seg.value(at, &h);
                let new = self.append_at_gen(seg.key(at), value, h.written_at, h.flags, h.gen);
                self.index.set_loc(slot, new);
            }
            freed += self.release_segment(i32_, seg);
        }
        freed
    }

    /// Segment `i` out of the table, unless a snapshot still shares it.
    fn take_unshared(&mut self, i: u32) -> Option<Segment> {
        let held = self.segments[i as usize].take()?;
        match held.into_owned() {
            Ok(seg) => Some(seg),
            Err(shared) => {
                self.segments[i as usize] = Some(shared);
                None
            }
        }
    }

    /// The entries of `seg` not marked dead, with their hashes; those the index still
    /// points at (found by hash and location) are live. A copy in a shared segment is not
    /// marked when its entry moves, so the index has the last word.
    fn undead_in(&self, seg: &Segment) -> Vec<(usize, Header, u64)> {
        seg.offsets()
            .map(|at| (at, seg.header(at)))
            .filter(|(_, h)| h.flags & DEAD == 0)
            .map(|(at, h)| (at, h, self.hash(seg.key(at))))
            .collect()
    }

    /// Takes back an emptied segment's slot and keeps its buffer for reuse (up to a few).
    fn release_segment(&mut self, i: u32, mut seg: Segment) -> usize {
        let bytes = seg.data.capacity();
        self.segment_bytes -= bytes;
        self.info[i as usize] = SegmentInfo::default();
        self.free_segments.push(i);
        if bytes == SEGMENT_BYTES && self.spare.len() < 4 {
            seg.data.clear();
            self.spare.push(seg);
        }
        bytes
    }

    /// Drops the live entry in index slot `at` from the index, the ordered view and the
    /// counts.
    fn forget(&mut self, h: Header, at: usize, key: &[u8]) {
        if let Some(o) = self.ordered.get_mut() {
            o.remove(key);
        }
        self.drop_from_index(h, at);
    }

    /// Drops the entry in index slot `at` from the index and the counts.
    fn drop_from_index(&mut self, h: Header, at: usize) {
        if h.flags & TOMBSTONE == 0 {
            self.live_entries -= 1;
            self.live_bytes -= u64::from(h.key_len + h.value_len);
        }
        self.index.remove(at);
    }

    /// Removes every entry whose write time is at or before `cutoff` (TTL): older versions
    /// in run files are older still, so no tombstone is needed. Returns how many.
    pub(crate) fn expire(&mut self, cutoff: i64) -> u64 {
        let mut doomed = Vec::new();
        for (hash, loc) in self.index.iter() {
            let h = self.segment(loc.segment).header(loc.offset as usize);
            if h.written_at <= cutoff {
                doomed.push((hash, loc, h.flags & TOMBSTONE == 0));
            }
        }
        let mut n = 0;
        // Removing shifts slots, so each entry is found again by where it lives.
        for (hash, loc, live) in doomed {
            let at = self.index.find_loc(hash, loc).expect("live");
            self.remove(at);
            n += u64::from(live);
        }
        n
    }

    /// Bytes held: segments, index and ordered view.
    pub(crate) fn memory(&self) -> usize {
        let segments = self.segment_bytes + self.spare.len() * SEGMENT_BYTES;
        // A B-tree entry: the boxed key and about 16 bytes of node overhead.
        let ordered = self
            .ordered
            .borrow()
            .as_ref()
            .map_or(0, |o| o.len() * 32 + self.live_bytes as usize / 2);
        segments + self.index.capacity() * 16 + ordered
    }

    /// Bytes in segments that no live entry uses.
    pub(crate) fn garbage(&self) -> usize {
        self.segments
            .iter()
            .zip(&self.info)
            .filter_map(|(s, i)| s.as_ref().map(|s| s.get().data.len() - i.live))
            .sum()
    }

    pub(crate) fn live_entries(&self) -> usize {
        self.live_entries
    }

    pub(crate) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Calls `visit(key, found)` for entries with `start <= key < end` in key order
    /// (tombstones included), until it returns false.
    pub(crate) fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], Found<'_>) -> bool,
    ) {
        if start >= end {
            return;
        }
        let mut ordered = self.ordered.borrow_mut();
        let ordered = ordered.get_or_insert_with(|| {
            self.index
                .iter()
                .map(|(_, loc)| Box::from(self.segment(loc.segment).key(loc.offset as usize)))
                .collect()
        });
        let range = (Bound::Included(start), Bound::Excluded(end));
        for key in ordered.range::<[u8], _>(range) {
            let at = self
                .find(key, self.hash(key))
                .expect("ordered keys are indexed");
            if !visit(key, self.found_at(self.index.loc(at))) {
                break;
            }
        }
    }
}

/// The location of the entry at byte `at` of segment `i`.
fn here(i: u32, at: usize) -> Loc {
    Loc {
        segment: i,
        offset: at as u32,
    }
}

#[cfg(test)]
mod tests;
