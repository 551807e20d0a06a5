//! Stop with a savepoint, with real processes and real files: SIGTERM with `--savepoint-dir`
//! writes a self-contained savepoint, commits what came before it and exits 0; the
//! savepoint, moved elsewhere with the checkpoints deleted, resumes at another parallelism
//! and the committed rows equal a run that never stopped. A savepoint that cannot be
//! written leaves the job running, and a second signal cancels it.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::support::{data_files, eddy, sigterm, sorted_csv_rows, spawn_eddy, stderr};

/// The event rate of every run: it sets the events' times, so the windows too.
const RATE: u64 = 40_000;

/// A Nexmark bid stream of `events` (in real time if `paced`, as fast as it goes if not),
/// aggregated in tumbling event-time windows into a CSV filesystem sink at `out`.
fn window_job(dir: &Path, name: &str, out: &Path, events: u64, paced: bool) -> PathBuf {
    let sql = format!(
        "SET 'execution.checkpointing.dir' = '{chk}';\n\
         CREATE TABLE ev (\n\
           event_type INT,\n\
           bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,\n\
           ts AS bid.dateTime,\n\
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND\n\
         ) WITH ('connector' = 'nexmark', 'events.num' = '{events}', 'first-event.rate' = '{RATE}', 'max-emit-speed' = '{unpaced}');\n\
         CREATE TABLE out_t (auction BIGINT, wstart TIMESTAMP(3), n BIGINT, m BIGINT)\n\
           WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'csv');\n\
         INSERT INTO out_t SELECT bid.auction, window_start, COUNT(*), MAX(bid.price)\n\
         FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '500' MILLISECOND))\n\
         WHERE event_type = 2 GROUP BY bid.auction, window_start, window_end;\n",
        chk = dir.join("chk").display(),
        out = out.display(),
        unpaced = !paced
    );
    let file = dir.join(name);
    std::fs::write(&file, sql).unwrap();
    file
}

/// Starts `sql` at parallelism 2 with savepoints under `savepoints`, and waits until it
/// writes to `out`.
fn started_writing(sql: &Path, savepoints: &Path, out: &Path) -> Child {
    let mut child = spawn_eddy(&[
        "run",
        sql.to_str().unwrap(),
        "-p",
        "2",
        "--savepoint-dir",
        savepoints.to_str().unwrap(),
    ]);
    wait_until_writing(&mut child, out);
    child
}

/// Waits until the sink has written rows (an in-progress file exists) or the job ended.
fn wait_until_writing(child: &mut Child, out: &Path) {
    let give_up = Instant::now() + Duration::from_secs(120);
    while Instant::now() < give_up && child.try_wait().unwrap().is_none() {
        let writing = std::fs::read_dir(out).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".inprogress"))
        });
        if writing {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_with_a_savepoint_dir_stops_with_a_savepoint_that_resumes_elsewhere_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (out, reference) = (dir.path().join("out"), dir.path().join("ref"));
    let events = 400_000;
    let ref_sql = window_job(dir.path(), "ref.sql", &reference, events, false);
    let done = eddy(&["run", ref_sql.to_str().unwrap(), "-p", "2"]);
    assert!(done.status.success(), "{}", stderr(&done));
    let want = sorted_csv_rows(&reference);
    assert!(want.len() > 10_000, "{} rows", want.len());

    let savepoints = dir.path().join("savepoints");
    let paced = window_job(dir.path(), "paced.sql", &out, events, true);
    let mut child = started_writing(&paced, &savepoints, &out);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job ended before the stop"
    );
    sigterm(&child);
    let stopped = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&stopped.stderr).to_string();
    assert_eq!(stopped.status.code(), Some(0), "{err}");
    let path = err
        .lines()
        .find_map(|l| l.strip_prefix("savepoint: "))
        .unwrap_or_else(|| panic!("no savepoint path printed: {err}"));
    let savepoint = PathBuf::from(path);
    assert!(savepoint.starts_with(&savepoints), "{path}");
    assert!(savepoint.join("_metadata").is_file(), "{path}");

    // What came before the savepoint is committed, whole; no window fired early.
    let committed = sorted_csv_rows(&out);
    assert!(
        !committed.is_empty() && committed.len() < want.len(),
        "{} of {} rows committed at the stop",
        committed.len(),
        want.len()
    );
    assert!(committed.iter().all(|row| want.binary_search(row).is_ok()));

    // Self-contained: the checkpoints go, the savepoint moves, and it still resumes (from
    // the directory holding it), at another parallelism.
    std::fs::remove_dir_all(dir.path().join("chk")).ok();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::rename(&savepoint, elsewhere.join(savepoint.file_name().unwrap())).unwrap();
    let unpaced = window_job(dir.path(), "resume.sql", &out, events, false);
    let resumed = eddy(&[
        "run",
        unpaced.to_str().unwrap(),
        "-p",
        "3",
        "--from",
        elsewhere.to_str().unwrap(),
    ]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let got = sorted_csv_rows(&out);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "rows differ from a run that never stopped");
    assert!(
        data_files(&out)
            .iter()
            .all(|f| !f.file_name().unwrap().to_string_lossy().starts_with('.')),
        "in-progress files are left"
    );
}

#[test]
fn a_savepoint_that_cannot_be_written_leaves_the_job_running_and_a_second_signal_cancels() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // A file where the savepoint directory should be: the savepoint cannot be written.
    let blocked = dir.path().join("not-a-directory");
    std::fs::write(&blocked, "x").unwrap();
    let paced = window_job(dir.path(), "paced.sql", &out, 4_000_000, true);
    let mut child = started_writing(&paced, &blocked, &out);
    // Stderr, line by line, as the job prints it.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    sigterm(&child);
    let mut seen = Vec::new();
    let failed = loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                let hit = line.contains("savepoint to stop with failed");
                seen.push(line);
                if hit {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    assert!(failed, "no failed savepoint reported: {seen:?}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job ended when its savepoint failed: {seen:?}"
    );
    sigterm(&child);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    assert_eq!(status.code(), Some(130), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("cancelled")), "{seen:?}");
    assert!(data_files(&out).is_empty(), "visible files after a cancel");
}
