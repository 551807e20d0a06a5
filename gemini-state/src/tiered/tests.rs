use super::*;
use crate::CheckpointStore;
use std::path::PathBuf;

fn options(dir: &std::path::Path, budget: usize) -> TableOptions {
    TableOptions {
        memory_budget: budget,
        dir: Some(dir.join("runs")),
        checkpoints: Some(CheckpointStore::local(dir.join("checkpoints")).unwrap()),
        name: Some("op1-0".into()),
        ..TableOptions::default()
    }
}

fn table(dir: &std::path::Path, budget: usize) -> TieredTable {
    TieredTable::new(KeyGroupRange { start: 0, end: 8 }, options(dir, budget)).unwrap()
}

fn get(t: &mut TieredTable, kg: u16, key: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    t.get_many(&[kg], &[key], &mut out).unwrap();
    out.pop().unwrap()
}

fn prefix(t: &TieredTable, kg: u16, p: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v = Vec::new();
    t.scan_prefix(kg, p, &mut |k, val| {
        v.push((k.to_vec(), val.to_vec()));
        true
    })
    .unwrap();
    v
}

fn key(i: u32) -> [u8; 4] {
    i.to_be_bytes()
}

#[test]
fn batch_put_get_delete_and_scans_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = table(dir.path(), 1 << 30);
    t.put_many(
        &[1, 1, 1, 2],
        &[b"ab", b"ac", b"b", b"ab"],
        &[b"1", b"2", b"3", b"4"],
    )
    .unwrap();
    assert_eq!(get(&mut t, 1, b"ab"), Some(b"1".to_vec()));
    assert_eq!(get(&mut t, 3, b"ab"), None);
    assert_eq!(
        prefix(&t, 1, b"a"),
        vec![
            (b"ab".to_vec(), b"1".to_vec()),
            (b"ac".to_vec(), b"2".to_vec())
        ]
    );
    t.delete_many(&[1], &[b"ab"]).unwrap();
    assert_eq!(get(&mut t, 1, b"ab"), None);
    assert_eq!(t.len(), 3);
    assert!(
        t.put_many(&[9], &[b"a"], &[b"1"]).is_err(),
        "foreign key group"
    );
    t.put_many(&[3], &[&[0xff, 0xff]], &[b"x"]).unwrap();
    assert_eq!(
        prefix(&t, 3, &[0xff]).len(),
        1,
        "a 0xff prefix has no successor"
    );
    assert!(t.runs().is_empty(), "nothing was flushed");
}

#[test]
fn state_beyond_the_budget_spills_to_runs_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = table(dir.path(), 2 << 20);
    let value = [7u8; 100];
    for i in 0..60_000u32 {
        t.put_many(&[(i % 8) as u16], &[&key(i)], &[&value])
            .unwrap();
    }
    assert!(
        !t.runs().is_empty(),
        "6 MB of state over a 2 MB budget spilled"
    );
    assert!(t.memory() <= 4 << 20, "tier 0 holds {} bytes", t.memory());
    // Updates and deletes of spilled keys shadow their older versions.
    for i in (0..60_000u32).step_by(3) {
        t.put_many(&[(i % 8) as u16], &[&key(i)], &[b"new"])
            .unwrap();
    }
    for i in (1..60_000u32).step_by(3) {
        t.delete_many(&[(i % 8) as u16], &[&key(i)]).unwrap();
    }
    t.flush().unwrap();
    for i in (0..60_000u32).step_by(997) {
        let expected = match i % 3 {
            0 => Some(b"new".to_vec()),
            1 => None,
            _ => Some(value.to_vec()),
        };
        assert_eq!(get(&mut t, (i % 8) as u16, &key(i)), expected, "key {i}");
    }
    let kg5 = prefix(&t, 5, &[]);
    assert_eq!(
        kg5.len(),
        (0..60_000u32).filter(|i| i % 8 == 5 && i % 3 != 1).count()
    );
    assert!(kg5.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(t.stats().reads_from_runs > 0);
}

#[test]
fn compaction_merges_runs_and_drops_tombstones_at_the_bottom() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = table(dir.path(), 1 << 30);
    for round in 0..20u32 {
        for i in 0..500u32 {
            t.put_many(&[1], &[&key(i)], &[&round.to_le_bytes()])
                .unwrap();
        }
        if round == 19 {
            for i in 0..250u32 {
                t.delete_many(&[1], &[&key(i)]).unwrap();
            }
        }
        t.flush().unwrap();
    }
    // Wait for the compactor to settle (it runs on its own thread).
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.runs().iter().filter(|r| r.tier == 0).count() >= 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let runs = t.runs();
    assert!(runs.len() < 20, "{} runs after 20 flushes", runs.len());
    assert!(t.stats().compactions > 0);
    let all = prefix(&t, 1, &[]);
    assert_eq!(all.len(), 250);
    assert!(all.iter().all(|(_, v)| v == &19u32.to_le_bytes()));
    let bottom: u64 = runs
        .iter()
        .filter(|r| r.tier == 3)
        .map(|r| r.tombstones)
        .sum();
    assert_eq!(bottom, 0, "the bottom run keeps no tombstones");
}

