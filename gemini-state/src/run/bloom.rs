//! A bloom filter per run file: a point read skips files that cannot hold its key.
//!
//! The filter is blocked: a key's probes all fall in one 64-byte line, picked by the high
//! half of its hash, so a lookup costs one cache miss per file instead of one per probe (a
//! read past tier 0 asks every file, and their filters are far larger than the caches).
//! Ten bits per key and seven probes give a little over 1% false positives, against about
//! 0.8% for probes spread over the whole filter.

use super::format::stable_hash;

const BITS_PER_KEY: usize = 10;
const PROBES: u32 = 7;
/// Written after the lines, in place of a probe count: marks the blocked layout, so a file
/// of the earlier, unblocked one is refused instead of misread.
const LAYOUT: u8 = 0x80 | PROBES as u8;
const LINE_BYTES: usize = 64;

/// One cache line of filter bits.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Line([u64; 8]);

/// The line of `hash` among `lines`, then its probes as bit positions in the line: the
/// line from the high 32 bits (a multiply-shift range reduction), the probes from nine-bit
/// slices of a remix of the whole hash.
fn probes(hash: u64, lines: usize) -> (usize, impl Iterator<Item = u32>) {
    let line = (((hash >> 32) * lines as u64) >> 32) as usize;
    let bits = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (
        line,
        (0..PROBES).map(move |p| ((bits >> (p * 9)) & 511) as u32),
    )
}

/// Collects key hashes while a run is written, then lays out the filter.
#[derive(Debug, Default)]
pub(crate) struct BloomBuilder {
    hashes: Vec<u64>,
}

impl BloomBuilder {
    pub(crate) fn add(&mut self, key: &[u8]) {
        self.hashes.push(stable_hash(key));
    }

    /// The filter's bytes: the lines (little-endian words), then the layout byte.
    pub(crate) fn finish(&self) -> Vec<u8> {
        let count = (self.hashes.len() * BITS_PER_KEY)
            .div_ceil(LINE_BYTES * 8)
            .max(1);
        let mut lines = vec![Line::default(); count];
        for &h in &self.hashes {
            let (line, bits) = probes(h, count);
            for bit in bits {
                lines[line].0[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        let mut out = Vec::with_capacity(count * LINE_BYTES + 1);
        for word in lines.iter().flat_map(|l| l.0) {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.push(LAYOUT);
        out
    }
}

/// A filter read back from a file.
#[derive(Debug, Clone)]
pub(crate) struct Bloom {
    lines: Vec<Line>,
}

impl Bloom {
    /// `None` if the bytes are not a filter this version wrote.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Bloom> {
        let (&layout, body) = bytes.split_last()?;
        if layout != LAYOUT || body.is_empty() || !body.len().is_multiple_of(LINE_BYTES) {
            return None;
        }
        let lines = body
            .chunks_exact(LINE_BYTES)
            .map(|line| {
                let mut words = [0u64; 8];
                for (w, b) in words.iter_mut().zip(line.chunks_exact(8)) {
                    *w = u64::from_le_bytes(b.try_into().expect("eight bytes"));
                }
                Line(words)
            })
            .collect();
        Some(Bloom { lines })
    }

    /// False only if `key` is certainly absent.
    #[cfg(test)]
    fn may_contain(&self, key: &[u8]) -> bool {
        self.may_contain_hash(stable_hash(key))
    }

    pub(crate) fn may_contain_hash(&self, hash: u64) -> bool {
        let (line, mut bits) = probes(hash, self.lines.len());
        let words = &self.lines[line].0;
        bits.all(|bit| words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
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
        let bloom = Bloom::from_bytes(&b.finish()).unwrap();
        assert!((0..10_000u32).all(|i| bloom.may_contain(&i.to_be_bytes())));
        let false_hits = (10_000..110_000u32)
            .filter(|i| bloom.may_contain(&i.to_be_bytes()))
            .count();
        assert!(false_hits < 2_000, "{false_hits} false positives in 100000");
    }

    #[test]
    fn a_filter_of_another_layout_is_refused() {
        let mut b = BloomBuilder::default();
        b.add(b"k");
        let mut bytes = b.finish();
        assert!(Bloom::from_bytes(&bytes).is_some());
        *bytes.last_mut().unwrap() = PROBES as u8;
        assert!(Bloom::from_bytes(&bytes).is_none());
        assert!(Bloom::from_bytes(&bytes[..10]).is_none());
    }
}
