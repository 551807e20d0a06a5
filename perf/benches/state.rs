//! gemini-state benchmarks, one thread:
//!
//! - `tier0`: point reads and in-place updates of 16-byte keys with 64-byte values, all in
//!   memory (the target is 10 M operations per second);
//! - `ycsb`: YCSB A (50% reads, 50% updates) and F (read-modify-write) over uniformly random
//!   keys whose working set is 10x the table's memory budget, so most operations go to run
//!   files; after the run the write and space amplification are printed;
//! - `large_values`: YCSB A again, with 256 B, 1 KiB and 4 KiB values, each with values kept
//!   in the run files and with values of 256 B and more separated into blob files (gemini-state
//!   only): what separation costs the reads and saves the compactions.
//!
//! Operations go through the `StateTable` batch calls the operators use, 1024 keys a call.
//!
//! With the `rocksdb` feature (`perf/rocksdb-bench.sh`) every workload runs on RocksDB too,
//! in the same run, configured as Flink's RocksDB state backend is (no WAL, memory split
//! between write buffers and block cache) and given a quarter more memory than tier 0 (both
//! read files through the page cache); its results are named
//! `rocksdb_…` next to gemini-state's.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gemini_state::{KeyGroupRange, StateTable, TableOptions, TieredTable};

#[cfg(feature = "rocksdb")]
#[path = "state_rocksdb.rs"]
mod state_rocksdb;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 1024;
const GROUPS: u16 = 128;

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.to_be_bytes());
    k[8..].copy_from_slice(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
    k
}

fn group_of(i: u64) -> u16 {
    (i % u64::from(GROUPS)) as u16
}

/// What the workloads need of a store: the batch calls, and its amplification afterwards.
trait Store {
    /// Prefixes the benchmark names ("" for gemini-state).
    const NAME: &'static str;
    fn open(budget: usize, dir: &Path) -> Self;
    fn read_many(
        &mut self,
        groups: &[u16],
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, Option<&[u8]>),
    );
    fn put_many(&mut self, groups: &[u16], keys: &[&[u8]], values: &[&[u8]]);
    /// After the in-memory workload: checks (gemini-state) or reports (RocksDB, whose
    /// memtables flush at their own size) that nothing went to disk.
    fn after_in_memory(&self, bench: &str);
    /// Writes out what is in memory and prints the write and space amplification.
    fn report_amplification(&mut self, bench: &str, live: u64);
}

impl Store for TieredTable {
    const NAME: &'static str = "";

    /// `budget` bytes of tier 0, nothing more: run files are read through a memory map, from
    /// the page cache (RocksDB gets a quarter more, for its block cache, and the page cache).
    fn open(budget: usize, dir: &Path) -> Self {
        gemini_table(budget, dir, TableOptions::default().blob_min_bytes)
    }

    fn read_many(
        &mut self,
        groups: &[u16],
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, Option<&[u8]>),
    ) {
        StateTable::read_many(self, groups, keys, visit).unwrap()
    }

    fn put_many(&mut self, groups: &[u16], keys: &[&[u8]], values: &[&[u8]]) {
        StateTable::put_many(self, groups, keys, values).unwrap()
    }

    fn after_in_memory(&self, bench: &str) {
        assert!(self.runs().is_empty(), "{bench}: tier 0 held everything");
    }

    fn report_amplification(&mut self, bench: &str, live: u64) {
        self.flush().unwrap();
        let s = self.stats();
        let runs = self.runs();
        let on_disk = self.file_bytes();
        eprintln!(
            "{bench}: write amplification {:.2} (flushed {} MB + compacted {} MB \
             for {} MB written; {} MB of it to blob files), space amplification {:.2} \
             ({} MB in {} runs and their blob files for {} MB live), \
             reads past tier 0 {}, flush stall {} ms",
            (s.bytes_flushed + s.bytes_compacted) as f64 / s.bytes_written_by_user as f64,
            s.bytes_flushed >> 20,
            s.bytes_compacted >> 20,
            s.bytes_written_by_user >> 20,
            s.bytes_to_blobs >> 20,
            on_disk as f64 / live as f64,
            on_disk >> 20,
            runs.len(),
            live >> 20,
            s.reads_from_runs,
            s.stall_micros / 1000,
        );
    }
}

