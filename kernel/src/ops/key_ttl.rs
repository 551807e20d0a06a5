//! `table.exec.state.ttl` for operators that keep per-key state in operator memory
//! (GroupAggregate, Rank, OverAggregate): a key's state expires once it has not been written
//! for the TTL, by processing time, as Flink's state TTL (update on create and write, never
//! return expired). A key a batch touches is checked before the batch reads its state, so an
//! expired state is never read; all keys are swept at most every hundredth of the TTL, which
//! frees the state of keys no batch touches again.

use crate::types::wall_clock_ms;

/// `, state TTL N ms` for an operator's description, or nothing without a TTL.
pub(crate) fn describe_ttl(ttl_ms: Option<i64>) -> String {
    ttl_ms.map_or(String::new(), |t| format!(", state TTL {t} ms"))
}

/// When a whole-state sweep for expired entries is due: at most every hundredth of the TTL,
/// so that sweeping costs about 1 % over the entries' lifetime.
pub(crate) struct TtlSweep {
    every: i64,
    last: i64,
}

impl TtlSweep {
    pub fn new(ttl_ms: i64) -> TtlSweep {
        TtlSweep {
            every: (ttl_ms / 100).max(1),
            last: i64::MIN,
        }
    }

    /// Whether a sweep is due at `now`; if so, it counts as done.
    pub fn due(&mut self, now: i64) -> bool {
        if now.saturating_sub(self.last) < self.every {
            return false;
        }
        self.last = now;
        true
    }
}

/// When each key's state was last written.
pub(crate) struct KeyTtl {
    ttl_ms: i64,
    /// Per key; `NONE` when it holds no state (never written, or cleared).
    written: Vec<i64>,
    now: i64,
    sweep: TtlSweep,
}

const NONE: i64 = i64::MAX;

impl KeyTtl {
    pub fn new(ttl_ms: Option<i64>) -> Option<KeyTtl> {
        ttl_ms.map(|ttl_ms| KeyTtl {
            ttl_ms: ttl_ms.max(1),
            written: Vec::new(),
            now: 0,
            sweep: TtlSweep::new(ttl_ms),
        })
    }

    /// Reads the clock for a batch over `keys` keys; the keys whose state expired and that
    /// the batch may not touch, at most every hundredth of the TTL (their state is to be
    /// cleared now; each is reported once).
    pub fn start_batch(&mut self, keys: usize) -> Vec<usize> {
        self.now = wall_clock_ms();
        if self.written.len() < keys {
            self.written.resize(keys, NONE);
        }
        if !self.sweep.due(self.now) {
            return Vec::new();
        }
        let mut expired = Vec::new();
        for key in 0..self.written.len() {
            if self.is_expired(key) {
                self.written[key] = NONE;
                expired.push(key);
            }
        }
        expired
    }

    fn is_expired(&self, key: usize) -> bool {
        let w = self.written[key];
        w != NONE && w.saturating_add(self.ttl_ms) <= self.now
    }

    /// Whether `key`'s state has expired: the caller clears it before reading it. Reported
    /// once; the key then holds no state until written.
    pub fn expired(&mut self, key: usize) -> bool {
        let expired = self.is_expired(key);
        if expired {
            self.written[key] = NONE;
        }
        expired
    }

    /// `restored` of `keys` keys hold state a restore brought back: their TTL starts again
    /// now (a checkpoint does not keep when keys were written).
    pub fn restored(&mut self, keys: usize, restored: &[usize]) {
        self.start_batch(keys);
        for &key in restored {
            self.written(key);
        }
    }

    /// Marks `key`'s state written by this batch.
    pub fn written(&mut self, key: usize) {
        self.written[key] = self.now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_expires_once_after_the_ttl_and_not_before() {
        let mut long = KeyTtl::new(Some(3_600_000)).unwrap();
        assert!(long.start_batch(2).is_empty());
        long.written(0);
        assert!(!long.expired(0) && !long.expired(1));

        let mut short = KeyTtl::new(Some(5)).unwrap();
        short.start_batch(3);
        short.written(0);
        short.written(2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        // The sweep finds keys 0 and 2; key 1 never had state.
        assert_eq!(short.start_batch(3), vec![0, 2]);
        short.written(2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        short.now = wall_clock_ms();
        assert!(short.expired(2));
        assert!(!short.expired(2), "reported once");
        assert!(!short.expired(0) && !short.expired(1));
    }
}
