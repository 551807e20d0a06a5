//! Values the generator draws from, made once per seed: the padding text, and the channel
//! names and URLs of bids.

use crate::ascii::AsciiArena;
use crate::model::{push_string, CHANNELS_NUMBER, HOT_CHANNELS};
use crate::rng::{bounded32, Rng};

/// Size of the padding pool. Flink's is 1 MiB; 32 KiB gives the same random substrings
/// (`extra` is at most a few hundred bytes) and stays in the CPU's near caches.
const EXTRA_LEN: usize = 32 << 10;

/// The index of the empty entry of the channel and URL tables, for rows without a bid.
pub(crate) const NO_CHANNEL: u32 = CHANNELS_NUMBER + HOT_CHANNELS.len() as u32;

/// Where one string lies in its arena.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub start: u32,
    pub len: u32,
}

/// Strings laid end to end in one arena, addressed by index.
#[derive(Debug)]
pub(crate) struct StringTable {
    pub arena: AsciiArena,
    pub spans: Vec<Span>,
    /// Length of the longest string.
    pub max_len: usize,
}

impl StringTable {
    #[inline]
    pub fn span(&self, index: u32) -> Span {
        self.spans[index as usize]
    }

    fn new<S: AsRef<str>>(strings: impl IntoIterator<Item = S>) -> Self {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for s in strings {
            let s = s.as_ref().as_bytes();
            spans.push(Span {
                start: bytes.len() as u32,
                len: s.len() as u32,
            });
            bytes.extend_from_slice(s);
        }
        let max_len = spans.iter().map(|s| s.len as usize).max().unwrap_or(0);
        StringTable {
            arena: AsciiArena::new(bytes),
            spans,
            max_len,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Tables {
    /// Source of `extra` padding: substrings at random offsets, as Flink's
    /// `REUSABLE_EXTRA_STRING` (characters 'a' + rnd % 26 with a signed rnd: ASCII 72..=122).
    pub pool: AsciiArena,
    /// Bid channels: `channel-<i>` for i < CHANNELS_NUMBER, then the hot channels, then the
    /// empty string at [`NO_CHANNEL`].
    pub channels: StringTable,
    /// The URL of each entry of `channels`.
    pub urls: StringTable,
}

fn base_url(rng: &mut Rng) -> String {
    let mut s = String::from("https://www.nexmark.com/");
    for _ in 0..3 {
        push_string(rng, 5, b'_', &mut s);
        s.push('/');
    }
    s.push_str("item.htm?query=1");
    s
}

impl Tables {
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x007a_b1e5);
        let pool: Vec<u8> = (0..EXTRA_LEN)
            .map(|_| (b'a' as i32 + rng.next_i32() % 26) as u8)
            .collect();
        let hot_urls: Vec<String> = (0..HOT_CHANNELS.len())
            .map(|_| base_url(&mut rng))
            .collect();
        let mut names = Vec::new();
        let mut urls = Vec::new();
        for i in 0..CHANNELS_NUMBER {
            let mut url = base_url(&mut rng);
            if rng.next_int(10) > 0 {
                // Java: Math.abs(Integer.reverse(i)), which stays negative for MIN_VALUE.
                url.push_str(&format!(
                    "&channel_id={}",
                    (i as i32).reverse_bits().wrapping_abs()
                ));
            }
            names.push(format!("channel-{i}"));
            urls.push(url);
        }
        names.extend(HOT_CHANNELS.iter().map(|s| s.to_string()));
        urls.extend(hot_urls);
        names.push(String::new());
        urls.push(String::new());
        Tables {
            pool: AsciiArena::new(pool),
            channels: StringTable::new(names),
            urls: StringTable::new(urls),
        }
    }

    /// Length of the padding pool.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Where `len` bytes of padding lie in the pool (at most all of it), placed by 32 random
    /// bits.
    #[inline]
    pub fn extra_span(&self, len: usize, bits: u32) -> Span {
        let len = len.min(self.pool_len());
        Span {
            start: bounded32(bits, (self.pool_len() - len) as u32),
            len: len as u32,
        }
    }

    /// `len` bytes of padding at a random offset.
    #[inline]
    pub fn extra(&self, rng: &mut Rng, len: usize) -> &str {
        let span = self.extra_span(len, (rng.next_u64() >> 32) as u32);
        self.pool.str(span.start as usize, span.len as usize)
    }
}
