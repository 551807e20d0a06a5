//! A checkpoint's `_metadata`: what every operator, source and sink subtask saved, written
//! last, so that a checkpoint directory without it is not a checkpoint.
//!
//! The file is a header line with the body's length and SHA-256, then the body as JSON. A
//! flipped byte or a cut-off file fails the check and is reported with the file's path, never
//! read as state. Table manifests are embedded, so a checkpoint needs nothing beside its
//! metadata but the shared run files it names.

use std::collections::BTreeMap;

use gemini_state::{CheckpointStore, Manifest};
use kernel::checkpoint::SplitState;
use kernel::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the first line of every `_metadata` says it is.
const MAGIC: &str = "eddy-checkpoint";
const VERSION: u32 = 1;
pub(crate) const METADATA_FILE: &str = "_metadata";

/// The directory of checkpoint `id` inside a job's directory.
pub(crate) fn checkpoint_dir(id: u64) -> String {
    format!("chk-{id}")
}

/// The checkpoint id of a directory named as [`checkpoint_dir`] names it.
pub(crate) fn checkpoint_id_of(dir: &str) -> Option<u64> {
    dir.strip_prefix("chk-")?.parse().ok()
}

/// One published checkpoint of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    pub job_id: String,
    pub checkpoint_id: u64,
    /// Taken after every task had finished: restored, the job only commits.
    pub finished: bool,
    /// A savepoint: self-contained (its directory holds every file it names), owned by
    /// the user; a job restored from it starts a job directory of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub savepoint: bool,
    pub max_parallelism: usize,
    /// By operator uid.
    pub operators: BTreeMap<String, OperatorState>,
}

/// What every subtask of one node saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorState {
    pub name: String,
    pub parallelism: usize,
    /// Per subtask, in subtask order.
    pub subtasks: Vec<SubtaskState>,
}

/// What one subtask of a node saved at the barrier.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubtaskState {
    /// The operator's small state (a sink's pending committables), hex.
    #[serde(with = "hex_bytes", default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<u8>,
    /// A source's split positions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub splits: Vec<SplitState>,
    /// State tables, by table name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, Manifest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_timers: Vec<i64>,
    /// Processing-time timers, as milliseconds from the barrier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processing_timers_ms: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    bytes: usize,
    sha256: String,
}

impl CheckpointMetadata {
    /// The file's bytes: header line, body.
    pub fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec(self).expect("checkpoint metadata serializes");
        let header = Header {
            format: MAGIC.into(),
            version: VERSION,
            bytes: body.len(),
            sha256: hex(&Sha256::digest(&body)),
        };
        let mut out = serde_json::to_vec(&header).expect("a header serializes");
        out.push(b'\n');
        out.extend_from_slice(&body);
        out
    }

    /// Reads the bytes of the file at `path` (named in errors).
    pub fn decode(bytes: &[u8], path: &str) -> Result<CheckpointMetadata> {
        let corrupt = |what: &str| {
            Error::user(format!(
                "checkpoint metadata {path} is corrupt or incomplete: {what}"
            ))
        };
        let split = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| corrupt("it has no header line"))?;
        let header: Header = serde_json::from_slice(&bytes[..split])
            .map_err(|_| corrupt("its header does not parse"))?;
        if header.format != MAGIC {
            return Err(corrupt("it is not an eddy checkpoint"));
        }
        if header.version != VERSION {
            return Err(Error::user(format!(
                "checkpoint metadata {path} has version {}; this eddy reads version {VERSION}",
                header.version
            )));
        }
        let body = &bytes[split + 1..];
        if body.len() != header.bytes {
            return Err(corrupt(&format!(
                "it holds {} bytes of the {} it should",
                body.len(),
                header.bytes
            )));
        }
        if hex(&Sha256::digest(body)) != header.sha256 {
            return Err(corrupt("its checksum does not match"));
        }
        serde_json::from_slice(body).map_err(|e| corrupt(&format!("its body does not parse: {e}")))
    }

    /// Every table manifest the checkpoint names.
    pub fn manifests(&self) -> impl Iterator<Item = &Manifest> {
        self.operators
            .values()
            .flat_map(|o| o.subtasks.iter())
            .flat_map(|s| s.tables.values())
    }
}

