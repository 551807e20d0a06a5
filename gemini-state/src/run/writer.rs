//! Writes one run file from entries in key order.
//!
//! The file is written under a temporary name, synced, and renamed: a crash mid-write leaves
//! at most a `.tmp` file that no manifest names, never a half file under a real name. Values
//! at least as long as the separation threshold go to a blob file instead, finished (synced
//! and renamed) before the run that references it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::blob::{BlobRef, BlobWriter};
use super::block::BlockBuilder;
use super::bloom::BloomBuilder;
use super::format::{finish_file, put_varint, Footer, Kind, Stored, BLOCK_SIZE};
use crate::{StateError, StateResult};

/// What a finished run file holds.
#[derive(Debug, Clone)]
pub(crate) struct RunSummary {
    pub path: PathBuf,
    pub bytes: u64,
    pub footer: Footer,
    /// Blob files the run references, by id, with the bytes of the values it references in
    /// each (checksums included).
    pub blobs: BTreeMap<u64, u64>,
    /// The blob file this writer made, if any: its id, path and size.
    pub new_blob: Option<(u64, PathBuf, u64)>,
}

/// Where a writer puts values of at least `min_bytes`: a new blob file (made on the first
/// such value) at `path`, with id `id`.
#[derive(Debug, Clone)]
pub(crate) struct BlobSeparation {
    pub min_bytes: usize,
    pub path: PathBuf,
    pub id: u64,
}

pub(crate) struct RunWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    block: BlockBuilder,
    /// Per block: last key, offset, length (without the checksum).
    index: Vec<(Vec<u8>, u64, u32)>,
    bloom: BloomBuilder,
    footer: Footer,
    last_key: Option<Vec<u8>>,
    separation: Option<BlobSeparation>,
    blob: Option<BlobWriter>,
    blobs: BTreeMap<u64, u64>,
    /// An encoded reference, reused.
    blob_ref: Vec<u8>,
}

impl RunWriter {
    pub(crate) fn create(
        path: &Path,
        separation: Option<BlobSeparation>,
    ) -> StateResult<RunWriter> {
        let tmp = path.with_extension("tmp");
        let file = File::create(&tmp).map_err(|e| StateError::io(&tmp, e))?;
        Ok(RunWriter {
            path: path.to_path_buf(),
            tmp,
            out: BufWriter::with_capacity(256 * 1024, file),
            offset: 0,
            block: BlockBuilder::default(),
            index: Vec::new(),
            bloom: BloomBuilder::default(),
            footer: Footer {
                index_offset: 0,
                index_len: 0,
                bloom_offset: 0,
                bloom_len: 0,
                min_key_group: u16::MAX,
                max_key_group: 0,
                max_written_at: i64::MIN,
                entries: 0,
                tombstones: 0,
            },
            last_key: None,
            separation,
            blob: None,
            blobs: BTreeMap::new(),
            blob_ref: Vec::new(),
        })
    }

    /// Adds `key` (a composite key: key group first), which must sort after the last one.
    pub(crate) fn add(&mut self, key: &[u8], stored: Stored<'_>) -> StateResult<()> {
        debug_assert!(key.len() >= 2, "composite keys start with their key group");
        debug_assert!(
            self.last_key.as_deref().is_none_or(|last| last < key),
            "run keys must be added in order"
        );
        let kg = u16::from_be_bytes([key[0], key[1]]);
        let f = &mut self.footer;
        f.min_key_group = f.min_key_group.min(kg);
        f.max_key_group = f.max_key_group.max(kg);
        f.max_written_at = f.max_written_at.max(stored.written_at);
        f.entries += 1;
        if stored.kind == Kind::Delete {
            f.tombstones += 1;
        }
        self.bloom.add(key);
        if self.separate(&stored)? {
            let reference = Stored {
                kind: Kind::Blob,
                written_at: stored.written_at,
                value: &self.blob_ref,
            };
            self.block.add(key, reference);
        } else {
            self.block.add(key, stored);
        }
        match &mut self.last_key {
            Some(k) => {
                k.clear();
                k.extend_from_slice(key);
            }
            None => self.last_key = Some(key.to_vec()),
        }
        if self.block.size() >= BLOCK_SIZE {
            self.cut_block()?;
        }
        Ok(())
    }

