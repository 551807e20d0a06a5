//! Tier 0: a sorted in-memory table.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::table::Result;
use crate::{
    Entry, KeyGroup, KeyGroupRange, StateError, StateSize, StateTable, TableOptions, TableSnapshot,
};

/// Stored value with the time it was last written (for TTL).
#[derive(Debug, Clone)]
struct Slot {
    value: Vec<u8>,
    written_at: i64,
}

/// An in-memory [`StateTable`] ordered by (key group, key).
///
/// The composite key is the big-endian key group followed by the user key, so a key group is a
/// contiguous key range and prefix scans are range scans.
#[derive(Debug)]
pub struct MemoryTable {
    range: KeyGroupRange,
    options: TableOptions,
    map: BTreeMap<Vec<u8>, Slot>,
    /// Bytes of the stored keys and values.
    bytes: u64,
    now_ms: i64,
}

impl MemoryTable {
    pub fn new(range: KeyGroupRange, options: TableOptions) -> Self {
        MemoryTable {
            range,
            options,
            map: BTreeMap::new(),
            bytes: 0,
            now_ms: i64::MIN,
        }
    }

    fn insert(&mut self, key: Vec<u8>, slot: Slot) {
        let key_len = key.len() as u64;
        self.bytes += slot.value.len() as u64;
        match self.map.insert(key, slot) {
            Some(old) => self.bytes -= old.value.len() as u64,
            None => self.bytes += key_len,
        }
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some(old) => {
                self.bytes -= (key.len() + old.value.len()) as u64;
                true
            }
            None => false,
        }
    }

    /// Deletes the composite keys in `[lo, hi)`; returns how many.
    fn remove_range(&mut self, lo: Vec<u8>, hi: Vec<u8>) -> u64 {
        let doomed: Vec<Vec<u8>> = self.map.range(lo..hi).map(|(k, _)| k.clone()).collect();
        for k in &doomed {
            self.remove(k);
        }
        doomed.len() as u64
    }

    fn check(&self, kg: KeyGroup) -> Result<()> {
        if self.range.contains(kg) {
            Ok(())
        } else {
            Err(StateError::ForeignKeyGroup {
                key_group: kg,
                range: self.range,
            })
        }
    }

    fn composite(kg: KeyGroup, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(2 + key.len());
        k.extend_from_slice(&kg.to_be_bytes());
        k.extend_from_slice(key);
        k
    }

    fn expired(&self, slot: &Slot) -> bool {
        match self.options.ttl_ms {
            Some(ttl) => {
                self.now_ms != i64::MIN && slot.written_at.saturating_add(ttl) <= self.now_ms
            }
            None => false,
        }
    }

    fn scan(
        &self,
        kg: KeyGroup,
        lower: Vec<u8>,
        upper: Bound<Vec<u8>>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.check(kg)?;
        for (k, slot) in self.map.range((Bound::Included(lower), upper)) {
            if self.expired(slot) {
                continue;
            }
            if !visit(&k[2..], &slot.value) {
                break;
            }
        }
        Ok(())
    }
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < u8::MAX {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

impl StateTable for MemoryTable {
    fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    fn get_many(
        &self,
        key_groups: &[KeyGroup],
        keys: &[&[u8]],
        out: &mut Vec<Option<Vec<u8>>>,
    ) -> Result<()> {
        out.clear();
        out.reserve(keys.len());
        let mut probe = Vec::new();
        for (&kg, key) in key_groups.iter().zip(keys) {
            self.check(kg)?;
            probe.clear();
            probe.extend_from_slice(&kg.to_be_bytes());
            probe.extend_from_slice(key);
            let found = self
                .map
                .get(&probe)
                .filter(|s| !self.expired(s))
                .map(|s| s.value.clone());
            out.push(found);
        }
        Ok(())
    }

    fn put_many(
        &mut self,
        key_groups: &[KeyGroup],
        keys: &[&[u8]],
        values: &[&[u8]],
    ) -> Result<()> {
        for ((&kg, key), value) in key_groups.iter().zip(keys).zip(values) {
            self.check(kg)?;
            let slot = Slot {
                value: value.to_vec(),
                written_at: self.now_ms,
            };
            self.insert(Self::composite(kg, key), slot);
        }
        Ok(())
    }

    fn delete_many(&mut self, key_groups: &[KeyGroup], keys: &[&[u8]]) -> Result<()> {
        for (&kg, key) in key_groups.iter().zip(keys) {
            self.check(kg)?;
            self.remove(&Self::composite(kg, key));
        }
        Ok(())
    }

    fn scan_prefix(
        &self,
        key_group: KeyGroup,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let lower = Self::composite(key_group, prefix);
        let upper = match prefix_successor(&lower) {
            Some(u) => Bound::Excluded(u),
            None => Bound::Unbounded,
        };
        self.scan(key_group, lower, upper, visit)
    }

    fn scan_range(
        &self,
        key_group: KeyGroup,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let lower = Self::composite(key_group, start);
        self.scan(
            key_group,
            lower,
            Bound::Excluded(Self::composite(key_group, end)),
            visit,
        )
    }

    fn delete_range(&mut self, key_group: KeyGroup, start: &[u8], end: &[u8]) -> Result<u64> {
        self.check(key_group)?;
        if start >= end {
            return Ok(0);
        }
        Ok(self.remove_range(
            Self::composite(key_group, start),
            Self::composite(key_group, end),
        ))
    }

    fn delete_range_all_groups(&mut self, start: &[u8], end: &[u8]) -> Result<u64> {
        if start >= end {
            return Ok(0);
        }
        let mut deleted = 0;
        for kg in self.range.start..self.range.end {
            deleted += self.remove_range(Self::composite(kg, start), Self::composite(kg, end));
        }
        Ok(deleted)
    }

    fn advance_time(&mut self, now_ms: i64) -> Result<u64> {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(ttl) = self.options.ttl_ms else {
            return Ok(0);
        };
        let before = self.map.len();
        let now = self.now_ms;
        let mut freed = 0u64;
        self.map.retain(|k, s| {
            let keep = s.written_at.saturating_add(ttl) > now;
            if !keep {
                freed += (k.len() + s.value.len()) as u64;
            }
            keep
        });
        self.bytes -= freed;
        Ok((before - self.map.len()) as u64)
    }

    fn len(&self) -> usize {
        self.map.values().filter(|s| !self.expired(s)).count()
    }

    fn size(&self) -> StateSize {
        StateSize {
            entries: self.map.len() as u64,
            bytes: self.bytes,
        }
    }

    fn snapshot(&mut self, checkpoint_id: u64) -> Result<TableSnapshot> {
        let entries = self
            .map
            .iter()
            .filter(|(_, s)| !self.expired(s))
            .map(|(k, s)| Entry {
                key_group: u16::from_be_bytes([k[0], k[1]]),
                key: k[2..].to_vec(),
                value: s.value.clone(),
            })
            .collect();
        Ok(TableSnapshot {
            checkpoint_id,
            entries,
        })
    }

    fn restore(&mut self, snapshot: &TableSnapshot) -> Result<()> {
        self.map.clear();
        self.bytes = 0;
        let range = self.range;
        for e in snapshot
            .entries
            .iter()
            .filter(|e| range.contains(e.key_group))
        {
            let slot = Slot {
                value: e.value.clone(),
                written_at: self.now_ms,
            };
            self.insert(Self::composite(e.key_group, &e.key), slot);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(ttl: Option<i64>) -> MemoryTable {
        MemoryTable::new(
            KeyGroupRange { start: 0, end: 8 },
            TableOptions { ttl_ms: ttl },
        )
    }

    fn collect_prefix(t: &MemoryTable, kg: KeyGroup, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v = Vec::new();
        t.scan_prefix(kg, prefix, &mut |k, val| {
            v.push((k.to_vec(), val.to_vec()));
            true
        })
        .unwrap();
        v
    }

    #[test]
    fn batch_put_get_delete() {
        let mut t = table(None);
        t.put_many(&[1, 1, 2], &[b"a", b"b", b"a"], &[b"1", b"2", b"3"])
            .unwrap();
        let mut out = Vec::new();
        t.get_many(&[1, 2, 3], &[b"a", b"a", b"a"], &mut out)
            .unwrap();
        assert_eq!(out, vec![Some(b"1".to_vec()), Some(b"3".to_vec()), None]);
        t.delete_many(&[1], &[b"a"]).unwrap();
        t.get_many(&[1, 1], &[b"a", b"b"], &mut out).unwrap();
        assert_eq!(out, vec![None, Some(b"2".to_vec())]);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn foreign_key_group_is_an_error() {
        let mut t = table(None);
        assert!(t.put_many(&[9], &[b"a"], &[b"1"]).is_err());
    }

    #[test]
    fn prefix_scan_stays_in_its_key_group_and_prefix() {
        let mut t = table(None);
        t.put_many(
            &[1, 1, 1, 2],
            &[b"ab", b"ac", b"b", b"ab"],
            &[b"1", b"2", b"3", b"4"],
        )
        .unwrap();
        let got = collect_prefix(&t, 1, b"a");
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), b"1".to_vec()),
                (b"ac".to_vec(), b"2".to_vec())
            ]
        );
        t.put_many(&[3], &[&[0xff, 0xff]], &[b"x"]).unwrap();
        assert_eq!(
            collect_prefix(&t, 3, &[0xff]).len(),
            1,
            "prefix of 0xff has no successor"
        );
    }

    #[test]
    fn delete_range_drops_time_prefixed_keys_in_every_group() {
        let mut t = table(None);
        let ts = |x: u64| x.to_be_bytes();
        t.put_many(&[1, 2, 2], &[&ts(5), &ts(10), &ts(20)], &[b"a", b"b", b"c"])
            .unwrap();
        assert_eq!(t.delete_range_all_groups(&ts(0), &ts(11)).unwrap(), 2);
        assert_eq!(t.len(), 1);
        t.put_many(&[3, 4], &[&ts(5), &ts(5)], &[b"d", b"e"])
            .unwrap();
        assert_eq!(t.delete_range(3, &ts(0), &ts(11)).unwrap(), 1);
        assert_eq!(t.len(), 2, "other key groups keep their keys");
    }

    #[test]
    fn size_counts_keys_and_values_through_every_write() {
        let mut t = table(Some(100));
        let size = |t: &MemoryTable| (t.size().entries, t.size().bytes);
        t.advance_time(0).unwrap();
        t.put_many(&[1, 2], &[b"ab", b"c"], &[b"xyz", b""]).unwrap();
        // Each key is stored behind its two-byte key group.
        assert_eq!(size(&t), (2, (2 + 2 + 3) + (2 + 1)));
        t.put_many(&[1], &[b"ab"], &[b"x"]).unwrap();
        assert_eq!(size(&t), (2, (2 + 2 + 1) + (2 + 1)));
        t.delete_many(&[2, 2], &[b"c", b"missing"]).unwrap();
        assert_eq!(size(&t), (1, 5));
        t.advance_time(100).unwrap();
        assert_eq!(size(&t), (0, 0), "expired entries are freed");
        let snap = TableSnapshot {
            checkpoint_id: 1,
            entries: vec![Entry {
                key_group: 3,
                key: b"k".to_vec(),
                value: b"vv".to_vec(),
            }],
        };
        t.restore(&snap).unwrap();
        assert_eq!(size(&t), (1, 5));
    }

    #[test]
    fn ttl_expires_entries_once_time_passes() {
        let mut t = table(Some(100));
        t.advance_time(1_000).unwrap();
        t.put_many(&[0], &[b"k"], &[b"v"]).unwrap();
        t.advance_time(1_099).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.advance_time(1_100).unwrap(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn snapshot_restores_only_owned_key_groups() {
        let mut t = table(None);
        t.put_many(&[0, 7], &[b"x", b"y"], &[b"1", b"2"]).unwrap();
        let snap = t.snapshot(1).unwrap();
        let mut half =
            MemoryTable::new(KeyGroupRange { start: 4, end: 8 }, TableOptions::default());
        half.restore(&snap).unwrap();
        let mut out = Vec::new();
        half.get_many(&[7], &[b"y"], &mut out).unwrap();
        assert_eq!(out, vec![Some(b"2".to_vec())]);
        assert_eq!(half.len(), 1);
    }
}
