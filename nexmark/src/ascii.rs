//! String columns copied out of ASCII arenas in fixed-size blocks.
//!
//! The generator's strings are substrings of tables made once per seed (the padding pool,
//! channel names, URLs). Copying each with `memcpy` of its exact length costs a call and a
//! length-dependent branch tree per value; copying a constant-size block and then trimming the
//! column back compiles to a few vector moves. The arenas carry [`SLACK`] bytes after their
//! last string so every block read stays in bounds.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};

use crate::tables::{Span, StringTable};

/// The largest block copied at once; longer strings take the exact-length path.
pub(crate) const SLACK: usize = 128;

/// ASCII bytes holding many strings, padded with [`SLACK`] bytes.
#[derive(Debug)]
pub(crate) struct AsciiArena {
    bytes: Vec<u8>,
    len: usize,
}

impl AsciiArena {
    /// Panics if `bytes` is not ASCII: every column built from the arena relies on it.
    pub fn new(mut bytes: Vec<u8>) -> Self {
        assert!(bytes.is_ascii(), "generator tables are ASCII");
        let len = bytes.len();
        bytes.resize(len + SLACK, b' ');
        AsciiArena { bytes, len }
    }

    /// Length without the padding.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn str(&self, start: usize, len: usize) -> &str {
        std::str::from_utf8(&self.bytes[start..start + len]).expect("ASCII")
    }
}

/// A `Utf8` column under construction whose values all come from [`AsciiArena`]s.
pub(crate) struct AsciiColumn {
    offsets: Vec<i32>,
    values: Vec<u8>,
}

impl AsciiColumn {
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        AsciiColumn {
            offsets,
            values: Vec::with_capacity(bytes + SLACK),
        }
    }

    /// Appends `arena[start..start + len]`, copying a `BLOCK`-byte block when it fits.
    #[inline]
    pub fn push<const BLOCK: usize>(&mut self, arena: &AsciiArena, start: usize, len: usize) {
        let at = self.values.len();
        match arena.bytes.get(start..start + BLOCK) {
            Some(block) if len <= BLOCK => {
                let block: &[u8; BLOCK] = block.try_into().expect("BLOCK bytes");
                self.values.extend_from_slice(block);
                self.values.truncate(at + len);
            }
            _ => self
                .values
                .extend_from_slice(&arena.bytes[start..start + len]),
        }
        self.offsets.push(self.values.len() as i32);
    }

    /// Appends `table`'s string at each index.
    pub fn extend_from_table(&mut self, table: &StringTable, indices: &[u32]) {
        self.extend_with(&table.arena, table.max_len, indices, |i| table.span(i));
    }

    /// Appends the arena's span for each item. Blocks are sized to the longest span
    /// (`max_len`), rounded up: copying 128 bytes for a 12-byte name would waste the moves.
    pub fn extend_with<T: Copy>(
        &mut self,
        arena: &AsciiArena,
        max_len: usize,
        items: &[T],
        span: impl Fn(T) -> Span,
    ) {
        fn run<const BLOCK: usize, T: Copy>(
            col: &mut AsciiColumn,
            arena: &AsciiArena,
            items: &[T],
            span: impl Fn(T) -> Span,
        ) {
            for &item in items {
                let Span { start, len } = span(item);
                col.push::<BLOCK>(arena, start as usize, len as usize);
            }
        }
        match max_len {
            0..=16 => run::<16, T>(self, arena, items, span),
            17..=32 => run::<32, T>(self, arena, items, span),
            33..=64 => run::<64, T>(self, arena, items, span),
            65..=96 => run::<96, T>(self, arena, items, span),
            _ => run::<128, T>(self, arena, items, span),
        }
    }

    pub fn finish(self, nulls: Option<NullBuffer>) -> ArrayRef {
        assert!(
            i32::try_from(self.values.len()).is_ok(),
            "batch size is validated to keep string columns under 2 GiB"
        );
        let offsets = ScalarBuffer::from(self.offsets);
        let values = Buffer::from_vec(self.values);
        // SAFETY: the offsets start at 0, never decrease (each is the values' length after a
        // push) and end at the values' length; every byte was copied from an `AsciiArena`,
        // which holds ASCII only, and any slicing of ASCII is valid UTF-8. So the passes over
        // offsets and bytes that `StringArray::new` would make (a sizeable share of generation
        // time) can be skipped.
        #[allow(unsafe_code)]
        let array = unsafe {
            StringArray::new_unchecked(OffsetBuffer::new_unchecked(offsets), values, nulls)
        };
        Arc::new(array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    #[test]
    fn blocks_and_long_strings_come_out_exact() {
        let text: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
        let arena = AsciiArena::new(text.clone());
        let mut col = AsciiColumn::with_capacity(4, 16);
        col.push::<16>(&arena, 3, 5);
        col.push::<16>(&arena, 7, 0);
        col.push::<16>(&arena, 250, 40); // longer than the block
        col.push::<16>(&arena, 290, 10); // block would run into the padding: still exact
        let a = col.finish(None);
        let s = a.as_string::<i32>();
        assert_eq!(s.value(0), "defgh");
        assert_eq!(s.value(1), "");
        assert_eq!(s.value(2).as_bytes(), &text[250..290]);
        assert_eq!(s.value(3).as_bytes(), &text[290..300]);
        assert_eq!(s.len(), 4);
        assert_eq!(arena.str(3, 2), "de");
    }
}
