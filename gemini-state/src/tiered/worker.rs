//! What a table shares with its background threads, and the threads themselves: one writes
//! snapshot deltas (so a checkpoint never waits behind a compaction), one compacts.
//!
//! Compaction is tiered above and leveled at the bottom: `fanout` runs of one tier merge
//! into one run of the next; the last tier merges into the single bottom run, and only a
//! merge that includes the oldest data drops tombstones, expired entries and key groups
//! the table no longer owns. Whole files whose every entry expired are dropped unread.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};

use crate::checkpoint::{CheckpointStore, Manifest};
use crate::run::{
    stable_hash, BlobFile, BlobRef, BlobSeparation, Kind, RunFile, RunWriter, Stored,
};
use crate::tier0::{Frozen, TOMBSTONE};
use crate::tiered::merge::{Head, Merge, Source};
use crate::tiered::version::{Blob, BlobUse, Run, RunMeta, Version};
use crate::{KeyGroupRange, StateResult};

/// Counters a table reports (see [`crate::TieredTable::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TieredStats {
    /// Bytes of keys and values handed to the table by writes.
    pub bytes_written_by_user: u64,
    /// Bytes of run files written by flushes and snapshot deltas.
    pub bytes_flushed: u64,
    /// Bytes of run files written by compactions.
    pub bytes_compacted: u64,
    /// Of the bytes flushed and compacted, those written to blob files (large values).
    pub bytes_to_blobs: u64,
    pub flushes: u64,
    pub compactions: u64,
    /// Files dropped whole because all their entries expired.
    pub expired_files: u64,
    /// Time flushes waited for compaction to catch up (the backpressure the table applied).
    pub stall_micros: u64,
    /// Point reads that went past tier 0, and those that found a run file's version.
    pub reads_from_runs: u64,
    pub read_hits_in_runs: u64,
}

/// Blob files by id.
type BlobsById = HashMap<u64, Arc<Blob>>;

/// Knobs of compaction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompactionPolicy {
    pub fanout: usize,
    /// The tier that holds the single bottom run.
    pub bottom_tier: u8,
    /// Bytes per second compactions may write (`None`: as fast as they can).
    pub bytes_per_sec: Option<u64>,
    /// A compaction copies the values it passes of a blob file at least this garbage
    /// (by bytes) into a new one, so the old file can go.
    pub blob_garbage_ratio: f64,
}

pub(crate) struct Shared {
    pub name: String,
    /// Distinguishes this incarnation's files from those of earlier ones with the same name
    /// (a restored table writes next to the files it restored, in the same checkpoint
    /// location, and shared files are never overwritten).
    pub incarnation: String,
    pub dir: PathBuf,
    pub range: KeyGroupRange,
    pub ttl_ms: Option<i64>,
    /// Values at least this long go to blob files (`None`: all stay in runs).
    pub blob_min_bytes: Option<usize>,
    /// Blob bytes flushed since the last merge into the bottom (see `pick`).
    pub blob_bytes_since_bottom: AtomicU64,
    pub version: Mutex<Arc<Version>>,
    /// Signalled whenever the version changes (a waiting flush re-checks its backlog).
    pub version_changed: Condvar,
    pub next_file: AtomicU64,
    pub now_ms: AtomicI64,
    pub stats: Mutex<TieredStats>,
    pub policy: CompactionPolicy,
    pub store: Option<CheckpointStore>,
    /// Checkpoints kept in the store, oldest first, and how many to keep.
    pub retained: Mutex<Vec<Manifest>>,
    pub retain: usize,
}

impl Shared {
    pub(crate) fn version(&self) -> Arc<Version> {
        self.version.lock().clone()
    }

    /// Makes `change` to the runs the next version, then retires `removed` and the blob
    /// files no run references any more (their files go once no reader holds them).
    fn install(&self, change: impl FnOnce(&mut Vec<Arc<Run>>), removed: &[Arc<Run>]) {
        let mut v = self.version.lock();
        let mut runs = v.runs.clone();
        change(&mut runs);
        let next = Version { runs };
        let referenced: HashSet<u64> = next.blobs().into_keys().collect();
        *v = Arc::new(next);
        self.version_changed.notify_all();
        drop(v);
        for run in removed {
            run.retire();
            for blob in &run.blobs {
                if !referenced.contains(&blob.id) {
                    blob.retire();
                }
            }
        }
    }

