//! eddy's performance tooling: process metrics for benchmark reports, and the record one
//! benchmark run produces.

pub mod chart;
pub mod suite;
mod usage;

pub use usage::{process_usage, ProcessUsage};

use serde::{Deserialize, Serialize};

/// One `eddy nexmark run`, as printed with `--json` and collected by suite runners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub query: String,
    pub events: u64,
    pub parallelism: usize,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub events_per_s: f64,
    pub events_per_cpu_s: f64,
    pub sink_rows: u64,
    pub peak_rss_bytes: u64,
    /// Sum over stateful operator subtasks of their peak keyed-state bytes.
    #[serde(default)]
    pub peak_state_bytes: u64,
}

impl RunRecord {
    pub fn new(
        query: &str,
        events: u64,
        parallelism: usize,
        wall_s: f64,
        cpu_s: f64,
        sink_rows: u64,
        peak_rss_bytes: u64,
    ) -> Self {
        let per = |secs: f64| {
            if secs > 0.0 {
                events as f64 / secs
            } else {
                0.0
            }
        };
        RunRecord {
            query: query.to_string(),
            events,
            parallelism,
            wall_s,
            cpu_s,
            events_per_s: per(wall_s),
            events_per_cpu_s: per(cpu_s),
            sink_rows,
            peak_rss_bytes,
            peak_state_bytes: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_from_times() {
        let r = RunRecord::new("q0", 1000, 2, 2.0, 4.0, 10, 1);
        assert_eq!(r.events_per_s, 500.0);
        assert_eq!(r.events_per_cpu_s, 250.0);
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "query",
            "events",
            "parallelism",
            "wall_s",
            "cpu_s",
            "events_per_s",
            "events_per_cpu_s",
            "sink_rows",
            "peak_rss_bytes",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }
}