/// A gemini-state table of every key group with `budget` bytes of tier 0 in `dir`.
fn gemini_table(budget: usize, dir: &Path, blob_min_bytes: Option<usize>) -> TieredTable {
    TieredTable::new(
        KeyGroupRange {
            start: 0,
            end: GROUPS,
        },
        TableOptions {
            memory_budget: budget,
            dir: Some(dir.to_path_buf()),
            blob_min_bytes,
            ..TableOptions::default()
        },
    )
    .unwrap()
}

/// YCSB A on one batch: reads the first half of its keys (summing each value's last byte,
/// so the whole value is reached) and updates the second half with `values[half..]`.
fn read_half_update_half<S: Store>(t: &mut S, batch: &Batch, values: &[&[u8]]) -> u64 {
    let refs = batch.refs();
    let half = BATCH / 2;
    let mut sum = 0u64;
    t.read_many(&batch.groups[..half], &refs[..half], &mut |_, v| {
        sum += v.map_or(0, |v| u64::from(v[v.len() - 1]))
    });
    t.put_many(&batch.groups[half..], &refs[half..], &values[half..]);
    sum
}

/// Writes records `0..records`, each with `value`.
fn load<S: Store>(t: &mut S, records: u64, value: &[u8]) {
    let mut start = 0;
    while start < records {
        let end = (start + BATCH as u64).min(records);
        let keys: Vec<[u8; 16]> = (start..end).map(key).collect();
        let groups: Vec<u16> = (start..end).map(group_of).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let values = vec![value; keys.len()];
        t.put_many(&groups, &refs, &values);
        start = end;
    }
}

/// One batch of random record numbers, with their keys and groups.
struct Batch {
    keys: Vec<[u8; 16]>,
    groups: Vec<u16>,
}

impl Batch {
    fn random(rng: &mut Rng, records: u64) -> Batch {
        let ids: Vec<u64> = (0..BATCH).map(|_| rng.next() % records).collect();
        Batch {
            keys: ids.iter().map(|&i| key(i)).collect(),
            groups: ids.iter().map(|&i| group_of(i)).collect(),
        }
    }

    fn refs(&self) -> Vec<&[u8]> {
        self.keys.iter().map(|k| k.as_slice()).collect()
    }
}

fn tier0(c: &mut Criterion) {
    // 1 M records (130 MB: every access misses the CPU caches) and 16 K (cache-resident).
    tier0_with::<TieredTable>(c, 1_000_000, "state_tier0");
    tier0_with::<TieredTable>(c, 16_384, "state_tier0_cache_resident");
    #[cfg(feature = "rocksdb")]
    {
        use state_rocksdb::Rocks;
        tier0_with::<Rocks>(c, 1_000_000, "state_tier0");
        tier0_with::<Rocks>(c, 16_384, "state_tier0_cache_resident");
    }
}