    /// A new file's path and name (unique across incarnations and tables).
    fn new_file(&self, extension: &str) -> (PathBuf, String) {
        let id = self.next_file.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{}-{id:06}.{extension}", self.name, self.incarnation);
        (self.dir.join(&name), name)
    }

    /// Writes `entries` (sorted, newest versions) as a run of `tier`; `None` if empty.
    /// References to blob files are passed on as they are; `passed_on` holds those files.
    /// Also returns the size of the blob file it made (0 if none).
    fn write_run(
        &self,
        tier: u8,
        mut next: impl FnMut(&mut Head) -> StateResult<bool>,
        mut keep: impl FnMut(&Head) -> bool,
        throttle: Option<u64>,
        passed_on: &BlobsById,
    ) -> StateResult<Option<(Run, u64)>> {
        let (path, name) = self.new_file("run");
        let (blob_name, separation) = match self.blob_min_bytes {
            Some(min_bytes) => {
                let (path, name) = self.new_file("blob");
                let id = stable_hash(name.as_bytes());
                (
                    name,
                    Some(BlobSeparation {
                        min_bytes,
                        path,
                        id,
                    }),
                )
            }
            None => (String::new(), None),
        };
        let mut w = RunWriter::create(&path, separation)?;
        let mut head = Head::default();
        let started = Instant::now();
        while next(&mut head)? {
            if !keep(&head) {
                continue;
            }
            let kind = head.kind.expect("merged heads have a kind");
            w.add(
                &head.key,
                Stored {
                    kind,
                    written_at: head.written_at,
                    value: &head.value,
                },
            )?;
            if let Some(rate) = throttle {
                // The work budget: sleep off whatever runs ahead of the rate.
                let due = Duration::from_secs_f64(w.written() as f64 / rate as f64);
                if let Some(ahead) = due.checked_sub(started.elapsed()) {
                    if ahead > Duration::from_millis(5) {
                        std::thread::sleep(ahead);
                    }
                }
            }
        }
        if w.entries() == 0 {
            w.abandon();
            return Ok(None);
        }
        let summary = w.finish()?;
        let file = RunFile::open(&summary.path)?;
        let mut blobs = Vec::with_capacity(summary.blobs.len());
        let mut uses = Vec::with_capacity(summary.blobs.len());
        let mut blob_bytes = 0;
        for (&id, &referenced) in &summary.blobs {
            let blob = match &summary.new_blob {
                Some((new, path, bytes)) if *new == id => {
                    blob_bytes = *bytes;
                    let file = BlobFile::open(path)?;
                    Arc::new(Blob::written(id, blob_name.clone(), *bytes, file))
                }
                _ => passed_on.get(&id).cloned().ok_or_else(|| {
                    crate::StateError::corrupt(
                        &summary.path,
                        &format!("references blob file {id:016x}, which no input run lists"),
                    )
                })?,
            };
            uses.push(BlobUse {
                id,
                name: blob.name().to_string(),
                bytes: blob.bytes,
                referenced,
            });
            blobs.push(blob);
        }
        let f = summary.footer;
        let meta = RunMeta {
            name,
            tier,
            bytes: summary.bytes,
            entries: f.entries,
            tombstones: f.tombstones,
            min_key_group: f.min_key_group,
            max_key_group: f.max_key_group,
            max_written_at: f.max_written_at,
            blobs: uses,
        };
        Ok(Some((Run::written(meta, file, blobs), blob_bytes)))
    }

    /// Writes a frozen tier-0 generation as the newest run (tier 0).
    pub(crate) fn write_frozen(&self, frozen: &Frozen) -> StateResult<()> {
        let sorted = frozen.sorted();
        let mut it = sorted.into_iter();
        let run = self.write_run(
            0,
            |head| {
                Ok(match it.next() {
                    Some((key, found)) => {
                        let kind = if found.flags & TOMBSTONE != 0 {
                            Kind::Delete
                        } else {
                            Kind::Put
                        };
                        head.key.clear();
                        head.key.extend_from_slice(key);
                        head.kind = Some(kind);
                        head.written_at = found.written_at;
                        head.value.clear();
                        head.value.extend_from_slice(found.value);
                        true
                    }
                    None => false,
                })
            },
            |_| true,
            None,
            &HashMap::new(),
        )?;
        if let Some((run, blob_bytes)) = run {
            let mut stats = self.stats.lock();
            stats.bytes_flushed += run.meta.bytes + blob_bytes;
            stats.bytes_to_blobs += blob_bytes;
            stats.flushes += 1;
            self.blob_bytes_since_bottom
                .fetch_add(blob_bytes, Ordering::Relaxed);
            drop(stats);
            self.install(|runs| runs.insert(0, Arc::new(run)), &[]);
        }
        Ok(())
    }