/// Writes `meta` as `chk-<id>/_metadata` of the job's `store`, atomically.
pub(crate) fn publish(store: &CheckpointStore, meta: &CheckpointMetadata) -> Result<String> {
    let path = format!("{}/{METADATA_FILE}", checkpoint_dir(meta.checkpoint_id));
    store
        .put_object(&path, meta.encode())
        .map_err(|e| Error::user(format!("writing checkpoint {}: {e}", meta.checkpoint_id)))?;
    Ok(store.object_location(&checkpoint_dir(meta.checkpoint_id)))
}

/// Writes savepoint `meta` into `store`, a savepoint's own directory: first every file its
/// tables name, copied from the job's `job_store` (hard links where they can be), then its
/// `_metadata`, so that a savepoint directory with metadata is whole wherever it is moved.
pub(crate) fn publish_savepoint(
    job_store: &CheckpointStore,
    store: &CheckpointStore,
    meta: &CheckpointMetadata,
) -> Result<String> {
    let what = format!("into savepoint {}", store.location());
    super::copy_state_files(meta, job_store, store, &what)?;
    let mut meta = meta.clone();
    meta.savepoint = true;
    store
        .put_object(METADATA_FILE, meta.encode())
        .map_err(|e| Error::user(format!("writing savepoint {}: {e}", store.location())))?;
    Ok(store.location().to_string())
}

/// The metadata of checkpoint `id` of the job's `store`; `None` if it was never published.
pub(crate) fn read(store: &CheckpointStore, id: u64) -> Result<Option<CheckpointMetadata>> {
    let path = format!("{}/{METADATA_FILE}", checkpoint_dir(id));
    let where_ = store.object_location(&path);
    let bytes = store
        .get_object(&path)
        .map_err(|e| Error::user(format!("reading {where_}: {e}")))?;
    bytes
        .map(|b| CheckpointMetadata::decode(&b, &where_))
        .transpose()
}

/// The ids of the published checkpoints of the job's `store`, oldest first.
pub(crate) fn published(store: &CheckpointStore) -> Result<Vec<u64>> {
    let names = store
        .list_names("")
        .map_err(|e| Error::user(format!("listing {}: {e}", store.location())))?;
    let mut ids = Vec::new();
    for id in names.iter().filter_map(|n| checkpoint_id_of(n)) {
        let path = format!("{}/{METADATA_FILE}", checkpoint_dir(id));
        let found = store
            .get_object(&path)
            .map_err(|e| Error::user(format!("reading {}: {e}", store.object_location(&path))))?;
        if found.is_some() {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes as a hex string in JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CheckpointMetadata {
        let mut operators = BTreeMap::new();
        operators.insert(
            "src".to_string(),
            OperatorState {
                name: "Source".into(),
                parallelism: 1,
                subtasks: vec![SubtaskState {
                    state: vec![0, 255, 7],
                    splits: vec![SplitState {
                        split: "a.csv".into(),
                        position: vec![1, 2],
                    }],
                    ..Default::default()
                }],
            },
        );
        CheckpointMetadata {
            job_id: "j".into(),
            checkpoint_id: 3,
            finished: false,
            savepoint: false,
            max_parallelism: 128,
            operators,
        }
    }

    #[test]
    fn metadata_reads_back_and_damage_is_named() {
        let meta = sample();
        let bytes = meta.encode();
        assert_eq!(CheckpointMetadata::decode(&bytes, "p").unwrap(), meta);

        let mut flipped = bytes.clone();
        let last = flipped.len() - 5;
        flipped[last] ^= 0x20;
        let e = CheckpointMetadata::decode(&flipped, "/x/chk-3/_metadata").unwrap_err();
        assert!(e.to_string().contains("/x/chk-3/_metadata"), "{e}");
        assert!(e.to_string().contains("checksum"), "{e}");

        let cut = &bytes[..bytes.len() - 10];
        let e = CheckpointMetadata::decode(cut, "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds"), "{e}");
        let e = CheckpointMetadata::decode(b"", "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no header"), "{e}");
    }

    #[test]
    fn published_lists_only_checkpoints_with_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::local(dir.path()).unwrap();
        let mut meta = sample();
        publish(&store, &meta).unwrap();
        meta.checkpoint_id = 10;
        publish(&store, &meta).unwrap();
        std::fs::create_dir_all(dir.path().join("chk-11")).unwrap();
        assert_eq!(published(&store).unwrap(), vec![3, 10]);
        assert_eq!(read(&store, 10).unwrap().unwrap(), meta);
        assert_eq!(read(&store, 11).unwrap(), None);
    }
}
