//! A Nexmark suite's results: what became of each query, and the Markdown table of them.

use serde::{Deserialize, Serialize};

use crate::chart::{Chart, Panel, Series};
use crate::RunRecord;

/// What became of one query of a suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// It ran every time: the median run (by events per CPU-second) and all runs.
    Ran {
        median: RunRecord,
        runs: Vec<RunRecord>,
    },
    /// eddy refused it at planning (a construct it does not support yet).
    Unsupported { message: String },
    /// It failed while running.
    Failed { message: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteEntry {
    pub query: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The run with the median events per CPU-second (the lower middle of an even count).
pub fn median_run(runs: &[RunRecord]) -> Option<RunRecord> {
    let mut sorted: Vec<&RunRecord> = runs.iter().collect();
    sorted.sort_by(|a, b| a.events_per_cpu_s.total_cmp(&b.events_per_cpu_s));
    sorted
        .get((sorted.len().max(1) - 1) / 2)
        .map(|r| (*r).clone())
}

fn millions(v: f64) -> String {
    format!("{:.2} M", v / 1e6)
}

/// One Markdown table of the suite: a row per query, with why it did not run where it did not.
pub fn markdown_table(entries: &[SuiteEntry]) -> String {
    let mut out = String::from(
        "| query | events | cores used | wall s | events/s | events/CPU-s | peak RSS | sink rows |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for e in entries {
        let row = match &e.outcome {
            Outcome::Ran { median: r, .. } => format!(
                "| {} | {} | {:.2} | {:.2} | {} | **{}** | {:.0} MiB | {} |",
                e.query,
                r.events,
                if r.wall_s > 0.0 {
                    r.cpu_s / r.wall_s
                } else {
                    0.0
                },
                r.wall_s,
                millions(r.events_per_s),
                millions(r.events_per_cpu_s),
                r.peak_rss_bytes as f64 / (1024.0 * 1024.0),
                r.sink_rows
            ),
            Outcome::Unsupported { message } => {
                format!(
                    "| {} | not supported yet: {} |||||||",
                    e.query,
                    one_line(message)
                )
            }
            Outcome::Failed { message } => {
                format!("| {} | **failed**: {} |||||||", e.query, one_line(message))
            }
        };
        out.push_str(&row);
        out.push('\n');
    }
    out
}

/// The suite's chart: events/s and events per CPU-second of each query that ran, in millions;
/// `None` when none ran.
pub fn throughput_chart(entries: &[SuiteEntry], title: &str) -> Option<Chart> {
    let ran: Vec<(&str, &RunRecord)> = entries
        .iter()
        .filter_map(|e| match &e.outcome {
            Outcome::Ran { median, .. } => Some((e.query.as_str(), median)),
            _ => None,
        })
        .collect();
    if ran.is_empty() {
        return None;
    }
    let panel = |y_label: &str, value: fn(&RunRecord) -> f64| Panel {
        y_label: y_label.into(),
        series: vec![Series {
            name: "eddy".into(),
            values: ran.iter().map(|(_, r)| Some(value(r) / 1e6)).collect(),
        }],
    };
    Some(Chart {
        title: title.into(),
        categories: ran.iter().map(|(q, _)| q.to_string()).collect(),
        panels: vec![
            panel("M events/s", |r| r.events_per_s),
            panel("M events per CPU-second", |r| r.events_per_cpu_s),
        ],
    })
}

/// A message fit for a table cell: its first line, without pipes.
fn one_line(message: &str) -> String {
    message.lines().next().unwrap_or("").replace('|', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(q: &str, cpu: f64) -> RunRecord {
        RunRecord::new(q, 1_000_000, 1, cpu, cpu, 10, 64 << 20)
    }

    #[test]
    fn medians_tables_and_json_shapes() {
        let runs = vec![run("q0", 3.0), run("q0", 1.0), run("q0", 2.0)];
        assert_eq!(median_run(&runs).unwrap().cpu_s, 2.0);
        assert_eq!(median_run(&runs[..2]).unwrap().cpu_s, 3.0, "lower middle");
        assert!(median_run(&[]).is_none());
        let entries = vec![
            SuiteEntry {
                query: "q0".into(),
                outcome: Outcome::Ran {
                    median: run("q0", 2.0),
                    runs,
                },
            },
            SuiteEntry {
                query: "q5".into(),
                outcome: Outcome::Unsupported {
                    message: "HOP | windows\nmore".into(),
                },
            },
        ];
        let table = markdown_table(&entries);
        assert!(
            table.contains("| q0 | 1000000 | 1.00 | 2.00 | 0.50 M | **0.50 M** | 64 MiB | 10 |")
        );
        assert!(table.contains("| q5 | not supported yet: HOP / windows |"));
        let json = serde_json::to_value(&entries).unwrap();
        assert_eq!(json[0]["status"], "ran");
        assert_eq!(json[1]["status"], "unsupported");
        let back: Vec<SuiteEntry> = serde_json::from_value(json).unwrap();
        assert_eq!(back, entries);
        let chart = throughput_chart(&entries, "t").unwrap();
        assert_eq!(chart.categories, ["q0"], "only the queries that ran");
        assert_eq!(chart.panels[1].series[0].values, [Some(0.5)]);
        assert!(throughput_chart(&entries[1..], "t").is_none());
    }
}