    /// The manifest of the current version, its files copied to the store.
    fn checkpoint(&self, checkpoint_id: u64) -> StateResult<Manifest> {
        let version = self.version();
        let manifest = Manifest {
            checkpoint_id,
            table: self.name.clone(),
            key_group_start: self.range.start,
            key_group_end: self.range.end,
            runs: version.runs.iter().map(|r| r.meta.clone()).collect(),
        };
        if let Some(store) = &self.store {
            // By path, not by opening: a restored file not fetched yet is in the store
            // already, and opening it would fetch it.
            for run in &version.runs {
                store.upload(run.local_path(), &run.meta.name)?;
            }
            for (blob, _) in version.blobs().into_values() {
                store.upload(blob.file.local_path(), blob.name())?;
            }
            store.write_manifest(&manifest)?;
            if self.retain == 0 {
                return Ok(manifest); // the owner releases (see `TableOptions`)
            }
            let mut retained = self.retained.lock();
            retained.push(manifest.clone());
            while retained.len() > self.retain {
                let old = retained.remove(0);
                store.release(&old, &retained);
            }
        }
        Ok(manifest)
    }

    fn expired(&self, written_at: i64) -> bool {
        expired(self.ttl_ms, written_at, self.now_ms.load(Ordering::Relaxed))
    }

    /// Tier-0 runs waiting for compaction beyond which flushes wait for it (backpressure).
    pub(crate) fn stall_limit(&self) -> usize {
        self.policy.fanout * 2
    }

    /// One step of compaction; false when there is nothing to do.
    fn compact_once(&self) -> StateResult<bool> {
        let version = self.version();
        // Whole files whose newest entry expired: nothing in them (or older) is visible.
        if self.ttl_ms.is_some() {
            let dead: Vec<Arc<Run>> = version
                .runs
                .iter()
                .filter(|r| self.expired(r.meta.max_written_at))
                .cloned()
                .collect();
            if !dead.is_empty() {
                self.install(
                    |runs| runs.retain(|r| !dead.iter().any(|d| Arc::ptr_eq(d, r))),
                    &dead,
                );
                self.stats.lock().expired_files += dead.len() as u64;
                return Ok(true);
            }
        }
        let Some((inputs, tier)) = self.pick(&version) else {
            return Ok(false);
        };
        let includes_oldest = Arc::ptr_eq(
            inputs.last().expect("non-empty"),
            version.runs.last().expect("non-empty"),
        );
        let (passed_on, relocate) = self.blobs_to_relocate(&version, &inputs, includes_oldest)?;
        let mut merge = merge_of(&inputs)?;
        let run = self.write_run(
            tier,
            |head| {
                if !merge.next_into(head)? {
                    return Ok(false);
                }
                if head.kind == Some(Kind::Blob) {
                    relocate_value(head, &relocate)?;
                }
                Ok(true)
            },
            |head| self.survives(head, includes_oldest),
            self.policy.bytes_per_sec,
            &passed_on,
        )?;
        let (run, written, blob_bytes) = match run {
            Some((run, blob_bytes)) => {
                let written = run.meta.bytes + blob_bytes;
                (Some(Arc::new(run)), written, blob_bytes)
            }
            None => (None, 0, 0),
        };
        self.install(
            |runs| {
                let at = runs
                    .iter()
                    .position(|r| Arc::ptr_eq(r, &inputs[0]))
                    .expect("only compaction removes runs");
                runs.drain(at..at + inputs.len());
                if let Some(run) = run {
                    runs.insert(at, run);
                }
            },
            &inputs,
        );
        if includes_oldest {
            self.blob_bytes_since_bottom.store(0, Ordering::Relaxed);
        }
        let mut stats = self.stats.lock();
        stats.bytes_compacted += written;
        stats.bytes_to_blobs += blob_bytes;
        stats.compactions += 1;
        Ok(true)
    }

