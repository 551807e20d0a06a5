//! [`TieredTable`]: the state table of an operator subtask over all tiers: tier 0 in memory,
//! run files on local disk when tier 0 passes its budget, a checkpoint location for
//! snapshots.
//!
//! Reads try tier 0 first, then the runs newest first (a bloom filter and the key-group range
//! in each footer skip most files); a version found in a run is cached in tier 0. Writes go to
//! tier 0 only. When tier 0 holds more than its budget it is flushed: its generation is
//! frozen and written as a run on the operator's thread, then clean segments are evicted.
//! A snapshot freezes tier 0 (no copying) and hands the generation to the snapshot thread,
//! which writes it as a run and publishes the manifest; the operator goes on at once.

mod keys;
mod merge;
mod version;
mod worker;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::checkpoint::Manifest;
use crate::run::{stable_hash, Kind, Stored};
use crate::table::Result;
use crate::tier0::{Found, Tier0};
use keys::{composite, StoredKeys};
use merge::{Head, Merge, Source};
use version::{Blob, Run, Version};
pub use version::{BlobUse, RunMeta};
pub use worker::TieredStats;
use worker::{ensure_dir, temp_dir, CompactionPolicy, Job, Shared, Workers};

use crate::{
    KeyGroup, KeyGroupRange, StateError, StateResult, StateSize, StateTable, TableOptions,
};

/// A snapshot being written in the background.
#[derive(Debug)]
pub struct PendingSnapshot {
    checkpoint_id: u64,
    done: Receiver<Result<Manifest>>,
}

impl PendingSnapshot {
    pub fn checkpoint_id(&self) -> u64 {
        self.checkpoint_id
    }

    /// Waits for the delta to be written and the manifest published.
    pub fn wait(self) -> Result<Manifest> {
        match self.done.recv() {
            Ok(r) => r,
            Err(_) => Err(StateError::CorruptSnapshot(
                self.checkpoint_id,
                "the snapshot thread stopped".into(),
            )),
        }
    }
}

/// A tiered state table; see the module docs.
pub struct TieredTable {
    range: KeyGroupRange,
    tier0: Tier0,
    memory_budget: usize,
    now_ms: i64,
    /// When tier 0 was last swept for expired entries (table time).
    swept_at: i64,
    shared: Arc<Shared>,
    workers: Option<Workers>,
    /// Snapshot deltas written in the background that tier 0 does not yet know are durable.
    in_flight: Vec<(u32, Receiver<bool>)>,
    /// Whether the table made its directory itself (and removes it when dropped).
    owns_dir: bool,
    dir_ready: bool,
}

static TABLE_SEQ: AtomicU64 = AtomicU64::new(0);

impl TieredTable {
    pub fn new(range: KeyGroupRange, options: TableOptions) -> Result<TieredTable> {
        let name = options.name.clone().unwrap_or_else(|| {
            format!(
                "t{}",
                TABLE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )
        });
        let (dir, owns_dir) = match &options.dir {
            Some(d) => (d.clone(), false),
            None => (temp_dir(&name), true),
        };
        let shared = Arc::new(Shared {
            incarnation: incarnation(),
            name,
            dir,
            range,
            ttl_ms: options.ttl_ms,
            blob_min_bytes: options.blob_min_bytes,
            blob_bytes_since_bottom: AtomicU64::new(0),
            version: Mutex::new(Arc::new(Version::default())),
            version_changed: Default::default(),
            next_file: AtomicU64::new(1),
            now_ms: AtomicI64::new(i64::MIN),
            stats: Mutex::new(TieredStats::default()),
            policy: CompactionPolicy {
                fanout: options.compaction_fanout.max(2),
                bottom_tier: 3,
                bytes_per_sec: options.compaction_bytes_per_sec,
                blob_garbage_ratio: 0.5,
            },
            store: options.checkpoints.clone(),
            retained: Mutex::new(Vec::new()),
            retain: options.retained_checkpoints,
        });
        Ok(TieredTable {
            range,
            tier0: Tier0::new(),
            memory_budget: options.memory_budget,
            now_ms: i64::MIN,
            swept_at: i64::MIN,
            shared,
            workers: None,
            in_flight: Vec::new(),
            owns_dir,
            dir_ready: false,
        })
    }

