use super::*;
use std::collections::BTreeMap;

fn put(t: &mut Tier0, key: &[u8], value: &[u8]) {
    let h = t.hash(key);
    t.put(key, h, value, 0, false);
}

fn get(t: &Tier0, key: &[u8]) -> Option<Vec<u8>> {
    let f = t.get(key, t.hash(key))?;
    (!f.is_tombstone()).then(|| f.value.to_vec())
}

fn scan_all(t: &Tier0) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    t.scan(b"", &[0xff; 8], &mut |k, f| {
        if !f.is_tombstone() {
            out.push((k.to_vec(), f.value.to_vec()));
        }
        true
    });
    out
}

#[test]
fn values_update_in_place_and_grow_by_moving() {
    let mut t = Tier0::new();
    put(&mut t, b"a", b"12345678");
    put(&mut t, b"b", b"x");
    let before = t.memory();
    for i in 0..1000u64 {
        put(&mut t, b"a", &i.to_le_bytes());
    }
    assert_eq!(t.memory(), before, "same-size updates allocate nothing");
    assert_eq!(get(&t, b"a"), Some(999u64.to_le_bytes().to_vec()));
    put(&mut t, b"b", &[7; 100]);
    assert_eq!(get(&t, b"b"), Some(vec![7; 100]));
    assert!(t.garbage() > 0, "the grown value left its old copy behind");
    assert_eq!(t.live_entries(), 2);
    assert_eq!(t.live_bytes(), (1 + 8) + (1 + 100));
}

#[test]
fn deletes_leave_tombstones_only_where_runs_may_hold_the_key() {
    let mut t = Tier0::new();
    put(&mut t, b"fresh", b"1");
    let h = t.hash(b"fresh");
    t.delete(b"fresh", h, 0, false);
    assert!(
        t.get(b"fresh", h).is_none(),
        "never frozen: simply forgotten"
    );

    put(&mut t, b"old", b"1");
    let _frozen = t.freeze();
    let h = t.hash(b"old");
    t.delete(b"old", h, 0, false);
    assert!(
        t.get(b"old", h).unwrap().is_tombstone(),
        "its frozen copy reaches a run"
    );

    let h = t.hash(b"cold");
    t.delete(b"cold", h, 0, true);
    assert!(t.get(b"cold", h).unwrap().is_tombstone());
    assert_eq!(t.live_entries(), 0);
}

#[test]
fn a_freeze_sees_its_generation_unchanged_by_later_writes() {
    let mut t = Tier0::new();
    for i in 0..100u32 {
        put(&mut t, &i.to_be_bytes(), &i.to_le_bytes());
    }
    let frozen = t.freeze();
    // Later writes: in-place-sized updates, growth, deletes, new keys.
    for i in 0..100u32 {
        put(&mut t, &i.to_be_bytes(), &(i + 1000).to_le_bytes());
    }
    put(&mut t, &5u32.to_be_bytes(), &[9; 50]);
    let h = t.hash(&6u32.to_be_bytes());
    t.delete(&6u32.to_be_bytes(), h, 0, false);
    put(&mut t, b"new", b"n");
    let seen = frozen.sorted();
    assert_eq!(seen.len(), 100);
    for (i, (k, f)) in seen.iter().enumerate() {
        assert_eq!(*k, (i as u32).to_be_bytes());
        assert_eq!(f.value, (i as u32).to_le_bytes());
    }
    assert_eq!(
        get(&t, &7u32.to_be_bytes()),
        Some(1007u32.to_le_bytes().to_vec())
    );
    drop(frozen);

    // The next freeze holds only what changed after the first.
    let second = t.freeze();
    let keys: Vec<&[u8]> = second.sorted().iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys.len(),
        101,
        "100 updated keys (one a tombstone) and one new key"
    );
}

#[test]
fn only_durable_segments_are_evicted() {
    let mut t = Tier0::new();
    let value = [1u8; 200];
    for i in 0..20_000u32 {
        put(&mut t, &i.to_be_bytes(), &value);
    }
    let full = t.memory();
    assert_eq!(t.evict(0), 0, "nothing is durable yet");
    let frozen = t.freeze();
    assert_eq!(t.evict(0), 0, "the freeze still shares the segments");
    let upto = frozen.upto;
    drop(frozen);
    t.mark_durable(upto);
    let freed = t.evict(full / 2);
    assert!(freed > 0 && t.memory() <= full / 2 + (1 << 18));
    let left = t.live_entries();
    assert!(left < 20_000 && left > 0);
    assert_eq!(
        scan_all(&t).len(),
        left,
        "the ordered view drops evicted entries"
    );
    for i in 0..20_000u32 {
        put(&mut t, &i.to_be_bytes(), b"back");
    }
    assert_eq!(t.live_entries(), 20_000, "evicted ids are reused safely");
    assert!(scan_all(&t).iter().all(|(_, v)| v == b"back"));
}