    /// Whether a merged version is written out: a merge that includes the oldest run drops
    /// tombstones, expired entries and key groups the table no longer owns.
    fn survives(&self, head: &Head, includes_oldest: bool) -> bool {
        if !includes_oldest {
            return true;
        }
        let kg = u16::from_be_bytes([head.key[0], head.key[1]]);
        head.kind.is_some_and(Kind::is_put)
            && !self.expired(head.written_at)
            && self.range.contains(kg)
    }

    /// The blob files a compaction's inputs reference, by id: those it passes on, and those
    /// so much garbage that it copies out the values it passes instead (relocation: a blob
    /// file goes only when no run references it, so a file with a few live values among many
    /// dead ones would otherwise stay). A file's live bytes are exact: what the runs outside
    /// the merge reference plus what survives it, counted by a first pass over the inputs
    /// (cheap: with values in blob files, runs hold keys and references).
    fn blobs_to_relocate(
        &self,
        version: &Version,
        inputs: &[Arc<Run>],
        includes_oldest: bool,
    ) -> StateResult<(BlobsById, BlobsById)> {
        let mut passed_on: BlobsById = inputs
            .iter()
            .flat_map(|r| &r.blobs)
            .map(|b| (b.id, b.clone()))
            .collect();
        if passed_on.is_empty() || self.blob_min_bytes.is_none() {
            return Ok((passed_on, HashMap::new()));
        }
        let mut live: HashMap<u64, u64> = HashMap::new();
        for run in &version.runs {
            if !inputs.iter().any(|i| Arc::ptr_eq(i, run)) {
                for used in &run.meta.blobs {
                    *live.entry(used.id).or_default() += used.referenced;
                }
            }
        }
        let mut merge = merge_of(inputs)?;
        let mut head = Head::default();
        while merge.next_into(&mut head)? {
            if head.kind == Some(Kind::Blob) && self.survives(&head, includes_oldest) {
                if let Some(r) = BlobRef::decode(&head.value) {
                    *live.entry(r.blob).or_default() += r.stored_bytes();
                }
            }
        }
        let ratio = self.policy.blob_garbage_ratio;
        let relocate = passed_on
            .extract_if(|id, blob| {
                let live = live.get(id).copied().unwrap_or(0);
                1.0 - live as f64 / blob.bytes.max(1) as f64 >= ratio
            })
            .collect();
        Ok((passed_on, relocate))
    }

    /// Whether the compactor has work left on the current version (in flight or not yet
    /// started: a compaction in flight has not yet replaced its inputs).
    #[cfg(test)]
    pub(crate) fn compaction_pending(&self) -> bool {
        self.pick(&self.version()).is_some()
    }

    /// The runs to merge next and the tier of the result.
    fn pick(&self, version: &Version) -> Option<(Vec<Arc<Run>>, u8)> {
        let policy = self.policy;
        for tier in 0..policy.bottom_tier {
            let at_tier: Vec<Arc<Run>> = version
                .runs
                .iter()
                .filter(|r| r.meta.tier == tier)
                .cloned()
                .collect();
            if at_tier.len() < policy.fanout {
                continue;
            }
            let next = tier + 1;
            if next < policy.bottom_tier {
                return Some((at_tier, next));
            }
            // Into the bottom: the merge takes the bottom run along (leveled).
            let mut inputs = at_tier;
            inputs.extend(
                version
                    .runs
                    .iter()
                    .filter(|r| r.meta.tier >= policy.bottom_tier)
                    .cloned(),
            );
            return Some((inputs, policy.bottom_tier));
        }
        // Blob files fill with dead values as keys are overwritten, and only merges drop the
        // references that keep those alive. Once flushes have written as many blob bytes as
        // the oldest run references, merge every run into the bottom so that relocation can
        // empty the files (with values in blob files, runs hold keys and references: a full
        // merge reads and writes little).
        let oldest = version.runs.last()?;
        let referenced: u64 = oldest.meta.blobs.iter().map(|b| b.referenced).sum();
        let since = self.blob_bytes_since_bottom.load(Ordering::Relaxed);
        if referenced > 0 && version.runs.len() > 1 && since >= referenced {
            return Some((version.runs.clone(), policy.bottom_tier));
        }
        None
    }

    /// Runs of tier 0 waiting to be compacted (the flush backlog).
    pub(crate) fn backlog(&self) -> usize {
        self.version
            .lock()
            .runs
            .iter()
            .filter(|r| r.meta.tier == 0)
            .count()
    }
}

