//! Tier 2 in an S3-compatible bucket: snapshots upload their run files and manifests over
//! the S3 protocol, restores fetch them lazily, and old checkpoints are deleted. The server
//! is moto's, installed by `ci/setup.sh` into a virtual environment and run on a loopback
//! port for the length of each test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gemini_state::{CheckpointStore, KeyGroupRange, StateTable, TableOptions, TieredTable};

/// A moto S3 server on a free loopback port, stopped when dropped.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl S3Server {
    fn start() -> S3Server {
        let venv = std::env::var_os("EDDY_S3_VENV").map_or_else(
            || {
                let cache = std::env::var_os("XDG_CACHE_HOME").map_or_else(
                    || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"),
                    PathBuf::from,
                );
                cache.join("eddy/s3-venv")
            },
            PathBuf::from,
        );
        let python = venv.join("bin/python");
        assert!(
            python.exists(),
            "no S3 test server at {}: run `bash ci/setup.sh` first",
            venv.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        // Startup takes a second or two; give up after a generous while.
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the S3 server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Makes a bucket (object_store reads and writes objects; buckets are made outside it).
    fn create_bucket(&self, bucket: &str) {
        let host = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    fn store(&self, url: &str) -> CheckpointStore {
        CheckpointStore::open(
            url,
            &[
                ("s3.endpoint", &self.endpoint),
                ("s3.access-key", "eddy"),
                ("s3.secret-key", "eddy-secret"),
                ("s3.region", "us-east-1"),
                ("s3.path.style.access", "true"),
            ],
        )
        .unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(local: &Path, store: &CheckpointStore, budget: usize) -> TableOptions {
    TableOptions {
        memory_budget: budget,
        dir: Some(local.to_path_buf()),
        checkpoints: Some(store.clone()),
        name: Some("join-0".into()),
        // Values run 48 to 87 bytes: about half go to blob files, which travel too.
        blob_min_bytes: Some(68),
        ..TableOptions::default()
    }
}

/// A table over all eight key groups.
fn table(local: &Path, store: &CheckpointStore, budget: usize) -> TieredTable {
    TieredTable::new(
        KeyGroupRange { start: 0, end: 8 },
        options(local, store, budget),
    )
    .unwrap()
}

fn key(i: u32) -> [u8; 4] {
    i.to_be_bytes()
}

fn group(i: u32) -> u16 {
    (i % 8) as u16
}

fn value(i: u32, round: u32) -> Vec<u8> {
    let mut v = format!("round {round} key {i} ").into_bytes();
    v.resize(48 + (i % 40) as usize, b'.');
    v
}

fn read_all(t: &mut TieredTable, keys: impl Iterator<Item = u32>) -> Vec<(u32, Option<Vec<u8>>)> {
    let keys: Vec<u32> = keys.collect();
    let bytes: Vec<[u8; 4]> = keys.iter().map(|&i| key(i)).collect();
    let refs: Vec<&[u8]> = bytes.iter().map(|k| k.as_slice()).collect();
    let groups: Vec<u16> = keys.iter().map(|&i| group(i)).collect();
    let mut out = Vec::new();
    t.get_many(&groups, &refs, &mut out).unwrap();
    keys.into_iter().zip(out).collect()
}

#[test]
fn snapshots_go_to_a_bucket_and_restore_from_it_lazily_and_rescaled() {
    let server = S3Server::start();
    server.create_bucket("eddy-checkpoints");
    let store = server.store("s3://eddy-checkpoints/jobs/nexmark-q20");
    let dir = tempfile::tempdir().unwrap();

    // Round 1 spills to run files under a small budget; round 2 rewrites a third of the
    // keys and deletes a tenth, so checkpoint 2 shares round 1's files and adds a delta.
    let mut t = table(&dir.path().join("writer"), &store, 256 << 10);
    for i in 0..20_000u32 {
        t.put_many(&[group(i)], &[&key(i)], &[&value(i, 1)])
            .unwrap();
    }
    let first = t.snapshot(1).unwrap().wait().unwrap();
    assert!(first.runs.len() > 1, "round 1 spilled: {:?}", first.runs);
    for i in (0..20_000u32).step_by(3) {
        t.put_many(&[group(i)], &[&key(i)], &[&value(i, 2)])
            .unwrap();
    }
    for i in (0..20_000u32).step_by(10) {
        t.delete_many(&[group(i)], &[&key(i)]).unwrap();
    }
    let second = t.snapshot(2).unwrap().wait().unwrap();
    drop(t);
    let expected = |i: u32| {
        if i.is_multiple_of(10) {
            None
        } else if i.is_multiple_of(3) {
            Some(value(i, 2))
        } else {
            Some(value(i, 1))
        }
    };

    // One checkpoint is retained: the first manifest is gone, its files that the second
    // names stay, and the newest manifest is read back from the bucket.
    assert!(!store.contains_manifest("join-0", 1).unwrap());
    for run in &second.runs {
        assert!(store.contains_file(&run.name).unwrap(), "{}", run.name);
    }
    for run in first.runs.iter().filter(|r| !second.runs.contains(r)) {
        assert!(
            !store.contains_file(&run.name).unwrap(),
            "{} stays",
            run.name
        );
    }
    let manifest = store.latest_manifest("join-0").unwrap().unwrap();
    assert_eq!(manifest, second);

    // Restore 1 -> 2 through a second connection, as a new process would: nothing is
    // fetched before it is read, then each half reads its own key groups.
    let fresh = server.store("s3://eddy-checkpoints/jobs/nexmark-q20");
    for (start, end) in [(0u16, 4u16), (4, 8)] {
        let local = dir.path().join(format!("half{start}"));
        // Too few runs to start a compaction, which would fetch files in the background.
        let opts = TableOptions {
            compaction_fanout: 64,
            ..options(&local, &fresh, 256 << 10)
        };
        let mut half = TieredTable::new(KeyGroupRange { start, end }, opts).unwrap();
        half.restore(std::slice::from_ref(&manifest)).unwrap();
        let fetched = || std::fs::read_dir(&local).map_or(0, |d| d.count());
        assert_eq!(fetched(), 0, "nothing is fetched before it is read");
        let mine = (0..20_000u32).filter(|&i| (start..end).contains(&group(i)));
        let mut live = 0;
        for (i, got) in read_all(&mut half, mine) {
            assert_eq!(got, expected(i), "key {i}");
            live += usize::from(got.is_some());
        }
        assert!(fetched() > 0);
        assert_eq!(half.len(), live);
    }
}

#[test]
fn a_run_file_larger_than_one_put_goes_up_in_parts() {
    let server = S3Server::start();
    server.create_bucket("eddy-big");
    let store = server.store("s3a://eddy-big/cp");
    let dir = tempfile::tempdir().unwrap();
    // About 24 MB in tier 0, all in one flushed run and its blob file: above the single-PUT
    // size.
    let mut t = table(&dir.path().join("writer"), &store, 1 << 30);
    let big = |i: u32| {
        let mut v = value(i, 7);
        v.resize(600, (i % 251) as u8);
        v
    };
    for i in 0..40_000u32 {
        t.put_many(&[group(i)], &[&key(i)], &[&big(i)]).unwrap();
    }
    let manifest = t.snapshot(7).unwrap().wait().unwrap();
    assert_eq!(manifest.runs.len(), 1);
    assert!(
        manifest.runs[0].blobs[0].bytes > 16 << 20,
        "{:?}",
        manifest.runs[0]
    );
    drop(t);

    let mut r = table(&dir.path().join("reader"), &store, 1 << 30);
    r.restore(&[manifest]).unwrap();
    for (i, got) in read_all(&mut r, (0..40_000u32).step_by(7)) {
        assert_eq!(got, Some(big(i)), "key {i}");
    }
}

#[test]
fn files_copied_into_a_bucket_and_out_to_another_directory_restore_there() {
    // As a savepoint travels: written to a local checkpoint directory, copied into a
    // bucket, copied from there into another job's directory, and restored from that.
    let server = S3Server::start();
    server.create_bucket("eddy-savepoints");
    let dir = tempfile::tempdir().unwrap();
    let first = CheckpointStore::local(dir.path().join("job-a")).unwrap();
    let mut t = table(&dir.path().join("writer"), &first, 64 << 10);
    for i in 0..5_000u32 {
        t.put_many(&[group(i)], &[&key(i)], &[&value(i, 3)])
            .unwrap();
    }
    let manifest = t.snapshot(4).unwrap().wait().unwrap();
    drop(t);
    let files = manifest.files();
    assert!(files.len() > 1, "{files:?}");

    let bucket = server.store("s3://eddy-savepoints/savepoint-1");
    let second = CheckpointStore::local(dir.path().join("job-b")).unwrap();
    for name in &files {
        first.copy_file_to(name, &bucket).unwrap();
        assert!(bucket.contains_file(name).unwrap(), "{name}");
        // Through a fresh connection, as the resuming process would.
        let from = server.store("s3://eddy-savepoints/savepoint-1");
        from.copy_file_to(name, &second).unwrap();
        // A file already there is not copied again.
        from.copy_file_to(name, &second).unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("job-a")).unwrap();

    let mut restored = table(&dir.path().join("reader"), &second, 64 << 10);
    restored.restore(std::slice::from_ref(&manifest)).unwrap();
    for (i, got) in read_all(&mut restored, 0..5_000u32) {
        assert_eq!(got, Some(value(i, 3)), "key {i}");
    }
}
