//! One block of a run file: prefix-compressed sorted entries with restart points.
//!
//! Entry: `shared` varint, `unshared` varint, `value_len` varint, kind byte, written_at (8
//! bytes LE), the key's unshared suffix, the value. Block end: restart offsets (u32 LE each),
//! then their count (u32 LE).

use super::format::{get_varint, put_varint, Kind, Stored, RESTART_INTERVAL};

/// Builds one block from entries added in key order.
#[derive(Debug, Default)]
pub(crate) struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    last_key: Vec<u8>,
    count: usize,
}

impl BlockBuilder {
    pub(crate) fn add(&mut self, key: &[u8], stored: Stored<'_>) {
        let shared = if self.count.is_multiple_of(RESTART_INTERVAL) {
            self.restarts.push(self.buf.len() as u32);
            0
        } else {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        };
        put_varint(&mut self.buf, shared as u64);
        put_varint(&mut self.buf, (key.len() - shared) as u64);
        put_varint(&mut self.buf, stored.value.len() as u64);
        self.buf.push(stored.kind as u8);
        self.buf.extend_from_slice(&stored.written_at.to_le_bytes());
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(stored.value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.count += 1;
    }

    /// Bytes the block would take if finished now.
    pub(crate) fn size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// The finished block; the builder is empty again.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.restarts.clear();
        self.last_key.clear();
        self.count = 0;
        out
    }
}

/// A decoded view of a block's bytes (checked against its checksum by the reader).
#[derive(Debug)]
pub(crate) struct Block<'a> {
    data: &'a [u8],
    restarts: &'a [u8],
}

/// The block does not parse: the caller reports the file.
#[derive(Debug)]
pub(crate) struct Malformed;

impl<'a> Block<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Result<Block<'a>, Malformed> {
        let n = bytes.len();
        if n < 4 {
            return Err(Malformed);
        }
        let count = u32::from_le_bytes(bytes[n - 4..].try_into().expect("4 bytes")) as usize;
        let restarts_start = n
            .checked_sub(4 + 4 * count)
            .filter(|_| count > 0)
            .ok_or(Malformed)?;
        Ok(Block {
            data: &bytes[..restarts_start],
            restarts: &bytes[restarts_start..n - 4],
        })
    }

    fn restart(&self, i: usize) -> usize {
        u32::from_le_bytes(self.restarts[4 * i..4 * i + 4].try_into().expect("4 bytes")) as usize
    }

    fn restart_count(&self) -> usize {
        self.restarts.len() / 4
    }

    /// The entries' bytes, for [`BlockCursor::next`].
    pub(crate) fn data(&self) -> &'a [u8] {
        self.data
    }

    /// A cursor whose next entry is the first with key ≥ `target`.
    pub(crate) fn seek(&self, target: &[u8]) -> Result<BlockCursor, Malformed> {
        // The last restart whose full key is < target; entries before it are all smaller.
        let (mut lo, mut hi) = (0, self.restart_count());
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            let mut c = BlockCursor::at(self.restart(mid));
            match c.next(self.data)? {
                Some((k, _)) if k < target => lo = mid,
                Some(_) => hi = mid,
                None => return Err(Malformed),
            }
        }
        let mut c = BlockCursor::at(self.restart(lo));
        loop {
            let start = c.at;
            match c.next(self.data)? {
                Some((k, _)) if k < target => {}
                Some(_) => {
                    // Decoding that entry again from `start` rebuilds the same key: it shares
                    // its first bytes with the key the cursor holds now.
                    c.at = start;
                    return Ok(c);
                }
                None => return Ok(c),
            }
        }
    }

    /// The entry stored under exactly `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Stored<'a>>, Malformed> {
        let mut c = self.seek(key)?;
        match c.next(self.data)? {
            Some((k, v)) if k == key => Ok(Some(v)),
            _ => Ok(None),
        }
    }
}

/// A position in a block: walks its entries in key order, rebuilding each full key. It holds
/// no borrow of the block, so an iterator can keep both side by side.
#[derive(Debug, Clone, Default)]
pub(crate) struct BlockCursor {
    at: usize,
    key: Vec<u8>,
}

