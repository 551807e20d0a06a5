//! The generator's random numbers: splitmix64, seeded per event.
//!
//! Seeding per event id (as Beam does, rather than one stream per split as Flink does) makes an
//! event depend only on `(seed, event id)`, so the same events come out whatever the number of
//! splits, the batch size, or which columns are projected.

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in `[0, bound)` from 32 random bits (Lemire's multiply-shift; bias below 2^-32).
#[inline]
pub(crate) fn bounded32(bits: u32, bound: u32) -> u32 {
    ((bits as u64 * bound as u64) >> 32) as u32
}

/// Uniform in `[0, bound)` from 64 random bits.
#[inline]
pub(crate) fn bounded64(bits: u64, bound: u64) -> u64 {
    ((bits as u128 * bound as u128) >> 64) as u64
}

/// Uniform in `[0, 1)` from 64 random bits.
#[inline]
pub(crate) fn unit_f64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Draws reserved for each event. The events share one splitmix64 sequence, each owning a
/// block of this many consecutive positions; the most an event uses is about 250 (an auction's
/// description), so streams never overlap.
const DRAWS_PER_EVENT: u64 = 1024;

/// The stream of one event: its state, and random access to its draws. splitmix64 advances
/// its state by a constant, so draw `k` is computed directly, which lets the columnar bid path
/// give each field a fixed draw and pick between alternatives without branches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventStream(u64);

impl EventStream {
    #[inline]
    pub fn new(seed: u64, event_id: u64) -> Self {
        let base = mix64(seed ^ 0x510e_527f_ade6_82d1);
        EventStream(base.wrapping_add(event_id.wrapping_mul(DRAWS_PER_EVENT.wrapping_mul(GAMMA))))
    }

    /// Draw `k` (0-based): the value the `k + 1`-th `Rng::next_u64` of this event returns.
    #[inline]
    pub fn draw(self, k: u64) -> u64 {
        mix64(self.0.wrapping_add((k + 1).wrapping_mul(GAMMA)))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(mix64(seed ^ 0x6a09_e667_f3bc_c909))
    }

    /// The stream for one event, drawn in order.
    #[inline]
    pub fn for_event(seed: u64, event_id: u64) -> Self {
        Rng(EventStream::new(seed, event_id).0)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix64(self.0)
    }

    /// Uniform in `[0, bound)`, `bound > 0`.
    #[inline]
    pub fn next_int(&mut self, bound: u32) -> u32 {
        bounded32((self.next_u64() >> 32) as u32, bound)
    }

    /// Uniform in `[0, bound)`, `bound > 0`.
    #[inline]
    pub fn next_long(&mut self, bound: u64) -> u64 {
        bounded64(self.next_u64(), bound)
    }

    /// A signed 32-bit value, as Java's `nextInt()`.
    #[inline]
    pub fn next_i32(&mut self) -> i32 {
        (self.next_u64() >> 32) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_draws_stay_in_range_and_cover_it() {
        let mut r = Rng::new(7);
        let mut seen = [0u32; 13];
        for _ in 0..13_000 {
            let v = r.next_int(13);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        for _ in 0..1000 {
            assert!(r.next_long(3) < 3);
            let d = unit_f64(r.next_u64());
            assert!((0.0..1.0).contains(&d));
        }
    }

    #[test]
    fn event_streams_depend_only_on_seed_and_id() {
        let a = Rng::for_event(1, 42).next_u64();
        assert_eq!(a, Rng::for_event(1, 42).next_u64());
        assert_ne!(a, Rng::for_event(2, 42).next_u64());
        assert_ne!(a, Rng::for_event(1, 43).next_u64());
        let mut r = Rng::for_event(1, 42);
        let stream = EventStream::new(1, 42);
        for k in 0..5 {
            assert_eq!(
                r.next_u64(),
                stream.draw(k),
                "random access matches stepping"
            );
        }
    }
}
