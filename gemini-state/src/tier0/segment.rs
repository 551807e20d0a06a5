//! Arena segments: append-only byte buffers holding tier 0's entries.
//!
//! Entry layout (32-byte header, then the key, then `capacity` value bytes):
//!
//! ```text
//! flags u8 | pad 7 | key_len u32 | value_len u32 | capacity u32 | gen u32 | written_at i64
//! ```
//!
//! A value that shrinks or grows within its capacity is rewritten in place.
//!
//! An entry that would straddle one cache line more than its size needs starts at the next
//! line instead when that wastes at most an eighth of it: a read or update then misses on
//! two lines rather than three (entries of one size settle into line-aligned strides). The
//! skipped bytes start with the `FILLER` flag byte.

use std::sync::Arc;

/// Segments are this large unless one entry needs more.
pub(crate) const SEGMENT_BYTES: usize = 256 << 10;
pub(crate) const HEADER: usize = 32;

/// The key is deleted (a tombstone that hides older versions in run files).
pub(crate) const TOMBSTONE: u8 = 1;
/// Superseded or removed: the copy is garbage.
pub(crate) const DEAD: u8 = 2;
/// A version of the key may be in a run file (a delete must leave a tombstone).
pub(crate) const MAYBE_IN_RUNS: u8 = 4;
/// Not an entry: padding up to the next cache line.
const FILLER: u8 = 0x80;

const LINE: usize = 64;
/// The most padding that goes before an entry.
pub(crate) const MAX_PADDING: usize = LINE - 1;

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

    /// A placeholder that holds no memory.
    fn empty() -> Segment {
        Segment { data: Vec::new() }
    }

    /// Whether an entry of `size` bytes (header included) fits, with any padding before it.
    pub(crate) fn fits(&self, size: usize) -> bool {
        let at = self.data.len();
        at + self.padding_before(at, size) + size <= self.data.capacity()
    }

    /// Bytes to skip before an entry of `size` bytes appended at `at`.
    fn padding_before(&self, at: usize, size: usize) -> usize {
        let into_line = self.line_offset(at);
        if into_line == 0 {
            return 0;
        }
        let pad = LINE - into_line;
        let spans = (into_line + size).div_ceil(LINE);
        if spans > size.div_ceil(LINE) && pad * 8 <= size {
            pad
        } else {
            0
        }
    }

    /// Where byte `at` falls within its cache line (the buffer never moves: appends stay
    /// within its capacity).
    fn line_offset(&self, at: usize) -> usize {
        (self.data.as_ptr() as usize + at) % LINE
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

    /// Appends an entry; the caller checked `fits()`. Returns its offset.
    pub(crate) fn append(&mut self, h: &Header, key: &[u8], value: &[u8]) -> usize {
        let capacity = self.data.capacity();
        let mut at = self.data.len();
        let pad = self.padding_before(at, h.size());
        if pad > 0 {
            self.data.push(FILLER);
            self.data.resize(at + pad, 0);
            at += pad;
        }
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
        debug_assert_eq!(
            self.data.capacity(),
            capacity,
            "a segment never reallocates"
        );
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
        std::iter::from_fn(move || loop {
            if at >= self.data.len() {
                return None;
            }
            if self.data[at] == FILLER {
                at += LINE - self.line_offset(at);
                continue;
            }
            let here = at;
            at += self.header(here).size();
            return Some(here);
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

/// A segment as tier 0 holds it: its own, written in place, or shared with a snapshot
/// writer and read-only until the writer lets go. Owning it outright (rather than always
/// through an `Arc`) keeps writes free of atomic operations: `Arc::get_mut` is a locked
/// compare-exchange, a full fence that makes each update wait for the previous one's
/// stores to reach memory.
#[derive(Debug)]
pub(crate) enum Held {
    Own(Segment),
    Shared(Arc<Segment>),
}

impl Held {
    pub(crate) fn get(&self) -> &Segment {
        match self {
            Held::Own(s) => s,
            Held::Shared(s) => s,
        }
    }

    /// The segment to write, if nobody else reads it: an owned one, or a shared one the
    /// writer has let go of (then owned again).
    pub(crate) fn get_mut(&mut self) -> Option<&mut Segment> {
        if let Held::Shared(arc) = self {
            let seg = std::mem::replace(Arc::get_mut(arc)?, Segment::empty());
            *self = Held::Own(seg);
        }
        match self {
            Held::Own(s) => Some(s),
            Held::Shared(_) => None,
        }
    }

    /// A reference for a snapshot writer; the segment stays unchanged while it is held.
    pub(crate) fn share(&mut self) -> Arc<Segment> {
        if let Held::Own(seg) = self {
            *self = Held::Shared(Arc::new(std::mem::replace(seg, Segment::empty())));
        }
        match self {
            Held::Shared(arc) => Arc::clone(arc),
            Held::Own(_) => unreachable!("shared above"),
        }
    }

    /// The segment itself, unless a snapshot writer still reads it.
    pub(crate) fn into_owned(self) -> Result<Segment, Held> {
        match self {
            Held::Own(seg) => Ok(seg),
            Held::Shared(arc) => Arc::try_unwrap(arc).map_err(Held::Shared),
        }
    }
}