    pub fn stats(&self) -> TieredStats {
        *self.shared.stats.lock()
    }

    /// The run files the table reads now, newest first.
    pub fn runs(&self) -> Vec<RunMeta> {
        self.shared
            .version()
            .runs
            .iter()
            .map(|r| r.meta.clone())
            .collect()
    }

    /// Bytes of the run files the table reads now and of the blob files they reference.
    pub fn file_bytes(&self) -> u64 {
        let version = self.shared.version();
        let runs: u64 = version.runs.iter().map(|r| r.meta.bytes).sum();
        let blobs: u64 = version.blobs().values().map(|(b, _)| b.bytes).sum();
        runs + blobs
    }

    /// Bytes tier 0 holds (segments and index).
    pub fn memory(&self) -> usize {
        self.tier0.memory()
    }

    /// Whether compaction lags behind flushes: the table slows its flushes meanwhile.
    pub fn backpressure(&self) -> bool {
        self.shared.backlog() >= self.shared.stall_limit()
    }

    fn workers(&mut self) -> Result<&Workers> {
        if !self.dir_ready {
            ensure_dir(&self.shared.dir)?;
            self.dir_ready = true;
        }
        Ok(self
            .workers
            .get_or_insert_with(|| Workers::start(self.shared.clone())))
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

    fn expired(&self, written_at: i64) -> bool {
        worker::expired(self.shared.ttl_ms, written_at, self.now_ms)
    }

    /// Whether run files (written or being written) may hold keys.
    fn has_runs(&self) -> bool {
        !self.in_flight.is_empty() || !self.shared.version().runs.is_empty()
    }

    /// Tier 0 learns which background deltas finished (their generations are durable);
    /// true if any did.
    fn settle(&mut self, wait: bool) -> bool {
        let tier0 = &mut self.tier0;
        let mut durable = false;
        self.in_flight.retain(|(gen, rx)| {
            let answer = if wait {
                rx.recv().ok()
            } else {
                match rx.try_recv() {
                    Ok(written) => Some(written),
                    Err(crossbeam_channel::TryRecvError::Empty) => return true,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => None,
                }
            };
            // A failed delta leaves its generation dirty: the next flush writes it.
            if answer == Some(true) {
                tier0.mark_durable(*gen);
                durable = true;
            }
            false
        });
        durable
    }

    /// Writes tier 0's dirty entries as a run and evicts clean ones, when over budget. The
    /// run is written on the snapshot thread while the operator goes on (the freeze shares
    /// tier 0's segments, so nothing is copied); its entries are evicted once it is durable.
    fn maybe_flush(&mut self) -> Result<()> {
        if self.tier0.memory() <= self.memory_budget {
            return Ok(());
        }
        if self.settle_and_evict(false) && self.tier0.memory() <= self.memory_budget {
            return Ok(());
        }
        // Garbage first: reclaiming it in memory beats writing live entries out.
        if self.tier0.garbage() * 4 > self.tier0.memory() {
            self.tier0.compact_garbage();
            if self.tier0.memory() <= self.memory_budget * 3 / 4 {
                return Ok(());
            }
        }
        // Also wait for a quarter budget of new writes, so a tier 0 that cannot shrink below
        // its budget (hot entries) does not flush tiny runs on every call.
        if self.tier0.unfrozen_bytes() < self.memory_budget / 4 {
            return Ok(());
        }
        self.flush_in_background()
    }

    /// Freezes tier 0 and has the snapshot thread write the run. One such flush at a time:
    /// a second waits for the first (memory stays within about twice the budget) and for
    /// compaction's backlog.
    fn flush_in_background(&mut self) -> Result<()> {
        self.workers()?;
        self.settle_and_evict(true);
        self.wait_for_compaction();
        if self.tier0.has_unfrozen_writes() {
            self.submit_frozen(None);
        }
        Ok(())
    }

    /// Settles background writes (waiting for them if `wait`) and, if any made entries
    /// clean, evicts down to half the budget; true if any did.
    fn settle_and_evict(&mut self, wait: bool) -> bool {
        let durable = self.settle(wait);
        if durable {
            self.tier0.evict(self.memory_budget / 2);
        }
        durable
    }

    /// Freezes tier 0 and hands the generation to the snapshot thread, with the checkpoint
    /// to publish after it, if any. The workers are started.
    fn submit_frozen(&mut self, checkpoint: Option<(u64, Sender<StateResult<Manifest>>)>) {
        let frozen = self.tier0.freeze();
        let (durable, durable_rx) = crossbeam_channel::bounded(1);
        self.in_flight.push((frozen.upto, durable_rx));
        self.workers.as_ref().expect("started").submit(Job {
            frozen,
            checkpoint,
            durable,
        });
    }

    /// Flushes tier 0 now (see the module docs); also for tests and benchmarks.
    pub fn flush(&mut self) -> Result<()> {
        self.workers()?;
        self.settle(true);
        self.wait_for_compaction();
        if self.tier0.has_unfrozen_writes() {
            let frozen = self.tier0.freeze();
            let upto = frozen.upto;
            self.shared.write_frozen(&frozen)?;
            drop(frozen);
            self.tier0.mark_durable(upto);
        }
        self.tier0.evict(self.memory_budget / 2);
        if let Some(w) = &self.workers {
            w.poke();
        }
        Ok(())
    }

    /// Backpressure: with too many flushed runs waiting, give compaction some time (bounded,
    /// so writes never stop) and count the wait.
    fn wait_for_compaction(&self) {
        let limit = self.shared.stall_limit();
        if self.shared.backlog() < limit {
            return;
        }
        let start = Instant::now();
        let deadline = start + Duration::from_secs(2);
        let mut v = self.shared.version.lock();
        while v.runs.iter().filter(|r| r.meta.tier == 0).count() >= limit {
            if self
                .shared
                .version_changed
                .wait_until(&mut v, deadline)
                .timed_out()
            {
                break;
            }
        }
        drop(v);
        self.shared.stats.lock().stall_micros += start.elapsed().as_micros() as u64;
    }

    /// The newest version of `key` (composite) in the runs of `version`, and its run.
    fn get_from_runs<'v>(
        version: &'v Version,
        key: &[u8],
    ) -> Result<Option<(Stored<'v>, &'v Run)>> {
        let kg = u16::from_be_bytes([key[0], key[1]]);
        let hash = stable_hash(key);
        for run in &version.runs {
            if !run.overlaps(kg, kg + 1) {
                continue;
            }
            if let Some(found) = run.file()?.get(key, hash)? {
                return Ok(Some((found, run)));
            }
        }
        Ok(None)
    }

