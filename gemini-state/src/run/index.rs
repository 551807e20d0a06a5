//! A run file's block index in memory: the last key of each block, searched by binary search.
//!
//! The search touches one entry per step, so the entries live in flat arrays: the first
//! eight bytes of every last key as a big-endian `u64` (compared as integers, they order
//! like the keys), the keys themselves in one buffer. Most steps decide on the integers
//! alone; only keys that share their first eight bytes compare in full. A `Vec` per key
//! cost a cache miss for its header and another for its bytes at every step.

/// The last keys of a file's blocks, in order.
#[derive(Debug, Default)]
pub(crate) struct BlockIndex {
    prefixes: Vec<u64>,
    keys: Vec<u8>,
    /// `ends[i]`: where block `i`'s last key ends in `keys`.
    ends: Vec<u32>,
}

/// The first eight bytes of `key`, zero-padded, as a number that orders like the bytes.
fn prefix(key: &[u8]) -> u64 {
    let mut p = [0u8; 8];
    let n = key.len().min(8);
    p[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(p)
}

impl BlockIndex {
    pub(crate) fn with_capacity(blocks: usize) -> BlockIndex {
        BlockIndex {
            prefixes: Vec::with_capacity(blocks),
            keys: Vec::new(),
            ends: Vec::with_capacity(blocks),
        }
    }

    /// Appends the next block's last key (keys come in order).
    pub(crate) fn push(&mut self, last_key: &[u8]) {
        self.prefixes.push(prefix(last_key));
        self.keys.extend_from_slice(last_key);
        self.ends.push(self.keys.len() as u32);
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    fn last_key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.keys[start..self.ends[i] as usize]
    }

    /// The first block whose last key is ≥ `key`: the only one that can hold it.
    pub(crate) fn block_for(&self, key: &[u8]) -> Option<usize> {
        let p = prefix(key);
        // Every block before `i` has a smaller prefix, so a smaller last key. Zero padding
        // makes a key of under eight bytes tie with its extensions: the full compare below
        // settles those.
        let mut i = self.prefixes.partition_point(|&q| q < p);
        while i < self.len() && self.prefixes[i] == p && self.last_key(i) < key {
            i += 1;
        }
        (i < self.len()).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_block_a_key_belongs_to_like_a_full_binary_search() {
        // Keys sharing long prefixes, short keys, and keys that differ only past byte 8.
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for a in 0..6u8 {
            keys.push(vec![a]);
            keys.push(vec![a, 0]);
            for b in 0..40u16 {
                let mut k = vec![a, 1, 1, 1, 1, 1, 1, 1];
                k.extend_from_slice(&b.to_be_bytes());
                keys.push(k);
            }
            keys.push(vec![a, 1, 1, 1, 1, 1, 1, 2]);
        }
        keys.sort();
        keys.dedup();
        // Every third key is some block's last key.
        let lasts: Vec<&Vec<u8>> = keys.iter().step_by(3).collect();
        let mut index = BlockIndex::default();
        for k in &lasts {
            index.push(k);
        }
        let mut probes = keys.clone();
        probes.extend([vec![], vec![9], vec![0, 1, 1, 1, 1, 1, 1, 1, 0xff]]);
        for key in &probes {
            let want = lasts.partition_point(|last| last.as_slice() < key.as_slice());
            let want = (want < lasts.len()).then_some(want);
            assert_eq!(index.block_for(key), want, "{key:?}");
        }
    }
}
