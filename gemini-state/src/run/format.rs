//! The on-disk layout of a run file, shared by its writer and reader.
//!
//! ```text
//! [block 0][crc32] [block 1][crc32] … [bloom][crc32] [index][crc32] [footer, 72 bytes]
//! ```
//!
//! A block holds entries sorted by composite key (big-endian key group, then the user key),
//! prefix-compressed against the previous key, with a full key every `RESTART_INTERVAL`
//! entries and the restart offsets at the block's end. The index lists, per block, its last
//! key, offset and length. The footer locates the index and the bloom filter and says what a
//! reader may skip without opening a block: the key-group range, the newest write time (for
//! TTL, the file's max expiry is that plus the TTL), entry and tombstone counts.

use crate::{StateError, StateResult};

/// Blocks are cut once they pass this size. Keyed state is read mostly by point lookups
/// of random keys, each of which reads, checks and decodes a whole block: with 64 KiB blocks
/// YCSB over 10× the memory budget ran at 0.11 M ops/s, with 16 KiB at 0.26 M, with 4 KiB
/// (RocksDB's and Flink's default) at 0.35 M (BENCHMARKS.md). Scans read on, block by block.
pub(crate) const BLOCK_SIZE: usize = 4 * 1024;
/// A full key every this many entries inside a block, so a point read can binary-search.
pub(crate) const RESTART_INTERVAL: usize = 16;
pub(crate) const MAGIC: u64 = 0x6564_6479_5255_4e31; // "eddyRUN1"
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const FOOTER_LEN: usize = 72;

/// What an entry says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Put = 0,
    /// The key is deleted; older runs' values for it are hidden.
    Delete = 1,
    /// A put whose value lives in a blob file: the entry's value is a `BlobRef`.
    Blob = 2,
}

impl Kind {
    pub(crate) fn from_byte(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Put),
            1 => Some(Kind::Delete),
            2 => Some(Kind::Blob),
            _ => None,
        }
    }

    /// Whether the entry holds a value (in place or in a blob file).
    pub(crate) fn is_put(self) -> bool {
        self != Kind::Delete
    }
}

/// One stored version of a key, borrowed from wherever it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored<'a> {
    pub kind: Kind,
    /// The table time of the write, for TTL.
    pub written_at: i64,
    pub value: &'a [u8],
}

/// Where the index and filter are and what the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    pub index_offset: u64,
    pub index_len: u32,
    pub bloom_offset: u64,
    pub bloom_len: u32,
    pub min_key_group: u16,
    pub max_key_group: u16,
    pub max_written_at: i64,
    pub entries: u64,
    pub tombstones: u64,
}

impl Footer {
    pub(crate) fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..8].copy_from_slice(&self.index_offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.index_len.to_le_bytes());
        b[12..20].copy_from_slice(&self.bloom_offset.to_le_bytes());
        b[20..24].copy_from_slice(&self.bloom_len.to_le_bytes());
        b[24..26].copy_from_slice(&self.min_key_group.to_le_bytes());
        b[26..28].copy_from_slice(&self.max_key_group.to_le_bytes());
        b[28..36].copy_from_slice(&self.max_written_at.to_le_bytes());
        b[36..44].copy_from_slice(&self.entries.to_le_bytes());
        b[44..52].copy_from_slice(&self.tombstones.to_le_bytes());
        b[52..56].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let crc = crc32fast::hash(&b[0..56]);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        // 60..64 reserved
        b[64..72].copy_from_slice(&MAGIC.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8], path: &std::path::Path) -> StateResult<Footer> {
        let corrupt = |what: &str| StateError::corrupt(path, what);
        if b.len() != FOOTER_LEN {
            return Err(corrupt("file is shorter than its footer"));
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u16_at = |i: usize| u16::from_le_bytes(b[i..i + 2].try_into().expect("2 bytes"));
        if u64_at(64) != MAGIC {
            return Err(corrupt(
                "footer magic is wrong (truncated or not a run file)",
            ));
        }
        if crc32fast::hash(&b[0..56]) != u32_at(56) {
            return Err(corrupt("footer checksum mismatch"));
        }
        if u32_at(52) != FORMAT_VERSION {
            return Err(corrupt("unknown run format version"));
        }
        Ok(Footer {
            index_offset: u64_at(0),
            index_len: u32_at(8),
            bloom_offset: u64_at(12),
            bloom_len: u32_at(20),
            min_key_group: u16_at(24),
            max_key_group: u16_at(26),
            max_written_at: u64_at(28) as i64,
            entries: u64_at(36),
            tombstones: u64_at(44),
        })
    }
}