    /// Calls `visit` with the newest live version of each key in `[start, end)` (composite
    /// keys of one key group), in key order.
    fn scan_composite(
        &self,
        kg: KeyGroup,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.check(kg)?;
        let version = self.shared.version();
        let runs: Vec<&Arc<Run>> = version
            .runs
            .iter()
            .filter(|r| r.overlaps(kg, kg + 1))
            .collect();
        if runs.is_empty() {
            self.tier0.scan(start, end, &mut |k, f: Found<'_>| {
                if f.is_tombstone() || self.expired(f.written_at) {
                    return true;
                }
                visit(&k[2..], f.value)
            });
            return Ok(());
        }
        let mut memory = Vec::new();
        self.tier0.scan(start, end, &mut |k, f| {
            memory.push(Head {
                key: k.to_vec(),
                kind: Some(if f.is_tombstone() {
                    Kind::Delete
                } else {
                    Kind::Put
                }),
                written_at: f.written_at,
                value: f.value.to_vec(),
            });
            true
        });
        let mut sources = vec![Source::Memory(memory.into_iter())];
        for run in runs {
            sources.push(Source::run(run, start, end, true)?);
        }
        let mut merge = Merge::new(sources)?;
        let mut head = Head::default();
        while merge.next_into(&mut head)? {
            if head.kind != Some(Kind::Put) || self.expired(head.written_at) {
                continue;
            }
            if !visit(&head.key[2..], &head.value) {
                break;
            }
        }
        Ok(())
    }

    /// A batch's stored keys, after checking each key group is this table's.
    fn stored_keys(&self, key_groups: &[KeyGroup], keys: &[&[u8]]) -> Result<StoredKeys> {
        for &kg in key_groups {
            self.check(kg)?;
        }
        Ok(StoredKeys::new(key_groups, keys, |k| self.tier0.hash(k)))
    }

    /// Keys of `[start, end)` (composite) that are live, for deletes.
    fn live_keys(&self, kg: KeyGroup, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        self.scan_composite(kg, start, end, &mut |k, _| {
            keys.push(composite(kg, k));
            true
        })?;
        Ok(keys)
    }

    fn delete_composite(&mut self, keys: &[Vec<u8>]) {
        let in_runs = self.has_runs();
        for key in keys {
            let hash = self.tier0.hash(key);
            self.tier0.delete(key, hash, self.now_ms, in_runs);
        }
    }

    /// Starts a snapshot for `checkpoint_id`: tier 0 is frozen now (no copying) and the
    /// delta since the last snapshot is written, with the manifest, in the background.
    pub fn snapshot_async(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot> {
        self.workers()?;
        self.settle(false);
        let (done, rx) = crossbeam_channel::bounded(1);
        self.submit_frozen(Some((checkpoint_id, done)));
        Ok(PendingSnapshot {
            checkpoint_id,
            done: rx,
        })
    }

    /// Replaces the contents with the union of `manifests` (one per old subtask whose key
    /// groups overlap this table's), keeping only this table's key groups. Nothing is
    /// copied up front: each file is fetched from the checkpoint location on first use, and
    /// other key groups are skipped on read and dropped by the next bottom compaction.
    pub fn restore_manifests(&mut self, manifests: &[Manifest]) -> Result<()> {
        let store =
            self.shared.store.clone().ok_or_else(|| {
                StateError::CorruptSnapshot(0, "no checkpoint location set".into())
            })?;
        self.workers()?;
        self.settle(true);
        self.tier0 = Tier0::new();
        let mut runs = Vec::new();
        // One object per blob file, however many restored runs reference it (and one look
        // in the store for it).
        let mut blobs: HashMap<u64, Arc<Blob>> = HashMap::new();
        let require = |name: &str| -> Result<()> {
            if store.contains_file(name)? {
                return Ok(());
            }
            Err(StateError::store(
                &store.file_location(name),
                "a file named by a manifest is missing",
            ))
        };
        for m in manifests {
            if !overlaps(m.key_groups(), self.range) {
                continue;
            }
            for meta in &m.runs {
                if !(meta.min_key_group < self.range.end && meta.max_key_group >= self.range.start)
                {
                    continue;
                }
                require(&meta.name)?;
                let mut run_blobs = Vec::with_capacity(meta.blobs.len());
                for used in &meta.blobs {
                    let blob = match blobs.entry(used.id) {
                        Entry::Occupied(known) => known.into_mut(),
                        Entry::Vacant(new) => {
                            require(&used.name)?;
                            let local = self.shared.dir.join(&used.name);
                            new.insert(Arc::new(Blob::restored(used, local, store.clone())))
                        }
                    };
                    run_blobs.push(blob.clone());
                }
                let local = self.shared.dir.join(&meta.name);
                runs.push(Arc::new(Run::restored(
                    meta.clone(),
                    local,
                    store.clone(),
                    run_blobs,
                )));
            }
        }
        // Runs of different old subtasks hold disjoint key groups, so only the order
        // within one manifest matters: a stable sort by tier keeps it and lets
        // compaction find each tier's runs side by side.
        runs.sort_by_key(|r| r.meta.tier);
        let old = std::mem::replace(&mut *self.shared.version.lock(), Arc::new(Version { runs }));
        old.retire_all();
        if let Some(w) = &self.workers {
            w.poke();
        }
        Ok(())
    }

    /// Manifests retained in the checkpoint location, oldest first.
    pub fn retained_checkpoints(&self) -> Vec<Manifest> {
        self.shared.retained.lock().clone()
    }
}