#[test]
fn ttl_hides_expired_entries_and_drops_whole_expired_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 1 << 30);
    opts.ttl_ms = Some(100);
    let mut t = TieredTable::new(KeyGroupRange { start: 0, end: 8 }, opts).unwrap();
    t.advance_time(1_000).unwrap();
    t.put_many(&[0, 0], &[b"a", b"b"], &[b"1", b"2"]).unwrap();
    t.flush().unwrap();
    t.advance_time(1_050).unwrap();
    t.put_many(&[0], &[b"b"], &[b"3"]).unwrap();
    assert_eq!(get(&mut t, 0, b"a"), Some(b"1".to_vec()));
    t.advance_time(1_100).unwrap();
    assert_eq!(
        get(&mut t, 0, b"a"),
        None,
        "written at 1000, expired at 1100"
    );
    assert_eq!(get(&mut t, 0, b"b"), Some(b"3".to_vec()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !t.runs().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(t.runs().is_empty(), "the run written at 1000 expired whole");
    assert_eq!(t.stats().expired_files, 1);
    assert_eq!(prefix(&t, 0, &[]), vec![(b"b".to_vec(), b"3".to_vec())]);
}

#[test]
fn snapshots_are_incremental_and_restore_with_rescale() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = table(dir.path(), 1 << 30);
    for i in 0..1000u32 {
        t.put_many(&[(i % 8) as u16], &[&key(i)], &[&i.to_le_bytes()])
            .unwrap();
    }
    let first = t.snapshot(1).unwrap().wait().unwrap();
    assert_eq!(first.runs.len(), 1);
    // A snapshot with nothing new adds no file; one with changes adds only the delta.
    let same = t.snapshot(2).unwrap().wait().unwrap();
    assert_eq!(same.runs, first.runs);
    t.put_many(&[3], &[&key(3)], &[b"changed"]).unwrap();
    t.delete_many(&[4], &[&key(4)]).unwrap();
    let third = t.snapshot(3).unwrap().wait().unwrap();
    assert_eq!(third.runs.len(), 2);
    assert_eq!(third.runs[0].entries, 2, "the delta holds the two changes");
    assert_eq!(third.runs[1], first.runs[0], "the first file is shared");
    // Writes after the freeze are not in the snapshot.
    t.put_many(&[5], &[&key(5)], &[b"later"]).unwrap();

    let store = CheckpointStore::local(dir.path().join("checkpoints")).unwrap();
    let manifest = store.read_manifest("op1-0", 3).unwrap();
    assert_eq!(manifest, third);

    // Rescale 1 -> 2: each half restores its key groups from the same files.
    for (start, end) in [(0u16, 4u16), (4, 8)] {
        let mut opts = options(&dir.path().join(format!("half{start}")), 1 << 30);
        opts.checkpoints = Some(CheckpointStore::local(dir.path().join("checkpoints")).unwrap());
        let mut half = TieredTable::new(KeyGroupRange { start, end }, opts).unwrap();
        half.restore(std::slice::from_ref(&manifest)).unwrap();
        let mut n = 0;
        for i in 0..1000u32 {
            let kg = (i % 8) as u16;
            if !(start..end).contains(&kg) {
                continue;
            }
            let expected = match i {
                3 => Some(b"changed".to_vec()),
                4 => None,
                _ => Some(i.to_le_bytes().to_vec()),
            };
            assert_eq!(get(&mut half, kg, &key(i)), expected, "key {i}");
            n += usize::from(expected.is_some());
        }
        assert_eq!(half.len(), n);
    }
}

