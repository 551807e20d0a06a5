//! Crash safety: a child process writes state non-stop (tier 0 far over its budget, so it is
//! always flushing, and compaction throttled, so one is always under way) and takes a
//! snapshot per round; the parent kills it with SIGKILL at several moments and restores the
//! last checkpoint whose manifest exists. Everything that checkpoint named must be there,
//! exactly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gemini_state::{CheckpointStore, KeyGroupRange, StateTable, TableOptions, TieredTable};

const KEYS: u32 = 6_000;
const GROUPS: u16 = 16;
const CHILD_ENV: &str = "EDDY_STATE_CRASH_CHILD";

fn range() -> KeyGroupRange {
    KeyGroupRange {
        start: 0,
        end: GROUPS,
    }
}

fn options(root: &Path, local: &str) -> TableOptions {
    TableOptions {
        memory_budget: 64 << 10,
        dir: Some(root.join(local)),
        checkpoints: Some(CheckpointStore::local(root.join("checkpoints")).unwrap()),
        retained_checkpoints: 3,
        name: Some("crash".into()),
        compaction_fanout: 2,
        compaction_bytes_per_sec: Some(4 << 20),
        // Values run 40 to 89 bytes: about half go to blob files.
        blob_min_bytes: Some(64),
        ..TableOptions::default()
    }
}

/// What round `round` leaves under key `k`: absent for one key in seven, else a value
/// naming the round.
fn expected(k: u32, round: u64) -> Option<Vec<u8>> {
    if (u64::from(k) + round).is_multiple_of(7) {
        None
    } else {
        let mut v = round.to_le_bytes().to_vec();
        v.extend_from_slice(&k.to_le_bytes());
        v.resize(40 + (k % 50) as usize, b'x');
        Some(v)
    }
}

fn group(k: u32) -> u16 {
    (k % u32::from(GROUPS)) as u16
}

/// The child: rounds of writes, a snapshot after each, forever (until killed).
#[test]
fn crash_child() {
    let Some(root) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return; // only runs as the child of `killed_mid_flush_and_compaction_...`
    };
    let mut t = TieredTable::new(range(), options(&root, "child")).unwrap();
    for round in 1u64.. {
        for k in 0..KEYS {
            let key = k.to_be_bytes();
            match expected(k, round) {
                Some(v) => t.put_many(&[group(k)], &[&key], &[&v]).unwrap(),
                None => t.delete_many(&[group(k)], &[&key]).unwrap(),
            }
        }
        t.snapshot(round).unwrap().wait().unwrap();
    }
}

fn spawn_child(root: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, root)
        .spawn()
        .unwrap()
}

#[test]
fn killed_mid_flush_and_compaction_restores_the_last_checkpoint() {
    for (attempt, rounds_before_kill) in [2u64, 3, 5].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut child = spawn_child(root);
        let store = CheckpointStore::local(root.join("checkpoints")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let done = store
                .latest_manifest("crash")
                .unwrap()
                .is_some_and(|m| m.checkpoint_id >= rounds_before_kill);
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "the child made no progress");
            assert!(child.try_wait().unwrap().is_none(), "the child died early");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Into the next round's writes: flushes and a compaction are under way.
        std::thread::sleep(Duration::from_millis(30 * attempt as u64 + 10));
        child.kill().unwrap();
        child.wait().unwrap();

        let manifest = store.latest_manifest("crash").unwrap().unwrap();
        let round = manifest.checkpoint_id;
        assert!(round >= rounds_before_kill);
        let mut t = TieredTable::new(range(), options(root, "restored")).unwrap();
        t.restore(&[manifest]).unwrap();
        let keys: Vec<[u8; 4]> = (0..KEYS).map(u32::to_be_bytes).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let groups: Vec<u16> = (0..KEYS).map(group).collect();
        let mut got = Vec::new();
        t.get_many(&groups, &refs, &mut got).unwrap();
        for (k, v) in got.iter().enumerate() {
            assert_eq!(*v, expected(k as u32, round), "key {k} after round {round}");
        }
        assert_eq!(
            t.len(),
            (0..KEYS).filter(|&k| expected(k, round).is_some()).count()
        );
    }
}