#[test]
fn scans_are_in_key_order_across_inserts_and_removes() {
    let mut t = Tier0::new();
    let mut model = BTreeMap::new();
    for round in 0..5u32 {
        for i in 0..300u32 {
            let k = ((i * 7919 + round) % 500).to_be_bytes();
            let h = t.hash(&k);
            if (i + round) % 4 == 0 {
                t.delete(&k, h, 0, false);
                model.remove(k.as_slice());
            } else {
                t.put(&k, h, &round.to_le_bytes(), 0, false);
                model.insert(k.to_vec(), round.to_le_bytes().to_vec());
            }
        }
        let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(scan_all(&t), expected);
    }
    let mut some = Vec::new();
    t.scan(&100u32.to_be_bytes(), &110u32.to_be_bytes(), &mut |k, _| {
        some.push(k.to_vec());
        true
    });
    let expected: Vec<_> = model
        .range(100u32.to_be_bytes().to_vec()..110u32.to_be_bytes().to_vec())
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(some, expected);
}

#[test]
fn expiry_removes_entries_written_at_or_before_the_cutoff() {
    let mut t = Tier0::new();
    for i in 0..10i64 {
        let k = i.to_be_bytes();
        let h = t.hash(&k);
        t.put(&k, h, b"v", i * 10, false);
    }
    assert_eq!(t.expire(45), 5);
    assert_eq!(t.live_entries(), 5);
    assert!(get(&t, &4i64.to_be_bytes()).is_none());
    assert!(get(&t, &5i64.to_be_bytes()).is_some());
}

#[test]
fn garbage_is_compacted_in_memory_without_losing_dirty_entries() {
    let mut t = Tier0::new();
    for i in 0..20_000u32 {
        put(&mut t, &i.to_be_bytes(), &[3u8; 100]);
    }
    for i in (0..20_000u32).filter(|i| i % 10 != 0) {
        let k = i.to_be_bytes();
        let h = t.hash(&k);
        t.delete(&k, h, 0, false);
    }
    let before = t.memory();
    assert!(t.garbage() > before / 2);
    let freed = t.compact_garbage();
    assert!(freed > before / 2, "freed {freed} of {before}");
    assert_eq!(t.live_entries(), 2_000);
    assert_eq!(scan_all(&t).len(), 2_000);
    // The moved entries are still dirty: the next freeze writes them all.
    assert_eq!(t.freeze().sorted().len(), 2_000);
}

#[test]
fn entries_of_one_size_settle_on_cache_lines_and_padding_is_skipped() {
    // 18-byte keys and 64-byte values: 122-byte entries, two cache lines when aligned.
    let mut t = Tier0::new();
    let key = |i: u32| [&[0u8, 1][..], &[i as u8; 12], &i.to_be_bytes()].concat();
    for i in 0..2000u32 {
        put(&mut t, &key(i), &[i as u8; 64]);
    }
    let seg = t.segment(0);
    let base = seg.data.as_ptr() as usize;
    let offsets: Vec<usize> = seg.offsets().collect();
    assert!(
        offsets.len() > 1000,
        "{} entries in the first segment",
        offsets.len()
    );
    let straddling = offsets
        .iter()
        .skip(4)
        .filter(|&&at| (base + at) % 64 + seg.header(at).size() > 128)
        .count();
    assert_eq!(
        straddling, 0,
        "every entry after the first few spans two lines"
    );
    // Walking the segments (as freezes and compactions do) finds every entry once.
    let frozen = t.freeze();
    assert_eq!(frozen.sorted().len(), 2000);
    for i in (0..2000u32).step_by(97) {
        assert_eq!(get(&t, &key(i)), Some(vec![i as u8; 64]));
    }
}

#[test]
fn a_segment_is_written_in_place_again_once_the_snapshot_writer_lets_go() {
    let mut t = Tier0::new();
    put(&mut t, b"a", &[1; 8]);
    put(&mut t, b"b", &[1; 8]);
    let frozen = t.freeze();
    put(&mut t, b"a", &[2; 8]);
    let garbage = t.garbage();
    assert!(garbage > 0, "shared: the update was a copy");
    assert_eq!(frozen.sorted()[0].1.value, [1; 8]);
    drop(frozen);
    // "b" still lives in the segment the freeze shared, which nobody reads now: it is
    // updated where it is, and a freeze that shares the segment again sees it unchanged.
    for i in 0..100u8 {
        put(&mut t, b"b", &[i; 8]);
    }
    assert_eq!(t.garbage(), garbage, "owned again: updated in place");
    let second = t.freeze();
    put(&mut t, b"b", &[7; 8]);
    let seen = second.sorted();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].0, b"b");
    assert_eq!(seen[1].1.value, [99; 8]);
    assert_eq!(get(&t, b"b"), Some(vec![7; 8]));
}
