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

#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(mix64(seed ^ 0x6a09_e667_f3bc_c909))
    }

    /// The stream for one event.
    #[inline]
    pub fn for_event(seed: u64, event_id: u64) -> Self {
        Rng(mix64(seed ^ mix64(event_id.wrapping_mul(GAMMA))))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix64(self.0)
    }

    /// Uniform in `[0, bound)`, `bound > 0` (Lemire's multiply-shift; bias below 2^-32).
    #[inline]
    pub fn next_int(&mut self, bound: u32) -> u32 {
        (((self.next_u64() >> 32) * bound as u64) >> 32) as u32
    }

    /// Uniform in `[0, bound)`, `bound > 0`.
    #[inline]
    pub fn next_long(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn next_double(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
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
            let d = r.next_double();
            assert!((0.0..1.0).contains(&d));
        }
    }

    #[test]
    fn event_streams_depend_only_on_seed_and_id() {
        let a = Rng::for_event(1, 42).next_u64();
        assert_eq!(a, Rng::for_event(1, 42).next_u64());
        assert_ne!(a, Rng::for_event(2, 42).next_u64());
        assert_ne!(a, Rng::for_event(1, 43).next_u64());
    }
}
