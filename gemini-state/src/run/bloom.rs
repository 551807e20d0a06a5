//! A bloom filter per run file: a point read skips files that cannot hold its key.
//!
//! Ten bits per key and seven probes give about 1% false positives. Probes are derived from
//! one 64-bit hash by double hashing, so a lookup hashes the key once.

use super::format::stable_hash;

const BITS_PER_KEY: usize = 10;
const PROBES: u32 = 7;

/// Collects key hashes while a run is written, then lays out the filter.
#[derive(Debug, Default)]
pub(crate) struct BloomBuilder {
    hashes: Vec<u64>,
}

impl BloomBuilder {
    pub(crate) fn add(&mut self, key: &[u8]) {
        self.hashes.push(stable_hash(key));
    }

    /// The filter's bytes: the bit array, then the probe count (one byte).
    pub(crate) fn finish(&self) -> Vec<u8> {
        let bytes = (self.hashes.len() * BITS_PER_KEY).div_ceil(8).max(8);
        let bits = (bytes * 8) as u64;
        let mut out = vec![0u8; bytes + 1];
        for &h in &self.hashes {
            for_each_probe(h, bits, |bit| out[(bit / 8) as usize] |= 1 << (bit % 8));
        }
        out[bytes] = PROBES as u8;
        out
    }
}

fn for_each_probe(hash: u64, bits: u64, mut f: impl FnMut(u64)) {
    let mut h = hash;
    let delta = hash.rotate_left(31) | 1;
    for _ in 0..PROBES {
        f(h % bits);
        h = h.wrapping_add(delta);
    }
}

/// A filter read back from a file.
#[derive(Debug, Clone)]
pub(crate) struct Bloom {
    bits: Vec<u8>,
}

impl Bloom {
    /// `None` if the bytes are not a filter this version wrote.
    pub(crate) fn from_bytes(mut bytes: Vec<u8>) -> Option<Bloom> {
        let probes = bytes.pop()?;
        (u32::from(probes) == PROBES && !bytes.is_empty()).then_some(Bloom { bits: bytes })
    }

    /// False only if `key` is certainly absent.
    #[cfg(test)]
    fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(stable_hash(key))
    }

    pub(crate) fn may_contain_hash(&self, hash: u64) -> bool {
        let bits = (self.bits.len() * 8) as u64;
        let mut all = true;
        for_each_probe(hash, bits, |bit| {
            all &= self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0
        });
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let mut b = BloomBuilder::default();
        for i in 0..10_000u32 {
            b.add(&i.to_be_bytes());
        }
        let bloom = Bloom::from_bytes(b.finish()).unwrap();
        assert!((0..10_000u32).all(|i| bloom.may_contain(&i.to_be_bytes())));
        let false_hits = (10_000..110_000u32)
            .filter(|i| bloom.may_contain(&i.to_be_bytes()))
            .count();
        assert!(false_hits < 2_000, "{false_hits} false positives in 100000");
    }
}
