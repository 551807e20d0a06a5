use std::sync::Arc;

use super::writer::RunSummary;
use super::*;

fn composite(kg: u16, key: &[u8]) -> Vec<u8> {
    let mut k = kg.to_be_bytes().to_vec();
    k.extend_from_slice(key);
    k
}

/// A run of `n` keys over key groups 1..=3 with ~100-byte values (several blocks).
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn write_run(dir: &std::path::Path, n: u32) -> (RunSummary, Pairs) {
    let mut entries: Pairs = (0..n)
        .map(|i| {
            let k = composite(1 + (i % 3) as u16, format!("k{:08}", i * 2).as_bytes());
            (k, vec![(i % 251) as u8; 100])
        })
        .collect();
    entries.sort();
    let mut w = RunWriter::create(&dir.join("1.run"), None).unwrap();
    for (i, (k, v)) in entries.iter().enumerate() {
        let kind = if i % 10 == 0 { Kind::Delete } else { Kind::Put };
        w.add(
            k,
            Stored {
                kind,
                written_at: i as i64,
                value: v,
            },
        )
        .unwrap();
    }
    (w.finish().unwrap(), entries)
}

#[test]
fn a_written_run_reads_back_by_key_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, entries) = write_run(dir.path(), 3000);
    assert_eq!(summary.footer.entries, 3000);
    assert_eq!(summary.footer.tombstones, 300);
    assert_eq!(
        (summary.footer.min_key_group, summary.footer.max_key_group),
        (1, 3)
    );
    let run = Arc::new(RunFile::open(&summary.path).unwrap());
    assert!(
        run.block_count() > 3,
        "values of 300 KB span several blocks"
    );
    for (i, (k, v)) in entries.iter().enumerate() {
        let got = run.get(k, stable_hash(k)).unwrap().unwrap();
        assert_eq!(got.value, *v);
        assert_eq!(got.written_at, i as i64);
        assert_eq!(got.kind == Kind::Delete, i % 10 == 0);
    }
    let missing = composite(2, b"k00000001");
    assert_eq!(run.get(&missing, stable_hash(&missing)).unwrap(), None);
    let missing = composite(9, b"k00000002");
    assert_eq!(run.get(&missing, stable_hash(&missing)).unwrap(), None);

    let start = &entries[1234].0;
    let mut it = RunIter::seek(run.clone(), start).unwrap();
    let mut seen = Vec::new();
    while let Some((k, _)) = it.next().unwrap() {
        seen.push(k.to_vec());
    }
    let expected: Vec<Vec<u8>> = entries[1234..].iter().map(|e| e.0.clone()).collect();
    assert_eq!(seen, expected);
    let mut it = RunIter::seek(run, &composite(4, b"")).unwrap();
    assert!(it.next().unwrap().is_none());
}

#[test]
fn damage_is_reported_with_the_files_path() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, entries) = write_run(dir.path(), 2000);
    let path = summary.path.clone();
    let good = std::fs::read(&path).unwrap();

    // A flipped bit in the first block: opening works, reading that block fails.
    let mut bad = good.clone();
    bad[100] ^= 0x10;
    std::fs::write(&path, &bad).unwrap();
    let run = RunFile::open(&path).unwrap();
    let k = &entries[0].0;
    let err = run.get(k, stable_hash(k)).unwrap_err().to_string();
    assert!(err.contains("1.run") && err.contains("checksum"), "{err}");

    // Truncated: the footer is gone.
    std::fs::write(&path, &good[..good.len() - 10]).unwrap();
    let err = RunFile::open(&path).unwrap_err().to_string();
    assert!(err.contains("1.run"), "{err}");
    std::fs::write(&path, &good[..40]).unwrap();
    let err = RunFile::open(&path).unwrap_err().to_string();
    assert!(err.contains("1.run") && err.contains("truncated"), "{err}");
}

#[test]
fn obsolete_files_are_deleted_when_the_last_reader_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = write_run(dir.path(), 10);
    let run = Arc::new(RunFile::open(&summary.path).unwrap());
    let reader = run.clone();
    run.local().mark_obsolete();
    drop(run);
    assert!(summary.path.exists(), "a reader still holds it");
    drop(reader);
    assert!(!summary.path.exists());
}