#[test]
fn restore_is_lazy_and_old_checkpoints_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = table(dir.path(), 1 << 30);
    t.put_many(&[1], &[b"k"], &[b"v1"]).unwrap();
    let m1 = t.snapshot(1).unwrap().wait().unwrap();
    t.put_many(&[1], &[b"k"], &[b"v2"]).unwrap();
    let m2 = t.snapshot(2).unwrap().wait().unwrap();
    let store = CheckpointStore::local(dir.path().join("checkpoints")).unwrap();
    assert!(
        !store.contains_manifest("op1-0", 1).unwrap(),
        "one checkpoint is retained"
    );
    assert!(
        store.contains_file(&m1.runs[0].name).unwrap(),
        "still named by checkpoint 2"
    );
    assert_eq!(t.retained_checkpoints(), vec![m2.clone()]);

    let mut opts = options(&dir.path().join("restored"), 1 << 30);
    opts.checkpoints = Some(CheckpointStore::local(dir.path().join("checkpoints")).unwrap());
    let mut r = TieredTable::new(KeyGroupRange { start: 0, end: 8 }, opts).unwrap();
    r.restore(&[m2]).unwrap();
    let local = dir.path().join("restored/runs");
    let fetched = || std::fs::read_dir(&local).map_or(0, |d| d.count());
    assert_eq!(fetched(), 0, "nothing is copied before it is read");
    // Its files are in the checkpoint location already: a checkpoint names them unread.
    let m3 = r.snapshot(3).unwrap().wait().unwrap();
    assert_eq!(m3.runs.len(), 2);
    assert_eq!(fetched(), 0, "a checkpoint fetches nothing");
    assert_eq!(get(&mut r, 1, b"k"), Some(b"v2".to_vec()));
    assert!(fetched() >= 1);
}

/// Flips the byte at `at` of a checkpoint file, after breaking its hard link so that the
/// damage does not reach a local copy.
fn damage(file: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at] ^= 0xff;
    std::fs::remove_file(file).unwrap();
    std::fs::write(file, &bytes).unwrap();
}

/// Restores `m` into `r` and reads key 0 of key group 1, whose bytes in `file` are damaged:
/// the error names the file and the checksum.
fn restore_and_read_damage(r: &mut TieredTable, m: &Manifest, file: &str) {
    r.restore(std::slice::from_ref(m)).unwrap();
    let mut out = Vec::new();
    let err = r
        .get_many(&[1], &[&key(0)], &mut out)
        .unwrap_err()
        .to_string();
    assert!(err.contains(file) && err.contains("checksum"), "{err}");
}

#[test]
fn a_damaged_checkpoint_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = table(dir.path(), 1 << 30);
    for i in 0..2000u32 {
        t.put_many(&[1], &[&key(i)], &[&[1u8; 64]]).unwrap();
    }
    let m = t.snapshot(1).unwrap().wait().unwrap();
    drop(t);
    let store = CheckpointStore::local(dir.path().join("checkpoints")).unwrap();
    let file = PathBuf::from(store.file_location(&m.runs[0].name));
    damage(&file, 200);
    let mut opts = options(&dir.path().join("restored"), 1 << 30);
    opts.checkpoints = Some(CheckpointStore::local(dir.path().join("checkpoints")).unwrap());
    let mut r = TieredTable::new(KeyGroupRange { start: 0, end: 8 }, opts).unwrap();
    restore_and_read_damage(&mut r, &m, &m.runs[0].name);
}

#[test]
fn a_table_without_a_directory_cleans_up_after_itself() {
    let mut t = TieredTable::new(
        KeyGroupRange { start: 0, end: 1 },
        TableOptions {
            memory_budget: 1 << 20,
            ..TableOptions::default()
        },
    )
    .unwrap();
    for i in 0..50_000u32 {
        t.put_many(&[0], &[&key(i)], &[&[0u8; 40]]).unwrap();
    }
    let dir = t.shared.dir.clone();
    assert!(dir.exists() && !t.runs().is_empty());
    drop(t);
    assert!(!dir.exists());
}

fn blob_options(dir: &std::path::Path) -> TableOptions {
    TableOptions {
        blob_min_bytes: Some(256),
        compaction_fanout: 2,
        ..options(dir, 1 << 30)
    }
}

/// A table restoring from the checkpoints of the table in `dir`, into a directory of its own.
fn restored_with_blobs(dir: &std::path::Path) -> TieredTable {
    let mut opts = blob_options(&dir.join("restored"));
    opts.checkpoints = Some(CheckpointStore::local(dir.join("checkpoints")).unwrap());
    TieredTable::new(KeyGroupRange { start: 0, end: 8 }, opts).unwrap()
}

/// A 1 KiB value that says which key and round wrote it.
fn large_value(i: u32, round: u32) -> Vec<u8> {
    let mut v = vec![(i ^ round) as u8; 1024];
    v[..4].copy_from_slice(&i.to_le_bytes());
    v[4..8].copy_from_slice(&round.to_le_bytes());
    v
}

fn files_with_extension(dir: &std::path::Path, extension: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == extension))
        })
        .count()
    })
}

