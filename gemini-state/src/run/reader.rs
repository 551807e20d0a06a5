//! Reads a run file: its footer, index and filter at open, its blocks on demand from a
//! memory map, each checked against its checksum on first use.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::Mmap;

use super::block::{Block, BlockCursor};
use super::bloom::Bloom;
use super::format::{cut_short, get_varint, read_checked, verify, Footer, Stored, FOOTER_LEN};
use super::index::BlockIndex;
use super::local::LocalFile;
use crate::{StateError, StateResult};

/// An open, immutable run file. Point reads go through a memory map: a block is read where
/// it lies in the page cache, with no system call and no copy; its checksum is checked the
/// first time, later reads trust it, as a block cache trusts what it holds. Scans (and so
/// compactions, which read whole files) copy their blocks out with `pread` instead: every
/// page a process touches through a map counts in its resident memory until the file goes,
/// and a compaction would touch every page of its inputs.
#[derive(Debug)]
pub(crate) struct RunFile {
    local: LocalFile,
    map: Mmap,
    pub footer: Footer,
    last_keys: BlockIndex,
    /// Per block: offset and length (without the checksum).
    blocks: Vec<(u64, u32)>,
    /// One bit per block whose checksum was checked.
    verified: Vec<AtomicU64>,
    bloom: Bloom,
}

/// Maps `file` for reading.
#[allow(unsafe_code)]
fn map(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: the mapping is only undefined if the file changes under it. Run files are
    // written whole and synced before they are opened, never written again, and live in
    // the table's own directory; they are deleted (unlinked) only after the last reader lets
    // go, and an unlinked file stays mapped until then.
    unsafe { Mmap::map(file) }
}

impl RunFile {
    pub(crate) fn open(path: &Path) -> StateResult<RunFile> {
        let corrupt = |what: &str| StateError::corrupt(path, what);
        let local = LocalFile::open(path, FOOTER_LEN)?;
        let map = map(&local.file).map_err(|e| StateError::io(path, e))?;
        let footer = Footer::decode(&map[map.len() - FOOTER_LEN..], path)?;
        let index = checked(&map, path, footer.index_offset, footer.index_len, "index")?;
        let bloom = checked(&map, path, footer.bloom_offset, footer.bloom_len, "filter")?;
        let bloom = Bloom::from_bytes(bloom).ok_or_else(|| corrupt("bloom filter is malformed"))?;
        let mut at = 0;
        let bad_index = || corrupt("block index is malformed");
        let count = get_varint(index, &mut at).ok_or_else(bad_index)? as usize;
        let mut last_keys = BlockIndex::with_capacity(count.min(1 << 20));
        let mut blocks = Vec::with_capacity(count.min(1 << 20));
        for _ in 0..count {
            let len = get_varint(index, &mut at).ok_or_else(bad_index)? as usize;
            let key = index.get(at..at + len).ok_or_else(bad_index)?;
            at += len;
            let offset = get_varint(index, &mut at).ok_or_else(bad_index)?;
            let blen = get_varint(index, &mut at).ok_or_else(bad_index)?;
            if offset + blen + 4 > footer.bloom_offset {
                return Err(bad_index());
            }
            last_keys.push(key);
            blocks.push((offset, blen as u32));
        }
        let verified = (0..blocks.len().div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        Ok(RunFile {
            local,
            map,
            footer,
            last_keys,
            blocks,
            verified,
            bloom,
        })
    }

    #[cfg(test)]
    pub(crate) fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub(crate) fn path(&self) -> &Path {
        self.local.path()
    }

    /// The open file and what it shares with blob files.
    pub(crate) fn local(&self) -> &LocalFile {
        &self.local
    }

    /// Block `i`'s bytes, checked against its checksum on first use.
    fn block(&self, i: usize) -> StateResult<&[u8]> {
        let (offset, len) = self.blocks[i];
        let (word, bit) = (&self.verified[i / 64], 1u64 << (i % 64));
        if word.load(Ordering::Relaxed) & bit != 0 {
            let start = offset as usize;
            return Ok(&self.map[start..start + len as usize]);
        }
        let bytes = checked(&self.map, self.path(), offset, len, "block")?;
        word.fetch_or(bit, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Block `i`'s bytes copied into `buf` and checked against their checksum.
    fn read_block(&self, i: usize, buf: &mut Vec<u8>) -> StateResult<()> {
        let (offset, len) = self.blocks[i];
        read_checked(
            &self.local.file,
            self.path(),
            offset,
            len as usize,
            "block",
            buf,
        )
    }

    fn malformed(&self) -> StateError {
        StateError::corrupt(self.path(), "a block does not parse")
    }

    /// The version of `key` (a composite key) this file holds, if any. `hash` is
    /// `stable_hash(key)`, computed once for all files.
    pub(crate) fn get(&self, key: &[u8], hash: u64) -> StateResult<Option<Stored<'_>>> {
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
        let block = Block::new(self.block(i)?).map_err(|_| self.malformed())?;
        block.get(key).map_err(|_| self.malformed())
    }
}

/// The `len` bytes at `offset` of a mapped file, checked against the checksum after them.
fn checked<'a>(
    map: &'a [u8],
    path: &Path,
    offset: u64,
    len: u32,
    what: &str,
) -> StateResult<&'a [u8]> {
    let start = offset as usize;
    let bytes = map
        .get(start..start + len as usize + 4)
        .ok_or_else(|| cut_short(path, offset, what))?;
    verify(bytes, path, offset, what)
}

/// Walks a run file's entries in key order from a start key, one block at a time, each
/// copied out of the file (see [`RunFile`] for why not through the map).
#[derive(Debug)]
pub(crate) struct RunIter {
    run: Arc<RunFile>,
    block_no: usize,
    block: Vec<u8>,
    /// Length of the current block's entry bytes (before its restart array); `None` past
    /// the end.
    data_len: Option<usize>,
    cursor: BlockCursor,
}

impl RunIter {
    /// An iterator at the first entry with key ≥ `start`.
    pub(crate) fn seek(run: Arc<RunFile>, start: &[u8]) -> StateResult<RunIter> {
        let mut it = RunIter {
            block_no: run.last_keys.block_for(start).unwrap_or(run.blocks.len()),
            run,
            block: Vec::new(),
            data_len: None,
            cursor: BlockCursor::default(),
        };
        if it.block_no < it.run.blocks.len() {
            it.run.read_block(it.block_no, &mut it.block)?;
            let block = Block::new(&it.block).map_err(|_| it.run.malformed())?;
            it.cursor = block.seek(start).map_err(|_| it.run.malformed())?;
            it.data_len = Some(block.data().len());
        }
        Ok(it)
    }

    /// The next entry, or `None` past the file's end.
    #[allow(clippy::should_implement_trait)]
    pub(crate) fn next(&mut self) -> StateResult<Option<(&[u8], Stored<'_>)>> {
        loop {
            let Some(len) = self.data_len else {
                return Ok(None);
            };
            if !self.cursor.at_end(len) {
                break;
            }
            self.block_no += 1;
            if self.block_no >= self.run.blocks.len() {
                self.data_len = None;
                return Ok(None);
            }
            self.run.read_block(self.block_no, &mut self.block)?;
            let block = Block::new(&self.block).map_err(|_| self.run.malformed())?;
            self.data_len = Some(block.data().len());
            self.cursor = BlockCursor::default();
        }
        let data = &self.block[..self.data_len.expect("checked above")];
        self.cursor.next(data).map_err(|_| self.run.malformed())
    }
}