    /// Moves a large value to the blob file (true: the entry is to hold `blob_ref` instead)
    /// and counts what the run references, including references passed on from older runs.
    fn separate(&mut self, stored: &Stored<'_>) -> StateResult<bool> {
        let (r, moved) = match (stored.kind, &self.separation) {
            (Kind::Put, Some(sep)) if stored.value.len() >= sep.min_bytes => {
                let blob = match &mut self.blob {
                    Some(b) => b,
                    None => self.blob.insert(BlobWriter::create(&sep.path, sep.id)?),
                };
                let r = blob.append(stored.value)?;
                r.encode(&mut self.blob_ref);
                (r, true)
            }
            (Kind::Blob, _) => {
                let r = BlobRef::decode(stored.value).ok_or_else(|| {
                    StateError::corrupt(&self.tmp, "a blob reference is malformed")
                })?;
                (r, false)
            }
            _ => return Ok(false),
        };
        *self.blobs.entry(r.blob).or_default() += r.stored_bytes();
        Ok(moved)
    }

    pub(crate) fn entries(&self) -> u64 {
        self.footer.entries
    }

    /// Bytes written so far (blocks and separated values).
    pub(crate) fn written(&self) -> u64 {
        self.offset + self.block.size() as u64 + self.blob.as_ref().map_or(0, |b| b.written())
    }

    /// Drops the unfinished files.
    pub(crate) fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp);
        if let Some(b) = self.blob {
            b.abandon();
        }
    }

    fn cut_block(&mut self) -> StateResult<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let last = self.block.last_key().to_vec();
        let bytes = self.block.finish();
        let offset = self.write_checked(&bytes)?;
        self.index.push((last, offset, bytes.len() as u32));
        Ok(())
    }

    /// Writes `bytes` and their checksum; returns where they start.
    fn write_checked(&mut self, bytes: &[u8]) -> StateResult<u64> {
        let at = self.offset;
        let crc = crc32fast::hash(bytes);
        self.out
            .write_all(bytes)
            .and_then(|_| self.out.write_all(&crc.to_le_bytes()))
            .map_err(|e| StateError::io(&self.tmp, e))?;
        self.offset += bytes.len() as u64 + 4;
        Ok(at)
    }

    /// Writes the filter, index and footer, syncs, and moves the file to its name.
    pub(crate) fn finish(mut self) -> StateResult<RunSummary> {
        // The blob file is whole on disk before any run that references it is.
        let new_blob = match self.blob.take() {
            Some(b) => {
                let (id, path) = (b.id(), b.path().to_path_buf());
                Some((id, path, b.finish()?))
            }
            None => None,
        };
        self.cut_block()?;
        let bloom = self.bloom.finish();
        self.footer.bloom_offset = self.write_checked(&bloom)?;
        self.footer.bloom_len = bloom.len() as u32;
        let mut index = Vec::new();
        put_varint(&mut index, self.index.len() as u64);
        for (key, offset, len) in &self.index {
            put_varint(&mut index, key.len() as u64);
            index.extend_from_slice(key);
            put_varint(&mut index, *offset);
            put_varint(&mut index, u64::from(*len));
        }
        self.footer.index_offset = self.write_checked(&index)?;
        self.footer.index_len = index.len() as u32;
        let footer = self.footer.encode();
        finish_file(self.out, &footer, &self.tmp, &self.path)?;
        Ok(RunSummary {
            path: self.path,
            bytes: self.offset + footer.len() as u64,
            footer: self.footer,
            blobs: self.blobs,
            new_blob,
        })
    }
}