impl BlockCursor {
    fn at(at: usize) -> BlockCursor {
        BlockCursor {
            at,
            key: Vec::new(),
        }
    }

    /// Whether the cursor has passed the last of `data_len` entry bytes.
    pub(crate) fn at_end(&self, data_len: usize) -> bool {
        self.at >= data_len
    }

    /// The next entry of the block whose entries are `data`, or `None` at its end.
    pub(crate) fn next<'a>(
        &mut self,
        data: &'a [u8],
    ) -> Result<Option<(&[u8], Stored<'a>)>, Malformed> {
        if self.at >= data.len() {
            return Ok(None);
        }
        let d = data;
        let mut at = self.at;
        let shared = get_varint(d, &mut at).ok_or(Malformed)? as usize;
        let unshared = get_varint(d, &mut at).ok_or(Malformed)? as usize;
        let value_len = get_varint(d, &mut at).ok_or(Malformed)? as usize;
        let kind = Kind::from_byte(*d.get(at).ok_or(Malformed)?).ok_or(Malformed)?;
        let written_at = i64::from_le_bytes(
            d.get(at + 1..at + 9)
                .ok_or(Malformed)?
                .try_into()
                .expect("8 bytes"),
        );
        at += 9;
        let suffix = d.get(at..at + unshared).ok_or(Malformed)?;
        at += unshared;
        let value = d.get(at..at + value_len).ok_or(Malformed)?;
        at += value_len;
        if shared > self.key.len() {
            return Err(Malformed);
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(suffix);
        self.at = at;
        Ok(Some((
            &self.key,
            Stored {
                kind,
                written_at,
                value,
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &[u8]) -> Stored<'_> {
        Stored {
            kind: Kind::Put,
            written_at: 7,
            value: v,
        }
    }

    fn built(keys: &[Vec<u8>]) -> Vec<u8> {
        let mut b = BlockBuilder::default();
        for k in keys {
            b.add(k, put(k));
        }
        b.finish()
    }

    fn keys(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("key-{:05}", i * 2).into_bytes())
            .collect()
    }

    #[test]
    fn every_key_is_found_and_iteration_is_in_order() {
        let ks = keys(100);
        let bytes = built(&ks);
        let block = Block::new(&bytes).unwrap();
        for k in &ks {
            assert_eq!(block.get(k).unwrap().unwrap().value, k.as_slice());
        }
        assert!(block.get(b"key-00001").unwrap().is_none());
        assert!(block.get(b"zzz").unwrap().is_none());
        let mut c = BlockCursor::default();
        let mut seen = Vec::new();
        while let Some((k, _)) = c.next(block.data()).unwrap() {
            seen.push(k.to_vec());
        }
        assert_eq!(seen, ks);
    }

    #[test]
    fn seek_lands_on_the_first_key_at_or_after_the_target() {
        let ks = keys(50);
        let bytes = built(&ks);
        let block = Block::new(&bytes).unwrap();
        let mut c = block.seek(b"key-00033").unwrap();
        assert_eq!(c.next(block.data()).unwrap().unwrap().0, b"key-00034");
        let mut c = block.seek(b"key-00032").unwrap();
        assert_eq!(c.next(block.data()).unwrap().unwrap().0, b"key-00032");
        let mut c = block.seek(b"a").unwrap();
        assert_eq!(c.next(block.data()).unwrap().unwrap().0, b"key-00000");
        let mut c = block.seek(b"z").unwrap();
        assert!(c.next(block.data()).unwrap().is_none());
    }

    #[test]
    fn damaged_blocks_are_malformed_not_panics() {
        let bytes = built(&keys(40));
        for cut in [0, 3, 10, bytes.len() / 2, bytes.len() - 1] {
            if let Ok(block) = Block::new(&bytes[..cut]) {
                let mut c = BlockCursor::default();
                while let Ok(Some(_)) = c.next(block.data()) {}
                let _ = block.get(b"key-00010");
            }
        }
    }
}