#[test]
fn large_values_live_in_blob_files_that_compaction_passes_by_and_reclaims() {
    const KEYS: u32 = 600;
    let dir = tempfile::tempdir().unwrap();
    let mut t =
        TieredTable::new(KeyGroupRange { start: 0, end: 8 }, blob_options(dir.path())).unwrap();
    let mut latest = vec![0u32; KEYS as usize];
    for round in 1..=40u32 {
        // A third of the keys a round, plus one small value that stays in the run.
        for i in (0..KEYS).filter(|i| i % 3 == round % 3) {
            t.put_many(&[(i % 8) as u16], &[&key(i)], &[&large_value(i, round)])
                .unwrap();
            latest[i as usize] = round;
        }
        t.put_many(&[0], &[b"small"], &[&round.to_le_bytes()])
            .unwrap();
        t.flush().unwrap();
    }
    // Let the compactor finish: the bottom merge that relocates blob values may follow the
    // merges of tier 0, and a retired file goes once the compactor drops its last reader.
    let local = dir.path().join("runs");
    let referenced_blobs = |t: &TieredTable| {
        let mut ids: Vec<u64> = t
            .runs()
            .iter()
            .flat_map(|r| &r.blobs)
            .map(|b| b.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while (t.shared.compaction_pending()
        || files_with_extension(&local, "blob") != referenced_blobs(&t))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let check = |t: &mut TieredTable| {
        for i in 0..KEYS {
            let want = large_value(i, latest[i as usize]);
            assert_eq!(
                get(t, (i % 8) as u16, &key(i)),
                Some(want.clone()),
                "key {i}"
            );
            assert_eq!(
                prefix(t, (i % 8) as u16, &key(i)),
                vec![(key(i).to_vec(), want)]
            );
        }
        assert_eq!(get(t, 0, b"small"), Some(40u32.to_le_bytes().to_vec()));
    };
    // Read from the runs, not from tier 0's copies.
    t.tier0 = Tier0::new();
    check(&mut t);

    let runs = t.runs();
    let run_bytes: u64 = runs.iter().map(|r| r.bytes).sum();
    let mut blobs: Vec<&BlobUse> = runs.iter().flat_map(|r| &r.blobs).collect();
    blobs.sort_by_key(|b| b.id);
    blobs.dedup_by_key(|b| b.id);
    let blob_bytes: u64 = blobs.iter().map(|b| b.bytes).sum();
    let live = u64::from(KEYS) * (1024 + 4);
    let s = t.stats();
    assert!(s.bytes_to_blobs > 0 && s.compactions > 0);
    assert!(
        run_bytes * 8 < live,
        "runs hold keys and references: {run_bytes} bytes"
    );
    assert!(
        blob_bytes < 3 * live,
        "relocation reclaims dead values: {blob_bytes} bytes of blob files for {live} live"
    );
    // Files no run references are gone (once their readers are).
    assert_eq!(files_with_extension(&local, "blob"), blobs.len());
    assert_eq!(files_with_extension(&local, "blob-tmp"), 0);

    // A checkpoint carries the blob files; a restore fetches them when read.
    let m = t.snapshot(1).unwrap().wait().unwrap();
    assert!(m.files().iter().any(|f| f.ends_with(".blob")));
    drop(t);
    let mut r = restored_with_blobs(dir.path());
    r.restore(&[m]).unwrap();
    check(&mut r);
}

#[test]
fn a_damaged_blob_file_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut t =
        TieredTable::new(KeyGroupRange { start: 0, end: 8 }, blob_options(dir.path())).unwrap();
    for i in 0..20u32 {
        t.put_many(&[1], &[&key(i)], &[&large_value(i, 0)]).unwrap();
    }
    let m = t.snapshot(1).unwrap().wait().unwrap();
    drop(t);
    let blob = &m.runs[0].blobs[0].name;
    let store = CheckpointStore::local(dir.path().join("checkpoints")).unwrap();
    let file = PathBuf::from(store.file_location(blob));
    damage(&file, 100); // inside the first value
    let mut r = restored_with_blobs(dir.path());
    restore_and_read_damage(&mut r, &m, blob);
    assert_eq!(get(&mut r, 1, &key(1)), Some(large_value(1, 0)));
}

#[test]
fn a_restore_refuses_a_manifest_whose_blob_file_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut t =
        TieredTable::new(KeyGroupRange { start: 0, end: 8 }, blob_options(dir.path())).unwrap();
    for i in 0..20u32 {
        t.put_many(&[1], &[&key(i)], &[&large_value(i, 0)]).unwrap();
    }
    let m = t.snapshot(1).unwrap().wait().unwrap();
    drop(t);
    let blob = &m.runs[0].blobs[0].name;
    let store = CheckpointStore::local(dir.path().join("checkpoints")).unwrap();
    std::fs::remove_file(store.file_location(blob)).unwrap();
    let mut r = restored_with_blobs(dir.path());
    let err = r.restore(std::slice::from_ref(&m)).unwrap_err().to_string();
    assert!(err.contains(blob) && err.contains("missing"), "{err}");
}
