//! Tier 2: the checkpoint location, reached through `object_store`: a local directory by
//! default, an S3-compatible bucket by configuration. Run files are copied there once and
//! shared by every checkpoint that names them; a manifest per checkpoint and table lists them.
//!
//! A local directory gets two shortcuts the object store API has no words for: files are
//! hard-linked when on the same file system (no copy), and manifests are written as temp
//! file, fsync, rename, fsync of the directory, so a crash or power cut leaves either the old
//! set or the new one. In a bucket a PUT is atomic already.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::tiered::RunMeta;
use crate::{KeyGroupRange, StateError, StateResult};

/// What one table held at a checkpoint: its run files, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub checkpoint_id: u64,
    /// The table's name (unique per operator subtask; it prefixes its file names).
    pub table: String,
    pub key_group_start: u16,
    pub key_group_end: u16,
    pub runs: Vec<RunMeta>,
}

impl Manifest {
    pub fn key_groups(&self) -> KeyGroupRange {
        KeyGroupRange {
            start: self.key_group_start,
            end: self.key_group_end,
        }
    }

    /// The names of every file the checkpoint needs: its runs and their blob files, each
    /// once.
    pub fn files(&self) -> BTreeSet<&str> {
        let mut files = BTreeSet::new();
        for run in &self.runs {
            files.insert(run.name.as_str());
            files.extend(run.blobs.iter().map(|b| b.name.as_str()));
        }
        files
    }
}

/// Files at most this large go up in one PUT; larger ones as a multipart upload.
const SINGLE_PUT_BYTES: u64 = 16 << 20;
const PART_BYTES: usize = 8 << 20;

/// A checkpoint location. Cheap to clone: clones share the connection and what they know
/// is already uploaded.
#[derive(Clone)]
pub struct CheckpointStore {
    /// The location as the user wrote it, for messages.
    location: String,
    /// What object paths are relative to, for messages: the directory, or `s3://bucket`.
    objects_url: String,
    objects: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The directory, for a local location.
    local_root: Option<PathBuf>,
    /// Files known to be in the store (saves a HEAD request per file and checkpoint).
    uploaded: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CheckpointStore")
            .field(&self.location)
            .finish()
    }
}

impl CheckpointStore {
    /// A location in a local (or mounted) directory, made if missing.
    pub fn local(root: impl Into<PathBuf>) -> StateResult<CheckpointStore> {
        let root = root.into();
        for d in [root.join("files"), root.join("manifests")] {
            std::fs::create_dir_all(&d).map_err(|e| StateError::io(&d, e))?;
        }
        let location = root.display().to_string();
        let objects =
            LocalFileSystem::new_with_prefix(&root).map_err(|e| StateError::store(&location, e))?;
        Ok(CheckpointStore {
            objects_url: location.clone(),
            location,
            objects: Arc::new(objects),
            prefix: ObjectPath::default(),
            local_root: Some(root),
            uploaded: Default::default(),
        })
    }

