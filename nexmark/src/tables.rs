//! Values the generator draws from, made once per seed: the padding text, the hot URLs and the
//! channel table.

use crate::model::{push_string, CHANNELS_NUMBER};
use crate::rng::Rng;

/// Size of the padding pool. Flink's is 1 MiB; 32 KiB gives the same random substrings
/// (`extra` is at most a few hundred bytes) and stays in the CPU's near caches.
const EXTRA_LEN: usize = 32 << 10;

#[derive(Debug)]
pub(crate) struct Tables {
    /// Source of `extra` padding: substrings at random offsets, as Flink's
    /// `REUSABLE_EXTRA_STRING` (characters 'a' + rnd % 26 with a signed rnd: ASCII 72..=122,
    /// so every offset is a character boundary).
    pub extra: String,
    pub hot_urls: [String; 4],
    /// `channel-<i>` and its URL, for the non-hot channels.
    pub channels: Vec<(String, String)>,
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
        let extra: String = (0..EXTRA_LEN)
            .map(|_| (b'a' as i32 + rng.next_i32() % 26) as u8 as char)
            .collect();
        let hot_urls = std::array::from_fn(|_| base_url(&mut rng));
        let channels = (0..CHANNELS_NUMBER)
            .map(|i| {
                let mut url = base_url(&mut rng);
                if rng.next_int(10) > 0 {
                    // Java: Math.abs(Integer.reverse(i)), which stays negative for MIN_VALUE.
                    url.push_str(&format!(
                        "&channel_id={}",
                        (i as i32).reverse_bits().wrapping_abs()
                    ));
                }
                (format!("channel-{i}"), url)
            })
            .collect();
        Tables {
            extra,
            hot_urls,
            channels,
        }
    }

    /// `len` bytes of padding at a random offset.
    #[inline]
    pub fn extra(&self, rng: &mut Rng, len: usize) -> &str {
        let len = len.min(self.extra.len());
        let start = rng.next_int((self.extra.len() - len) as u32) as usize;
        &self.extra[start..start + len]
    }
}