/// Ends a file written under `tmp`: writes `footer`, syncs, and renames it to `path` (a crash
/// leaves at most the temporary file, which nothing names).
pub(crate) fn finish_file(
    mut out: std::io::BufWriter<std::fs::File>,
    footer: &[u8],
    tmp: &std::path::Path,
    path: &std::path::Path,
) -> StateResult<()> {
    use std::io::Write;
    out.write_all(footer).map_err(|e| StateError::io(tmp, e))?;
    let file = out
        .into_inner()
        .map_err(|e| StateError::io(tmp, e.into_error()))?;
    file.sync_all().map_err(|e| StateError::io(tmp, e))?;
    std::fs::rename(tmp, path).map_err(|e| StateError::io(path, e))
}

/// `bytes` without the checksum that ends them, if it matches; else an error naming `what`
/// at `offset` of the file at `path`.
pub(crate) fn verify<'a>(
    bytes: &'a [u8],
    path: &std::path::Path,
    offset: u64,
    what: &str,
) -> StateResult<&'a [u8]> {
    let (bytes, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    if crc32fast::hash(bytes) != crc {
        return Err(StateError::corrupt(
            path,
            &format!("checksum mismatch in the {what} at byte {offset}"),
        ));
    }
    Ok(bytes)
}

/// Reads the `len` bytes at `offset` of `file` (at `path`) and the checksum after them into
/// `buf`, checks them, and leaves `buf` holding the bytes alone.
pub(crate) fn read_checked(
    file: &std::fs::File,
    path: &std::path::Path,
    offset: u64,
    len: usize,
    what: &str,
    buf: &mut Vec<u8>,
) -> StateResult<()> {
    use std::os::unix::fs::FileExt;
    buf.resize(len + 4, 0);
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            cut_short(path, offset, what)
        } else {
            StateError::io(path, e)
        }
    })?;
    verify(buf, path, offset, what)?;
    buf.truncate(len);
    Ok(())
}

/// `what` at `offset` of the file at `path` ends before its length says.
pub(crate) fn cut_short(path: &std::path::Path, offset: u64, what: &str) -> StateError {
    StateError::corrupt(path, &format!("the {what} at byte {offset} is cut short"))
}

pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a varint at `*at`, moving past it; `None` if the bytes end first.
pub(crate) fn get_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// A stable 64-bit hash of `bytes` (bloom filters are persisted, so it must never change
/// with a library version): 8 bytes at a time, multiply-xorshift mixed.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (bytes.len() as u64).wrapping_mul(K) ^ 0x2545_f491_4f6c_dd1d;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(K);
        h ^= h >> 29;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_stop_at_the_end() {
        let mut buf = Vec::new();
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            buf.clear();
            put_varint(&mut buf, v);
            let mut at = 0;
            assert_eq!(get_varint(&buf, &mut at), Some(v));
            assert_eq!(at, buf.len());
            let mut at = 0;
            assert_eq!(get_varint(&buf[..buf.len() - 1], &mut at), None);
        }
    }

    #[test]
    fn footer_round_trips_and_detects_damage() {
        let f = Footer {
            index_offset: 1 << 40,
            index_len: 77,
            bloom_offset: 9,
            bloom_len: 12,
            min_key_group: 3,
            max_key_group: 4000,
            max_written_at: -5,
            entries: 1234,
            tombstones: 5,
        };
        let path = std::path::Path::new("x.run");
        let mut b = f.encode();
        assert_eq!(Footer::decode(&b, path).unwrap(), f);
        b[30] ^= 1;
        let err = Footer::decode(&b, path).unwrap_err().to_string();
        assert!(err.contains("x.run") && err.contains("checksum"), "{err}");
    }

    #[test]
    fn stable_hash_is_fixed() {
        // Persisted filters depend on these values never changing.
        assert_eq!(stable_hash(b""), 0x5468_38e7_8936_0f83);
        assert_eq!(stable_hash(b"eddy state key"), 0xaa4f_aac9_110d_670d);
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
        assert_ne!(stable_hash(b"12345678"), stable_hash(b"123456789"));
    }
}