/// A string no other table incarnation gets: the process, the time, a counter.
fn incarnation() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seq = TABLE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{:x}{:x}{seq:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    )
}

fn overlaps(a: KeyGroupRange, b: KeyGroupRange) -> bool {
    a.start < b.end && b.start < a.end
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

impl Drop for TieredTable {
    fn drop(&mut self) {
        self.workers = None;
        if self.owns_dir && self.dir_ready {
            // Retire the files so they go; then the directory itself.
            std::mem::take(&mut *self.shared.version.lock()).retire_all();
            let _ = std::fs::remove_dir_all(&self.shared.dir);
        }
    }
}

impl StateTable for TieredTable {
    fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    fn get_many(
        &mut self,
        key_groups: &[KeyGroup],
        keys: &[&[u8]],
        out: &mut Vec<Option<Vec<u8>>>,
    ) -> Result<()> {
        out.clear();
        out.reserve(keys.len());
        self.read_many(key_groups, keys, &mut |_, v| {
            out.push(v.map(<[u8]>::to_vec))
        })
    }

    fn read_many(
        &mut self,
        key_groups: &[KeyGroup],
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, Option<&[u8]>),
    ) -> Result<()> {
        let stored = self.stored_keys(key_groups, keys)?;
        let mut version: Option<Arc<Version>> = None;
        let (mut from_runs, mut hits) = (0, 0);
        let mut blob_value = Vec::new();
        for (i, &hash) in stored.hashes.iter().enumerate() {
            self.tier0.prefetch_ahead(&stored.hashes, i);
            let probe = stored.get(i);
            if let Some(f) = self.tier0.get(probe, hash) {
                let live = !f.is_tombstone() && !self.expired(f.written_at);
                visit(i, live.then_some(f.value));
                continue;
            }
            let v = version.get_or_insert_with(|| self.shared.version());
            if v.runs.is_empty() {
                visit(i, None);
                continue;
            }
            let found = Self::get_from_runs(v, probe)?;
            from_runs += 1;
            match found {
                Some((s, run)) if s.kind.is_put() && !self.expired(s.written_at) => {
                    hits += 1;
                    let value = if s.kind == Kind::Blob {
                        run.read_blob(s.value, &mut blob_value)?;
                        &blob_value
                    } else {
                        s.value
                    };
                    self.tier0.cache(probe, hash, value, s.written_at);
                    visit(i, Some(value));
                }
                _ => visit(i, None),
            }
        }
        if from_runs > 0 {
            let mut stats = self.shared.stats.lock();
            stats.reads_from_runs += from_runs;
            stats.read_hits_in_runs += hits;
        }
        self.maybe_flush()
    }

    fn put_many(
        &mut self,
        key_groups: &[KeyGroup],
        keys: &[&[u8]],
        values: &[&[u8]],
    ) -> Result<()> {
        let in_runs = self.has_runs();
        let stored = self.stored_keys(key_groups, keys)?;
        let mut bytes = 0u64;
        for (i, (&hash, value)) in stored.hashes.iter().zip(values).enumerate() {
            self.tier0.prefetch_ahead(&stored.hashes, i);
            let key = stored.get(i);
            self.tier0.put(key, hash, value, self.now_ms, in_runs);
            bytes += (key.len() + value.len()) as u64;
        }
        self.shared.stats.lock().bytes_written_by_user += bytes;
        self.maybe_flush()
    }

    fn delete_many(&mut self, key_groups: &[KeyGroup], keys: &[&[u8]]) -> Result<()> {
        let in_runs = self.has_runs();
        let stored = self.stored_keys(key_groups, keys)?;
        for (i, &hash) in stored.hashes.iter().enumerate() {
            self.tier0.prefetch_ahead(&stored.hashes, i);
            self.tier0.delete(stored.get(i), hash, self.now_ms, in_runs);
        }
        self.maybe_flush()
    }

    fn scan_prefix(
        &self,
        key_group: KeyGroup,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let start = composite(key_group, prefix);
        let end = prefix_successor(&start).unwrap_or_else(|| vec![0xff; start.len() + 1]);
        self.scan_composite(key_group, &start, &end, visit)
    }

    fn scan_range(
        &self,
        key_group: KeyGroup,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        if start >= end {
            return self.check(key_group);
        }
        self.scan_composite(
            key_group,
            &composite(key_group, start),
            &composite(key_group, end),
            visit,
        )
    }

    fn delete_range(&mut self, key_group: KeyGroup, start: &[u8], end: &[u8]) -> Result<u64> {
        self.check(key_group)?;
        if start >= end {
            return Ok(0);
        }
        let keys = self.live_keys(
            key_group,
            &composite(key_group, start),
            &composite(key_group, end),
        )?;
        self.delete_composite(&keys);
        self.maybe_flush()?;
        Ok(keys.len() as u64)
    }

    fn delete_range_all_groups(&mut self, start: &[u8], end: &[u8]) -> Result<u64> {
        if start >= end {
            return Ok(0);
        }
        let mut deleted = 0;
        for kg in self.range.start..self.range.end {
            let keys = self.live_keys(kg, &composite(kg, start), &composite(kg, end))?;
            deleted += keys.len() as u64;
            self.delete_composite(&keys);
        }
        self.maybe_flush()?;
        Ok(deleted)
    }

    fn advance_time(&mut self, now_ms: i64) -> Result<u64> {
        self.now_ms = self.now_ms.max(now_ms);
        self.shared
            .now_ms
            .store(self.now_ms, std::sync::atomic::Ordering::Relaxed);
        let Some(ttl) = self.shared.ttl_ms else {
            return Ok(0);
        };
        // Expired entries are invisible at once; sweeping tier 0 (a pass over its index) is
        // paced to once per eighth of the TTL.
        if self.swept_at != i64::MIN && self.now_ms < self.swept_at.saturating_add(ttl / 8) {
            return Ok(0);
        }
        self.swept_at = self.now_ms;
        let dropped = self.tier0.expire(self.now_ms.saturating_sub(ttl));
        if let Some(w) = &self.workers {
            w.poke();
        }
        Ok(dropped)
    }

    fn len(&self) -> usize {
        let mut n = 0;
        for kg in self.range.start..self.range.end {
            let _ = self.scan_prefix(kg, &[], &mut |_, _| {
                n += 1;
                true
            });
        }
        n
    }

    fn size(&self) -> StateSize {
        let entries: u64 = self
            .shared
            .version()
            .runs
            .iter()
            .map(|r| r.meta.entries - r.meta.tombstones)
            .sum();
        StateSize {
            entries: self.tier0.live_entries() as u64 + entries,
            bytes: self.tier0.live_bytes() + self.file_bytes(),
        }
    }

    fn snapshot(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot> {
        self.snapshot_async(checkpoint_id)
    }

    fn restore(&mut self, manifests: &[Manifest]) -> Result<()> {
        self.restore_manifests(manifests)
    }
}

#[cfg(test)]
mod tests;