fn tier0_with<S: Store>(c: &mut Criterion, records: u64, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut t = S::open(1 << 30, dir.path());
    load(&mut t, records, &[7u8; 64]);
    let mut rng = Rng(0x1234_5678);
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(format!("{}get_16B_64B", S::NAME), |b| {
        b.iter_batched(
            || Batch::random(&mut rng, records),
            |batch| {
                let mut sum = 0u64;
                t.read_many(&batch.groups, &batch.refs(), &mut |_, v| {
                    sum += v.map_or(0, |v| u64::from(v[0]))
                });
                black_box(sum)
            },
            BatchSize::SmallInput,
        )
    });
    let values: Vec<[u8; 64]> = (0..BATCH).map(|i| [i as u8; 64]).collect();
    let value_refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    group.bench_function(format!("{}update_16B_64B", S::NAME), |b| {
        b.iter_batched(
            || Batch::random(&mut rng, records),
            |batch| t.put_many(&batch.groups, &batch.refs(), &value_refs),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    t.after_in_memory(name);
}

fn ycsb(c: &mut Criterion) {
    ycsb_with::<TieredTable>(c);
    #[cfg(feature = "rocksdb")]
    ycsb_with::<state_rocksdb::Rocks>(c);
}

fn ycsb_with<S: Store>(c: &mut Criterion) {
    // 16 MiB of tier 0 against 2 M records of 16 + 64 bytes (160 MB of keys and values).
    const RECORDS: u64 = 2_000_000;
    const BUDGET: usize = 16 << 20;
    let dir = tempfile::tempdir().unwrap();
    let mut t = S::open(BUDGET, dir.path());
    load(&mut t, RECORDS, &[7u8; 64]);
    let mut rng = Rng(0x9876_5432);
    let values: Vec<[u8; 64]> = (0..BATCH).map(|i| [i as u8; 64]).collect();
    let value_refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    let mut group = c.benchmark_group("state_ycsb_10x_memory");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    // A: half the batch read, half updated (different keys).
    group.bench_function(format!("{}A_read_update", S::NAME), |b| {
        b.iter_batched(
            || Batch::random(&mut rng, RECORDS),
            |batch| black_box(read_half_update_half(&mut t, &batch, &value_refs)),
            BatchSize::SmallInput,
        )
    });
    // F: read every key, then write back a modified value.
    group.bench_function(format!("{}F_read_modify_write", S::NAME), |b| {
        b.iter_batched(
            || Batch::random(&mut rng, RECORDS),
            |batch| {
                let refs = batch.refs();
                let mut new = vec![[0u8; 64]; BATCH];
                t.read_many(&batch.groups, &refs, &mut |i, v| {
                    if let Some(v) = v {
                        new[i].copy_from_slice(v);
                    }
                    new[i][0] = new[i][0].wrapping_add(1);
                });
                let vals: Vec<&[u8]> = new.iter().map(|v| v.as_slice()).collect();
                t.put_many(&batch.groups, &refs, &vals);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    let bench = format!("state_ycsb_10x_memory/{}", S::NAME);
    t.report_amplification(&bench, RECORDS * (2 + 16 + 64));
}

fn large_values(c: &mut Criterion) {
    for size in [256, 1024, 4096] {
        for blob_min_bytes in [None, Some(256)] {
            large_values_with(c, size, blob_min_bytes);
        }
    }
}

/// YCSB A over 160 MB of `size`-byte values, 10x the memory budget.
fn large_values_with(c: &mut Criterion, size: usize, blob_min_bytes: Option<usize>) {
    const BUDGET: usize = 16 << 20;
    let records = (160 << 20) / (16 + size as u64);
    let dir = tempfile::tempdir().unwrap();
    let mut t = gemini_table(BUDGET, dir.path(), blob_min_bytes);
    load(&mut t, records, &vec![7u8; size]);
    let values: Vec<Vec<u8>> = (0..BATCH).map(|i| vec![i as u8; size]).collect();
    let value_refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    let mut rng = Rng(0x5555_aaaa);
    let mut group = c.benchmark_group("state_large_values_10x_memory");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    let how = if blob_min_bytes.is_some() {
        "blobs"
    } else {
        "inline"
    };
    let name = format!("A_{size}B_{how}");
    group.bench_function(&name, |b| {
        b.iter_batched(
            || Batch::random(&mut rng, records),
            |batch| black_box(read_half_update_half(&mut t, &batch, &value_refs)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    let bench = format!("state_large_values_10x_memory/{name}");
    t.report_amplification(&bench, records * (2 + 16 + size as u64));
}

criterion_group!(benches, tier0, ycsb, large_values);
criterion_main!(benches);