    /// The location named by `url`, like Flink's `state.checkpoints.dir`: a path or
    /// `file:///path`, or `s3://bucket/prefix` (also `s3a://`). An S3 location reads the
    /// usual `AWS_*` variables of the environment, then `config`, which takes Flink's keys
    /// (`s3.endpoint`, `s3.access-key`, `s3.secret-key`, `s3.region`,
    /// `s3.path.style.access`) or object_store's (`aws_endpoint`, …).
    pub fn open(url: &str, config: &[(&str, &str)]) -> StateResult<CheckpointStore> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return CheckpointStore::local(url);
        };
        match scheme {
            "file" => CheckpointStore::local(rest),
            "s3" | "s3a" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                for &(key, value) in config {
                    builder = match key {
                        "s3.endpoint" => builder
                            .with_allow_http(value.starts_with("http://"))
                            .with_endpoint(value),
                        "s3.access-key" => builder.with_access_key_id(value),
                        "s3.secret-key" => builder.with_secret_access_key(value),
                        "s3.region" => builder.with_region(value),
                        "s3.path.style.access" => {
                            builder.with_virtual_hosted_style_request(value != "true")
                        }
                        other => {
                            let key = other.parse().map_err(|e| StateError::store(url, e))?;
                            builder.with_config(key, value)
                        }
                    };
                }
                let objects = builder.build().map_err(|e| StateError::store(url, e))?;
                Ok(CheckpointStore {
                    location: url.to_string(),
                    objects_url: format!("{scheme}://{bucket}"),
                    objects: Arc::new(objects),
                    prefix: ObjectPath::from(prefix),
                    local_root: None,
                    uploaded: Default::default(),
                })
            }
            other => Err(StateError::store(
                url,
                format!("unknown scheme '{other}': use a path, file://, s3:// or s3a://"),
            )),
        }
    }

    /// The location as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The directory of a local location.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    fn file_object(&self, name: &str) -> ObjectPath {
        self.prefix.clone().join("files").join(name)
    }

    fn manifest_object(&self, table: &str, checkpoint_id: u64) -> ObjectPath {
        self.prefix
            .clone()
            .join("manifests")
            .join(format!("{table}-{checkpoint_id:012}.json"))
    }

    /// Where `object` is, for messages.
    fn describe(&self, object: &ObjectPath) -> String {
        format!("{}/{object}", self.objects_url.trim_end_matches('/'))
    }

    /// Where `object` is on disk, for a local location.
    fn local_path(&self, object: &ObjectPath) -> Option<PathBuf> {
        self.local_root
            .as_ref()
            .map(|root| root.join(object.as_ref()))
    }

    /// Where a shared file is, for messages (the path, for a local location).
    pub fn file_location(&self, name: &str) -> String {
        self.describe(&self.file_object(name))
    }

    /// Whether the store holds the shared file `name`.
    pub fn contains_file(&self, name: &str) -> StateResult<bool> {
        if self.uploaded.lock().contains(name) {
            return Ok(true);
        }
        let found = self.exists(self.file_object(name))?;
        if found {
            self.uploaded.lock().insert(name.to_string());
        }
        Ok(found)
    }

    /// Whether the manifest of `table` at `checkpoint_id` exists.
    pub fn contains_manifest(&self, table: &str, checkpoint_id: u64) -> StateResult<bool> {
        self.exists(self.manifest_object(table, checkpoint_id))
    }

    fn exists(&self, object: ObjectPath) -> StateResult<bool> {
        let objects = self.objects.clone();
        let location = self.location.clone();
        self.run(async move {
            match objects.head(&object).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(StateError::store(&location, e)),
            }
        })
    }

    /// Puts the file at `local` into the store under `name`, unless an earlier checkpoint
    /// already did (run files are immutable, so the name says it all).
    pub(crate) fn upload(&self, local: &Path, name: &str) -> StateResult<()> {
        if self.contains_file(name)? {
            return Ok(());
        }
        let in_store = self.local_path(&self.file_object(name));
        let linked = in_store
            .as_ref()
            .is_some_and(|dest| std::fs::hard_link(local, dest).is_ok());
        if !linked {
            self.copy_up(local, name)?;
            // object_store writes a local file whole (temp file, rename) but does not sync
            // it; a manifest must never name a file a power cut could lose.
            if let Some(dest) = &in_store {
                File::open(dest)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| StateError::io(dest, e))?;
            }
        }
        self.uploaded.lock().insert(name.to_string());
        Ok(())
    }

    fn copy_up(&self, local: &Path, name: &str) -> StateResult<()> {
        let objects = self.objects.clone();
        let object = self.file_object(name);
        let (local, remote) = (local.to_path_buf(), self.file_location(name));
        self.run(async move {
            let io = |e| StateError::io(&local, e);
            let store = |e| StateError::store(&remote, e);
            let mut file = File::open(&local).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            if len <= SINGLE_PUT_BYTES {
                let mut bytes = Vec::with_capacity(len as usize);
                file.read_to_end(&mut bytes).map_err(io)?;
                objects.put(&object, bytes.into()).await.map_err(store)?;
                return Ok(());
            }
            // The file is read on the runtime's thread between parts: a run file is read
            // sequentially from the page cache, far faster than the network takes it.
            let mut upload = WriteMultipart::new_with_chunk_size(
                objects.put_multipart(&object).await.map_err(store)?,
                PART_BYTES,
            );
            let mut part = Vec::with_capacity(PART_BYTES);
            let sent = async {
                loop {
                    part.clear();
                    let n = (&mut file)
                        .take(PART_BYTES as u64)
                        .read_to_end(&mut part)
                        .map_err(io)?;
                    if n == 0 {
                        return Ok(());
                    }
                    upload.wait_for_capacity(2).await.map_err(store)?;
                    upload.write(&part);
                }
            };
            match sent.await {
                Ok(()) => upload.finish().await.map(drop).map_err(store),
                // Parts already sent would be kept (and billed) until aborted.
                Err(e) => {
                    let _ = upload.abort().await;
                    Err(e)
                }
            }
        })
    }

    /// Copies the shared file `name` to `local` (hard-linked when the location is a local
    /// directory on the same file system); the file appears whole or not at all.
    pub(crate) fn download(&self, name: &str, local: &Path) -> StateResult<()> {
        let object = self.file_object(name);
        if let Some(in_store) = self.local_path(&object) {
            // Another thread fetching the same file may have won the race: fine, it is
            // immutable.
            if std::fs::hard_link(in_store, local).is_ok() || local.exists() {
                return Ok(());
            }
        }
        let objects = self.objects.clone();
        let (local, remote) = (local.to_path_buf(), self.file_location(name));
        self.run(async move {
            let tmp = local.with_extension("fetch");
            let io = |e| StateError::io(&tmp, e);
            let store = |e| StateError::store(&remote, e);
            let mut out = File::create(&tmp).map_err(io)?;
            let mut stream = objects.get(&object).await.map_err(store)?.into_stream();
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk.map_err(store)?).map_err(io)?;
            }
            drop(out);
            std::fs::rename(&tmp, &local).map_err(|e| StateError::io(&local, e))
        })
    }

    /// Copies the shared file `name` into `dest` unless it is there already: a hard link
    /// between directories of one file system, otherwise a copy (through a temporary local
    /// file when this location is a bucket). Savepoints are made and imported this way.
    pub fn copy_file_to(&self, name: &str, dest: &CheckpointStore) -> StateResult<()> {
        if dest.contains_file(name)? {
            return Ok(());
        }
        if let Some(local) = self.local_path(&self.file_object(name)) {
            return dest.upload(&local, name);
        }
        let tmp = std::env::temp_dir().join(format!("eddy-copy-{}-{name}", std::process::id()));
        self.download(name, &tmp)?;
        let copied = dest.upload(&tmp, name);
        let _ = std::fs::remove_file(&tmp);
        copied
    }

    /// Writes `manifest` atomically.
    pub(crate) fn write_manifest(&self, manifest: &Manifest) -> StateResult<()> {
        let bytes = serde_json::to_vec_pretty(manifest).expect("manifests serialize");
        let object = self.manifest_object(&manifest.table, manifest.checkpoint_id);
        let Some(path) = self.local_path(&object) else {
            let objects = self.objects.clone();
            let location = self.describe(&object);
            return self.run(async move {
                let put = objects.put(&object, PutPayload::from(bytes)).await;
                put.map(drop).map_err(|e| StateError::store(&location, e))
            });
        };
        let tmp = path.with_extension("tmp");
        let mut f = File::create(&tmp).map_err(|e| StateError::io(&tmp, e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| StateError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| StateError::io(&path, e))?;
        let dir = path.parent().expect("a manifest lies in a directory");
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StateError::io(dir, e))
    }

    /// The manifest `table` wrote at `checkpoint_id`.
    pub fn read_manifest(&self, table: &str, checkpoint_id: u64) -> StateResult<Manifest> {
        let object = self.manifest_object(table, checkpoint_id);
        let objects = self.objects.clone();
        let what = self.describe(&object);
        self.run(async move {
            let read = async { objects.get(&object).await?.bytes().await };
            let bytes = read.await.map_err(|e| StateError::store(&what, e))?;
            serde_json::from_slice(&bytes).map_err(|e| {
                StateError::corrupt(Path::new(&what), &format!("manifest does not parse: {e}"))
            })
        })
    }

    /// The newest manifest `table` wrote, if any (manifests are written whole or not at
    /// all, so any that exists is complete).
    pub fn latest_manifest(&self, table: &str) -> StateResult<Option<Manifest>> {
        let objects = self.objects.clone();
        let dir = self.prefix.clone().join("manifests");
        let location = self.location.clone();
        let listed = self.run(async move {
            let listed = objects.list_with_delimiter(Some(&dir)).await;
            listed.map_err(|e| StateError::store(&location, e))
        })?;
        let prefix = format!("{table}-");
        let newest = listed
            .objects
            .iter()
            .filter_map(|o| {
                let name = o.location.filename()?;
                let id = name.strip_prefix(&prefix)?.strip_suffix(".json")?;
                id.parse::<u64>().ok()
            })
            .max();
        newest.map(|id| self.read_manifest(table, id)).transpose()
    }

    /// Deletes the manifest of `released` and the files only it named among `retained`.
    /// A file a failed delete leaves behind costs space, never correctness. A table with
    /// `retained_checkpoints = 0` leaves this to its owner, who calls it once a later
    /// checkpoint is complete.
    pub fn release(&self, released: &Manifest, retained: &[Manifest]) {
        let keep: HashSet<&str> = retained.iter().flat_map(Manifest::files).collect();
        let mut doomed = vec![self.manifest_object(&released.table, released.checkpoint_id)];
        let mut uploaded = self.uploaded.lock();
        for name in released.files() {
            if !keep.contains(name) {
                uploaded.remove(name);
                doomed.push(self.file_object(name));
            }
        }
        drop(uploaded);
        let objects = self.objects.clone();
        let location = self.location.clone();
        let _ = self.run(async move {
            for object in doomed {
                if let Err(e) = objects.delete(&object).await {
                    tracing::warn!("could not delete {object} from {location}: {e}");
                }
            }
            Ok(())
        });
    }

    /// Deletes every shared file and table manifest that none of `retained` names: what
    /// checkpoints that were aborted, or never published because the process died, left
    /// behind. Only safe while no snapshot is being written into the location (before a
    /// job starts); returns how many objects went.
    pub fn delete_unreferenced(&self, retained: &[Manifest]) -> StateResult<usize> {
        let keep: HashSet<&str> = retained.iter().flat_map(Manifest::files).collect();
        let manifests: HashSet<String> = retained
            .iter()
            .map(|m| {
                self.manifest_object(&m.table, m.checkpoint_id)
                    .filename()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let mut doomed = Vec::new();
        for name in self.list_names("files")? {
            if !keep.contains(name.as_str()) {
                doomed.push(self.file_object(&name));
            }
        }
        for name in self.list_names("manifests")? {
            if !manifests.contains(&name) {
                doomed.push(self.prefix.clone().join("manifests").join(name.as_str()));
            }
        }
        let count = doomed.len();
        let mut uploaded = self.uploaded.lock();
        for object in &doomed {
            if let Some(name) = object.filename() {
                uploaded.remove(name);
            }
        }
        drop(uploaded);
        let objects = self.objects.clone();
        let location = self.location.clone();
        self.run(async move {
            for object in doomed {
                if let Err(e) = objects.delete(&object).await {
                    tracing::warn!("could not delete {object} from {location}: {e}");
                }
            }
            Ok(())
        })?;
        Ok(count)
    }

    /// Writes `bytes` as the object at `path` (relative to the location, `/`-separated),
    /// whole or not at all: in a directory as temp file, fsync, rename, fsync of the
    /// directory; in a bucket a PUT is atomic. The job's checkpoint metadata goes here.
    pub fn put_object(&self, path: &str, bytes: Vec<u8>) -> StateResult<()> {
        let object = self.object(path);
        let Some(file) = self.local_path(&object) else {
            let objects = self.objects.clone();
            let location = self.describe(&object);
            return self.run(async move {
                let put = objects.put(&object, PutPayload::from(bytes)).await;
                put.map(drop).map_err(|e| StateError::store(&location, e))
            });
        };
        let Some(dir) = file.parent() else {
            return Err(StateError::store(&self.location, "an object needs a path"));
        };
        std::fs::create_dir_all(dir).map_err(|e| StateError::io(dir, e))?;
        let tmp = file.with_extension("tmp");
        let mut f = File::create(&tmp).map_err(|e| StateError::io(&tmp, e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| StateError::io(&tmp, e))?;
        std::fs::rename(&tmp, &file).map_err(|e| StateError::io(&file, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StateError::io(dir, e))
    }

    /// The object at `path`, or `None` if there is none.
    pub fn get_object(&self, path: &str) -> StateResult<Option<Vec<u8>>> {
        let object = self.object(path);
        let objects = self.objects.clone();
        let what = self.describe(&object);
        self.run(async move {
            match objects.get(&object).await {
                Ok(got) => {
                    let bytes = got.bytes().await;
                    bytes
                        .map(|b| Some(b.to_vec()))
                        .map_err(|e| StateError::store(&what, e))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(StateError::store(&what, e)),
            }
        })
    }

    /// The names directly under `dir` (objects and folders), sorted.
    pub fn list_names(&self, dir: &str) -> StateResult<Vec<String>> {
        let prefix = self.object(dir);
        let objects = self.objects.clone();
        let location = self.location.clone();
        let listed = self.run(async move {
            let listed = objects.list_with_delimiter(Some(&prefix)).await;
            listed.map_err(|e| StateError::store(&location, e))
        })?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes every object under `dir`; what a failed delete leaves costs space only.
    pub fn delete_dir(&self, dir: &str) -> StateResult<()> {
        let prefix = self.object(dir);
        if let Some(path) = self.local_path(&prefix) {
            return match std::fs::remove_dir_all(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StateError::io(&path, e)),
                _ => Ok(()),
            };
        }
        let objects = self.objects.clone();
        let location = self.location.clone();
        self.run(async move {
            let mut listed = objects.list(Some(&prefix));
            while let Some(meta) = listed.next().await {
                let meta = meta.map_err(|e| StateError::store(&location, e))?;
                if let Err(e) = objects.delete(&meta.location).await {
                    tracing::warn!("could not delete {} from {location}: {e}", meta.location);
                }
            }
            Ok(())
        })
    }

    /// Where the object at `path` is, for messages (a path, for a local location).
    pub fn object_location(&self, path: &str) -> String {
        match self.local_path(&self.object(path)) {
            Some(p) => p.display().to_string(),
            None => self.describe(&self.object(path)),
        }
    }

    fn object(&self, path: &str) -> ObjectPath {
        path.split('/')
            .filter(|part| !part.is_empty())
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    /// Runs `work` on the state's own I/O runtime and waits for it. Table threads are plain
    /// threads, but a caller may sit inside some other tokio runtime, where `block_on`
    /// would panic: spawning and waiting on a channel works from anywhere.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = StateResult<T>> + Send + 'static,
    ) -> StateResult<T> {
        static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
        let runtime = RUNTIME
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("eddy-state-io")
                    .enable_all()
                    .build()
            })
            .as_ref()
            .map_err(|e| StateError::store(&self.location, format!("no I/O runtime: {e}")))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv()
            .map_err(|_| StateError::store(&self.location, "an I/O task stopped half-way"))?
    }

    /// How many retained manifests name each file (the reference counts).
    pub fn reference_counts(manifests: &[Manifest]) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for m in manifests {
            for name in m.files() {
                *counts.entry(name.to_string()).or_default() += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_read_like_flinks_checkpoint_dir() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        let store = CheckpointStore::open(plain.to_str().unwrap(), &[]).unwrap();
        assert_eq!(store.local_root(), Some(plain.as_path()));
        assert!(plain.join("manifests").is_dir());
        let url = format!("file://{}", dir.path().join("url").display());
        let store = CheckpointStore::open(&url, &[]).unwrap();
        assert_eq!(store.local_root(), Some(dir.path().join("url").as_path()));
        assert_eq!(store.latest_manifest("t").unwrap(), None);

        let s3 = CheckpointStore::open(
            "s3://bucket/some/prefix",
            &[
                ("s3.endpoint", "http://127.0.0.1:9"),
                ("aws_region", "eu-1"),
            ],
        )
        .unwrap();
        assert_eq!(s3.local_root(), None);
        assert_eq!(
            s3.file_location("f.run"),
            "s3://bucket/some/prefix/files/f.run"
        );

        let err = CheckpointStore::open("hdfs://nn/cp", &[]).unwrap_err();
        assert!(err.to_string().contains("unknown scheme 'hdfs'"), "{err}");
        let err = CheckpointStore::open("s3://b/p", &[("s3.no-such-key", "1")]).unwrap_err();
        assert!(err.to_string().contains("s3.no-such-key"), "{err}");
    }
}
