//! Progress while a job runs: a bar on a terminal; on any stderr, the job's events (a
//! restart and its cause, an aborted checkpoint) as they happen.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kernel::metrics::JobMetrics;

pub struct Progress {
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Progress {
    /// Shows source rows against `total` (if known) on stderr when it is a terminal.
    pub fn start(metrics: Arc<JobMetrics>, total: Option<u64>, label: &str) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            let d = done.clone();
            let handle = std::thread::spawn(move || loop {
                let last = d.load(Ordering::Relaxed);
                for e in metrics.take_events() {
                    eprintln!("{e}");
                }
                if last {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            });
            return Progress {
                done,
                handle: Some(handle),
            };
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} events {per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{msg} {spinner} {pos} rows read {per_sec}")
                    .expect("valid template"),
            ),
        };
        bar.set_message(label.to_string());
        let d = done.clone();
        let handle = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                bar.set_position(JobMetrics::get(&metrics.source_rows));
                for e in metrics.take_events() {
                    bar.println(e);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
            for e in metrics.take_events() {
                eprintln!("{e}");
            }
        });
        Progress {
            done,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