/// The merge of a compaction's inputs, blob references passed on as they are.
fn merge_of(inputs: &[Arc<Run>]) -> StateResult<Merge> {
    let mut sources = Vec::with_capacity(inputs.len());
    for r in inputs {
        sources.push(Source::run(r, &[], &[0xff, 0xff, 0xff], false)?);
    }
    Merge::new(sources)
}

/// Replaces `head`'s blob reference by the value, if its file is to be relocated.
fn relocate_value(head: &mut Head, relocate: &BlobsById) -> StateResult<()> {
    let Some(r) = BlobRef::decode(&head.value) else {
        return Ok(()); // the writer reports it, naming the file
    };
    if let Some(blob) = relocate.get(&r.blob) {
        blob.read(r, &mut head.value)?;
        head.kind = Some(Kind::Put);
    }
    Ok(())
}

/// Work for the snapshot thread: write a frozen generation, then the checkpoint's manifest.
pub(crate) struct Job {
    pub frozen: Frozen,
    /// A snapshot's checkpoint and the caller's answer, the manifest; `None` for a flush
    /// under memory pressure, which only writes the run.
    pub checkpoint: Option<(u64, Sender<StateResult<Manifest>>)>,
    /// The table's answer: whether the generation reached a run file.
    pub durable: Sender<bool>,
}

/// The table's two background threads.
pub(crate) struct Workers {
    jobs: Option<Sender<Job>>,
    compact: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    pub(crate) fn start(shared: Arc<Shared>) -> Workers {
        let (jobs, job_rx) = crossbeam_channel::unbounded::<Job>();
        let (compact, compact_rx) = crossbeam_channel::unbounded::<()>();
        let s = shared.clone();
        let poke = compact.clone();
        let snapshots = std::thread::Builder::new()
            .name(format!("state-snap-{}", shared.name))
            .spawn(move || snapshot_loop(&s, job_rx, poke))
            .expect("spawn a state thread");
        let s = shared;
        let compactor = std::thread::Builder::new()
            .name(format!("state-compact-{}", s.name))
            .spawn(move || compaction_loop(&s, compact_rx))
            .expect("spawn a state thread");
        Workers {
            jobs: Some(jobs),
            compact: Some(compact),
            threads: vec![snapshots, compactor],
        }
    }

    pub(crate) fn submit(&self, job: Job) {
        if let Some(j) = &self.jobs {
            let _ = j.send(job);
        }
    }

    /// Asks the compactor to look at the version.
    pub(crate) fn poke(&self) {
        if let Some(c) = &self.compact {
            let _ = c.send(());
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.jobs = None;
        self.compact = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn snapshot_loop(shared: &Shared, jobs: Receiver<Job>, compact: Sender<()>) {
    for job in jobs {
        let written = shared.write_frozen(&job.frozen);
        drop(job.frozen);
        let _ = job.durable.send(written.is_ok());
        match job.checkpoint {
            Some((id, done)) => {
                let _ = done.send(written.and_then(|_| shared.checkpoint(id)));
            }
            None => {
                if let Err(e) = written {
                    // The generation stays dirty in tier 0; the next flush writes it again.
                    tracing::warn!(table = %shared.name, error = %e, "state flush failed");
                }
            }
        }
        let _ = compact.send(());
    }
}

fn compaction_loop(shared: &Shared, pokes: Receiver<()>) {
    while pokes.recv().is_ok() {
        while pokes.try_recv().is_ok() {}
        loop {
            match shared.compact_once() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    // The inputs stay in place and readable; the next poke retries.
                    tracing::warn!(table = %shared.name, error = %e, "state compaction failed");
                    break;
                }
            }
        }
    }
}

/// Whether a version written at `written_at` is past its TTL at table time `now` (before the
/// table's clock first moves, nothing is).
pub(crate) fn expired(ttl_ms: Option<i64>, written_at: i64, now: i64) -> bool {
    match ttl_ms {
        Some(ttl) => now != i64::MIN && written_at.saturating_add(ttl) <= now,
        None => false,
    }
}

/// A fresh directory for a table's run files when none was configured.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("eddy-state-{}-{name}", std::process::id()))
}

pub(crate) fn ensure_dir(dir: &Path) -> StateResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| crate::StateError::io(dir, e))
}
