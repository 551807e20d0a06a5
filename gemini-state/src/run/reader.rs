//! Reads a run file: its footer, index and filter at open, its blocks on demand through a
//! shared block cache, each checked against its checksum.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::block::{Block, BlockCursor};
use super::bloom::Bloom;
use super::format::{get_varint, Footer, Kind, FOOTER_LEN};
use super::index::BlockIndex;
use crate::{StateError, StateResult};

/// A stored version copied out of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnedStored {
    pub kind: Kind,
    pub written_at: i64,
    pub value: Vec<u8>,
}

/// Decoded blocks of all of a table's run files, up to a byte budget, oldest out first.
#[derive(Debug)]
pub(crate) struct BlockCache {
    inner: Mutex<CacheInner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct CacheInner {
    blocks: HashMap<(u64, u32), Arc<Vec<u8>>>,
    order: VecDeque<(u64, u32)>,
    bytes: usize,
}

impl BlockCache {
    pub(crate) fn new(capacity: usize) -> BlockCache {
        BlockCache {
            inner: Mutex::new(CacheInner::default()),
            capacity,
        }
    }

    fn get(&self, key: (u64, u32)) -> Option<Arc<Vec<u8>>> {
        self.inner.lock().blocks.get(&key).cloned()
    }

    fn insert(&self, key: (u64, u32), block: Arc<Vec<u8>>) {
        if block.len() > self.capacity {
            return;
        }
        let mut inner = self.inner.lock();
        inner.bytes += block.len();
        if let Some(old) = inner.blocks.insert(key, block) {
            inner.bytes -= old.len();
        } else {
            inner.order.push_back(key);
        }
        while inner.bytes > self.capacity {
            let Some(victim) = inner.order.pop_front() else {
                break;
            };
            if let Some(b) = inner.blocks.remove(&victim) {
                inner.bytes -= b.len();
            }
        }
    }
}

/// An open, immutable run file.
#[derive(Debug)]
pub(crate) struct RunFile {
    pub id: u64,
    path: PathBuf,
    file: File,
    pub footer: Footer,
    last_keys: BlockIndex,
    /// Per block: offset and length (without the checksum).
    blocks: Vec<(u64, u32)>,
    bloom: Bloom,
    cache: Arc<BlockCache>,
    /// Set when no live table version names the file: it is deleted once the last
    /// reader (an iterator, a retained snapshot) lets go.
    obsolete: AtomicBool,
}

impl RunFile {
    pub(crate) fn open(id: u64, path: &Path, cache: Arc<BlockCache>) -> StateResult<RunFile> {
        let corrupt = |what: &str| StateError::corrupt(path, what);
        let file = File::open(path).map_err(|e| StateError::io(path, e))?;
        let bytes = file.metadata().map_err(|e| StateError::io(path, e))?.len();
        if bytes < FOOTER_LEN as u64 {
            return Err(corrupt("file is shorter than its footer (truncated)"));
        }
        let mut fb = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut fb, bytes - FOOTER_LEN as u64)
            .map_err(|e| StateError::io(path, e))?;
        let footer = Footer::decode(&fb, path)?;
        let index = read_checked(&file, path, footer.index_offset, footer.index_len, "index")?;
        let bloom = read_checked(&file, path, footer.bloom_offset, footer.bloom_len, "filter")?;
        let bloom =
            Bloom::from_bytes(&bloom).ok_or_else(|| corrupt("bloom filter is malformed"))?;
        let mut at = 0;
        let bad_index = || corrupt("block index is malformed");
        let count = get_varint(&index, &mut at).ok_or_else(bad_index)? as usize;
        let mut last_keys = BlockIndex::with_capacity(count.min(1 << 20));
        let mut blocks = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            let len = get_varint(&index, &mut at).ok_or_else(bad_index)? as usize;
            let key = index.get(at..at + len).ok_or_else(bad_index)?;
            at += len;
            let offset = get_varint(&index, &mut at).ok_or_else(bad_index)?;
            let blen = get_varint(&index, &mut at).ok_or_else(bad_index)?;
            if offset + blen + 4 > footer.bloom_offset {
                return Err(bad_index());
            }
            last_keys.push(key);
            blocks.push((offset, blen as u32));
        }
        Ok(RunFile {
            id,
            path: path.to_path_buf(),
            file,
            footer,
            last_keys,
            blocks,
            bloom,
            cache,
            obsolete: AtomicBool::new(false),
        })
    }

    #[cfg(test)]
    pub(crate) fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Relaxed);
    }

    fn block(&self, i: usize) -> StateResult<Arc<Vec<u8>>> {
        let key = (self.id, i as u32);
        if let Some(b) = self.cache.get(key) {
            return Ok(b);
        }
        let (offset, len) = self.blocks[i];
        let bytes = Arc::new(read_checked(&self.file, &self.path, offset, len, "block")?);
        self.cache.insert(key, bytes.clone());
        Ok(bytes)
    }

    fn malformed(&self) -> StateError {
        StateError::corrupt(&self.path, "a block does not parse")
    }

    /// The version of `key` (a composite key) this file holds, if any. `hash` is
    /// `stable_hash(key)`, computed once for all files.
    pub(crate) fn get(&self, key: &[u8], hash: u64) -> StateResult<Option<OwnedStored>> {
        if key.len() < 2 {
            return Ok(None);
        }
        let kg = u16::from_be_bytes([key[0], key[1]]);
        if kg < self.footer.min_key_group
            || kg > self.footer.max_key_group
            || !self.bloom.may_contain_hash(hash)
        {
            return Ok(None);
        }
        let Some(i) = self.last_keys.block_for(key) else {
            return Ok(None);
        };
        let bytes = self.block(i)?;
        let block = Block::new(&bytes).map_err(|_| self.malformed())?;
        Ok(block
            .get(key)
            .map_err(|_| self.malformed())?
            .map(|s| OwnedStored {
                kind: s.kind,
                written_at: s.written_at,
                value: s.value.to_vec(),
            }))
    }
}

