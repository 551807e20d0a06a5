//! Property test: a TieredTable behaves like a BTreeMap through random sequences of puts,
//! deletes, range deletes, time, flushes (with background compaction), snapshots, restores
//! and rescales; with large values kept in blob files or in the runs.

use std::collections::BTreeMap;

use gemini_state::{CheckpointStore, KeyGroupRange, StateTable, TableOptions, TieredTable};
use proptest::prelude::*;

const GROUPS: u16 = 4;
const TTL: i64 = 40;

#[derive(Debug, Clone)]
enum Op {
    Put(u16, Vec<u8>, Vec<u8>),
    Delete(u16, Vec<u8>),
    DeleteRange(u16, Vec<u8>, Vec<u8>),
    Advance(i64),
    Flush,
    /// Snapshot, then carry on with a table restored from it.
    SnapshotRestore,
    Check,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 0xff]), 0..4)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..GROUPS, key(), 0..300usize, any::<u8>())
            .prop_map(|(g, k, n, b)| Op::Put(g, k, vec![b; n])),
        3 => (0..GROUPS, key()).prop_map(|(g, k)| Op::Delete(g, k)),
        1 => (0..GROUPS, key(), key()).prop_map(|(g, a, b)| Op::DeleteRange(g, a, b)),
        1 => (0..30i64).prop_map(Op::Advance),
        1 => Just(Op::Flush),
        1 => Just(Op::SnapshotRestore),
        2 => Just(Op::Check),
    ]
}

/// No blob files, every non-empty value in one, or values of 100 bytes and more.
fn blob_min_bytes() -> impl Strategy<Value = Option<usize>> {
    prop::sample::select(vec![None, Some(1), Some(100)])
}

/// The model: (key group, key) -> (value, written at).
type Model = BTreeMap<(u16, Vec<u8>), (Vec<u8>, i64)>;

struct Harness {
    dir: tempfile::TempDir,
    ttl: Option<i64>,
    blob_min_bytes: Option<usize>,
    now: i64,
    generation: u32,
    checkpoint: u64,
}

impl Harness {
    fn options(&mut self, name: &str) -> TableOptions {
        self.generation += 1;
        TableOptions {
            ttl_ms: self.ttl,
            // Far below a segment: every few kilobytes of writes flush a run.
            memory_budget: 16 << 10,
            dir: Some(self.dir.path().join(format!("local-{}", self.generation))),
            checkpoints: Some(CheckpointStore::local(self.dir.path().join("checkpoints")).unwrap()),
            name: Some(name.to_string()),
            compaction_fanout: 2,
            blob_min_bytes: self.blob_min_bytes,
            ..TableOptions::default()
        }
    }

    fn live(&self, model: &Model) -> Vec<(u16, Vec<u8>, Vec<u8>)> {
        model
            .iter()
            .filter(|(_, (_, at))| self.ttl.is_none_or(|ttl| at + ttl > self.now))
            .map(|((g, k), (v, _))| (*g, k.clone(), v.clone()))
            .collect()
    }
}

fn contents(t: &TieredTable, range: KeyGroupRange) -> Vec<(u16, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for g in range.start..range.end {
        t.scan_prefix(g, &[], &mut |k, v| {
            out.push((g, k.to_vec(), v.to_vec()));
            true
        })
        .unwrap();
    }
    out
}

fn check(t: &mut TieredTable, h: &Harness, model: &Model, range: KeyGroupRange) {
    let expected: Vec<_> = h
        .live(model)
        .into_iter()
        .filter(|(g, _, _)| range.contains(*g))
        .collect();
    let got = contents(t, range);
    if got != expected {
        let summary = |v: &[(u16, Vec<u8>, Vec<u8>)]| -> Vec<String> {
            v.iter()
                .map(|(g, k, v)| format!("{g}/{k:?}={}b{:?}", v.len(), v.first()))
                .collect()
        };
        panic!(
            "scans disagree with the model:\n got {:?}\nwant {:?}",
            summary(&got),
            summary(&expected)
        );
    }
    let groups: Vec<u16> = expected.iter().map(|e| e.0).collect();
    let keys: Vec<&[u8]> = expected.iter().map(|e| e.1.as_slice()).collect();
    let mut out = Vec::new();
    t.get_many(&groups, &keys, &mut out).unwrap();
    for (e, got) in expected.iter().zip(&out) {
        assert_eq!(got.as_deref(), Some(e.2.as_slice()), "point read of {e:?}");
    }
}

