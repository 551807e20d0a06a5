//! Arena segments: append-only byte buffers holding tier 0's entries.
//!
//! Entry layout (32-byte header, then the key, then `capacity` value bytes):
//!
//! ```text
//! flags u8 | pad 7 | key_len u32 | value_len u32 | capacity u32 | gen u32 | written_at i64
//! ```
//!
//! A value that shrinks or grows within its capacity is rewritten in place.

/// Segments are this large unless one entry needs more.
pub(crate) const SEGMENT_BYTES: usize = 256 << 10;
pub(crate) const HEADER: usize = 32;

/// The key is deleted (a tombstone that hides older versions in run files).
pub(crate) const TOMBSTONE: u8 = 1;
/// Superseded or removed: the copy is garbage.
pub(crate) const DEAD: u8 = 2;
/// A version of the key may be in a run file (a delete must leave a tombstone).
pub(crate) const MAYBE_IN_RUNS: u8 = 4;

#[derive(Debug)]
pub(crate) struct Segment {
    pub data: Vec<u8>,
}

/// The decoded header of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub flags: u8,
    pub key_len: u32,
    pub value_len: u32,
    pub capacity: u32,
    pub gen: u32,
    pub written_at: i64,
}

impl Header {
    /// Bytes the entry takes in its segment.
    pub(crate) fn size(&self) -> usize {
        HEADER + self.key_len as usize + self.capacity as usize
    }
}

fn u32_at(d: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(d[i..i + 4].try_into().expect("4 bytes"))
}

impl Segment {
    pub(crate) fn with_capacity(bytes: usize) -> Segment {
        Segment {
            data: Vec::with_capacity(bytes),
        }
    }

    pub(crate) fn room(&self) -> usize {
        self.data.capacity() - self.data.len()
    }

    pub(crate) fn header(&self, at: usize) -> Header {
        let d = &self.data[at..at + HEADER];
        Header {
            flags: d[0],
            key_len: u32_at(d, 8),
            value_len: u32_at(d, 12),
            capacity: u32_at(d, 16),
            gen: u32_at(d, 20),
            written_at: i64::from_le_bytes(d[24..32].try_into().expect("8 bytes")),
        }
    }

    pub(crate) fn key(&self, at: usize) -> &[u8] {
        let key_len = u32_at(&self.data, at + 8) as usize;
        &self.data[at + HEADER..at + HEADER + key_len]
    }

    pub(crate) fn value(&self, at: usize, h: &Header) -> &[u8] {
        let start = at + HEADER + h.key_len as usize;
        &self.data[start..start + h.value_len as usize]
    }

    /// Appends an entry; the caller checked `room()`. Returns its offset.
    pub(crate) fn append(&mut self, h: &Header, key: &[u8], value: &[u8]) -> usize {
        let at = self.data.len();
        self.data.push(h.flags);
        self.data.extend_from_slice(&[0; 7]);
        self.data.extend_from_slice(&h.key_len.to_le_bytes());
        self.data.extend_from_slice(&h.value_len.to_le_bytes());
        self.data.extend_from_slice(&h.capacity.to_le_bytes());
        self.data.extend_from_slice(&h.gen.to_le_bytes());
        self.data.extend_from_slice(&h.written_at.to_le_bytes());
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.data
            .resize(at + HEADER + key.len() + h.capacity as usize, 0);
        at
    }

    /// Rewrites the entry at `at` in place: flags, value (within capacity), gen, time.
    pub(crate) fn overwrite(&mut self, at: usize, flags: u8, value: &[u8], gen: u32, time: i64) {
        let key_len = u32_at(&self.data, at + 8) as usize;
        let d = &mut self.data;
        d[at] = flags;
        d[at + 12..at + 16].copy_from_slice(&(value.len() as u32).to_le_bytes());
        d[at + 20..at + 24].copy_from_slice(&gen.to_le_bytes());
        d[at + 24..at + 32].copy_from_slice(&time.to_le_bytes());
        let start = at + HEADER + key_len;
        d[start..start + value.len()].copy_from_slice(value);
    }

    pub(crate) fn set_flags(&mut self, at: usize, flags: u8) {
        self.data[at] = flags;
    }

    /// Offsets of every entry, in append order.
    pub(crate) fn offsets(&self) -> impl Iterator<Item = usize> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= self.data.len() {
                return None;
            }
            let here = at;
            at += self.header(here).size();
            Some(here)
        })
    }
}

/// The capacity to reserve for a value of `len` bytes: a little slack for values that grow
/// (counters, strings), none for small fixed-size values.
pub(crate) fn capacity_for(len: usize) -> usize {
    if len <= 16 {
        len
    } else {
        len + len / 8
    }
}