impl Drop for RunFile {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Relaxed) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_checked(
    file: &File,
    path: &Path,
    offset: u64,
    len: u32,
    what: &str,
) -> StateResult<Vec<u8>> {
    let mut buf = vec![0u8; len as usize + 4];
    file.read_exact_at(&mut buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            StateError::corrupt(path, &format!("the {what} at byte {offset} is cut short"))
        } else {
            StateError::io(path, e)
        }
    })?;
    let crc = u32::from_le_bytes(buf[len as usize..].try_into().expect("4 bytes"));
    buf.truncate(len as usize);
    if crc32fast::hash(&buf) != crc {
        return Err(StateError::corrupt(
            path,
            &format!("checksum mismatch in the {what} at byte {offset}"),
        ));
    }
    Ok(buf)
}

/// Walks a run file's entries in key order from a start key, one block in memory at a time.
#[derive(Debug)]
pub(crate) struct RunIter {
    run: Arc<RunFile>,
    block_no: usize,
    block: Option<Arc<Vec<u8>>>,
    /// Length of the current block's entry bytes (before its restart array).
    data_len: usize,
    cursor: BlockCursor,
}

impl RunIter {
    /// An iterator at the first entry with key ≥ `start`.
    pub(crate) fn seek(run: Arc<RunFile>, start: &[u8]) -> StateResult<RunIter> {
        let mut it = RunIter {
            block_no: run.last_keys.block_for(start).unwrap_or(run.blocks.len()),
            run,
            block: None,
            data_len: 0,
            cursor: BlockCursor::default(),
        };
        if it.block_no < it.run.blocks.len() {
            let bytes = it.run.block(it.block_no)?;
            let block = Block::new(&bytes).map_err(|_| it.run.malformed())?;
            it.cursor = block.seek(start).map_err(|_| it.run.malformed())?;
            it.data_len = block.data().len();
            it.block = Some(bytes);
        }
        Ok(it)
    }

    /// The next entry, or `None` past the file's end.
    #[allow(clippy::should_implement_trait)]
    pub(crate) fn next(&mut self) -> StateResult<Option<(&[u8], super::Stored<'_>)>> {
        loop {
            if self.block.is_none() {
                return Ok(None);
            }
            if !self.cursor.at_end(self.data_len) {
                break;
            }
            self.block_no += 1;
            if self.block_no >= self.run.blocks.len() {
                self.block = None;
                return Ok(None);
            }
            let bytes = self.run.block(self.block_no)?;
            let block = Block::new(&bytes).map_err(|_| self.run.malformed())?;
            self.data_len = block.data().len();
            self.cursor = BlockCursor::default();
            self.block = Some(bytes);
        }
        let bytes = self.block.as_ref().expect("checked above");
        let data = &bytes[..self.data_len];
        self.cursor.next(data).map_err(|_| self.run.malformed())
    }
}