fn run(ops: Vec<Op>, ttl: Option<i64>, blob_min_bytes: Option<usize>) {
    let all = KeyGroupRange {
        start: 0,
        end: GROUPS,
    };
    let mut h = Harness {
        dir: tempfile::tempdir().unwrap(),
        ttl,
        blob_min_bytes,
        now: 0,
        generation: 0,
        checkpoint: 0,
    };
    let opts = h.options("t");
    let mut t = TieredTable::new(all, opts).unwrap();
    t.advance_time(0).unwrap();
    let mut model = Model::new();
    for op in ops {
        match op {
            Op::Put(g, k, v) => {
                t.put_many(&[g], &[&k], &[&v]).unwrap();
                model.insert((g, k), (v, h.now));
            }
            Op::Delete(g, k) => {
                t.delete_many(&[g], &[&k]).unwrap();
                model.remove(&(g, k));
            }
            Op::DeleteRange(g, a, b) => {
                let n = t.delete_range(g, &a, &b).unwrap();
                if a >= b {
                    assert_eq!(n, 0);
                    continue;
                }
                let doomed: Vec<_> = model
                    .range((g, a.clone())..(g, b.clone()))
                    .filter(|(_, (_, at))| h.ttl.is_none_or(|ttl| at + ttl > h.now))
                    .map(|(k, _)| k.clone())
                    .collect();
                assert_eq!(n, doomed.len() as u64, "delete_range counts live keys");
                // Expired keys in the range are gone too (invisible either way).
                let all_in: Vec<_> = model
                    .range((g, a.clone())..(g, b.clone()))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in all_in {
                    model.remove(&k);
                }
            }
            Op::Advance(d) => {
                h.now += d;
                t.advance_time(h.now).unwrap();
            }
            Op::Flush => t.flush().unwrap(),
            Op::SnapshotRestore => {
                h.checkpoint += 1;
                let manifest = t.snapshot(h.checkpoint).unwrap().wait().unwrap();
                // Writes after the snapshot must not leak into it.
                t.put_many(&[0], &[b"after"], &[b"x"]).unwrap();
                drop(t);
                let opts = h.options("t");
                t = TieredTable::new(all, opts).unwrap();
                t.advance_time(h.now).unwrap();
                t.restore(&[manifest]).unwrap();
            }
            Op::Check => check(&mut t, &h, &model, all),
        }
    }
    check(&mut t, &h, &model, all);

    // Rescale 1 -> 2 from a final snapshot.
    h.checkpoint += 1;
    let manifest = t.snapshot(h.checkpoint).unwrap().wait().unwrap();
    for half in [
        KeyGroupRange { start: 0, end: 2 },
        KeyGroupRange { start: 2, end: 4 },
    ] {
        let opts = h.options(&format!("half{}", half.start));
        let mut r = TieredTable::new(half, opts).unwrap();
        r.advance_time(h.now).unwrap();
        r.restore(std::slice::from_ref(&manifest)).unwrap();
        check(&mut r, &h, &model, half);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn tiered_table_matches_a_btreemap(
        ops in prop::collection::vec(op(), 1..250),
        blobs in blob_min_bytes(),
    ) {
        run(ops, None, blobs);
    }

    #[test]
    fn tiered_table_with_ttl_matches_a_btreemap(
        ops in prop::collection::vec(op(), 1..250),
        blobs in blob_min_bytes(),
    ) {
        run(ops, Some(TTL), blobs);
    }
}
