//! The keys a table stores: the key group, big-endian (so each group is a contiguous range),
//! then the operator's key. A batch's stored keys are built up front with their hashes, so
//! tier 0 can prefetch a few keys ahead of the one it works on.

use crate::KeyGroup;

/// The stored key of `key` in group `kg`.
pub(super) fn composite(kg: KeyGroup, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + key.len());
    push_composite(&mut k, kg, key);
    k
}

fn push_composite(buf: &mut Vec<u8>, kg: KeyGroup, key: &[u8]) {
    buf.extend_from_slice(&kg.to_be_bytes());
    buf.extend_from_slice(key);
}

/// A batch's stored keys in one buffer, with their tier 0 hashes.
pub(super) struct StoredKeys {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    pub hashes: Vec<u64>,
}

impl StoredKeys {
    pub(super) fn new(
        key_groups: &[KeyGroup],
        keys: &[&[u8]],
        hash: impl Fn(&[u8]) -> u64,
    ) -> StoredKeys {
        let total: usize = keys.iter().map(|k| k.len() + 2).sum();
        let mut out = StoredKeys {
            bytes: Vec::with_capacity(total),
            ends: Vec::with_capacity(keys.len()),
            hashes: Vec::with_capacity(keys.len()),
        };
        for (&kg, key) in key_groups.iter().zip(keys) {
            let start = out.bytes.len();
            push_composite(&mut out.bytes, kg, key);
            out.hashes.push(hash(&out.bytes[start..]));
            out.ends.push(out.bytes.len());
        }
        out
    }

    pub(super) fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}
