//! Restart strategies: whether a failed job restarts, and after how long (Flink's
//! `restart-strategy.*`, with its defaults).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use kernel::config::RestartStrategy;

/// The failures a job has had, as its strategy counts them.
pub(crate) struct Restarts {
    strategy: RestartStrategy,
    /// Restarts so far (fixed delay), or in the current backoff sequence (exponential).
    attempts: u32,
    /// The last backoff (exponential delay).
    backoff: Option<Duration>,
    /// When the job last (re)started (exponential delay resets after a long healthy run).
    started: Instant,
    /// Failure times within the interval (failure rate).
    failures: VecDeque<Instant>,
    /// Varies the jitter from one restart to the next without a random-number crate.
    seed: u64,
}

impl Restarts {
    pub fn new(strategy: RestartStrategy) -> Self {
        Restarts {
            strategy,
            attempts: 0,
            backoff: None,
            started: Instant::now(),
            failures: VecDeque::new(),
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The job has failed now: `Some(delay)` to restart after, `None` to give up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let delay = match self.strategy.clone() {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                (self.attempts < attempts).then_some(delay)
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                self.failures.push_back(now);
                while self
                    .failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > interval)
                {
                    self.failures.pop_front();
                }
                (self.failures.len() as u32 <= max_failures).then_some(delay)
            }
            RestartStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                reset_threshold,
                jitter,
                attempts,
            } => {
                if now.duration_since(self.started) >= reset_threshold {
                    self.backoff = None;
                    self.attempts = 0;
                }
                if self.attempts >= attempts {
                    return None;
                }
                let base = match self.backoff {
                    None => initial_backoff,
                    Some(b) => b.mul_f64(multiplier).min(max_backoff),
                };
                self.backoff = Some(base);
                // A jitter of ±`jitter` of the backoff spreads restarts of many jobs.
                self.seed ^= self.seed << 13;
                self.seed ^= self.seed >> 7;
                self.seed ^= self.seed << 17;
                let unit = (self.seed % 2001) as f64 / 1000.0 - 1.0;
                Some(
                    base.mul_f64((1.0 + jitter * unit).max(0.0))
                        .min(max_backoff),
                )
            }
        };
        if delay.is_some() {
            self.attempts += 1;
        }
        delay
    }

    /// The job has restarted.
    pub fn restarted(&mut self) {
        self.started = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_delay_gives_up_after_its_attempts() {
        let mut r = Restarts::new(RestartStrategy::FixedDelay {
            attempts: 2,
            delay: Duration::from_millis(5),
        });
        assert_eq!(r.next_delay(), Some(Duration::from_millis(5)));
        assert_eq!(r.next_delay(), Some(Duration::from_millis(5)));
        assert_eq!(r.next_delay(), None);
        assert_eq!(Restarts::new(RestartStrategy::None).next_delay(), None);
    }

    #[test]
    fn exponential_delay_grows_to_its_cap_within_the_jitter() {
        let mut r = Restarts::new(RestartStrategy::ExponentialDelay {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            multiplier: 2.0,
            reset_threshold: Duration::from_secs(3600),
            jitter: 0.1,
            attempts: u32::MAX,
        });
        let bases = [100.0, 200.0, 400.0, 400.0];
        for base in bases {
            let d = r.next_delay().unwrap().as_secs_f64() * 1000.0;
            assert!(
                d >= base * 0.9 - 0.001 && d <= (base * 1.1).min(400.0) + 0.001,
                "{d} vs {base}"
            );
        }
    }

    #[test]
    fn failure_rate_counts_failures_within_the_interval() {
        let mut r = Restarts::new(RestartStrategy::FailureRate {
            max_failures: 2,
            interval: Duration::from_secs(60),
            delay: Duration::ZERO,
        });
        assert!(r.next_delay().is_some());
        assert!(r.next_delay().is_some());
        assert!(r.next_delay().is_none());
    }
}
