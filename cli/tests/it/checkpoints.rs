//! Checkpoints and recovery, with real processes and real files: `eddy run` is killed with
//! SIGKILL while it writes, resumed with `--from`, and its committed rows compared with a
//! run that never failed; damaged checkpoints, unsupported operators and keys, and
//! cancellation by SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::support::{data_files, eddy, sigterm, sorted_csv_rows, spawn_eddy, stderr};

/// A paced Nexmark bid stream (about `events / rate` seconds of wall time) into a CSV
/// filesystem sink at `out`, checkpointed every `interval` into `chk` unless `chk` is `None`.
fn paced_job(dir: &Path, out: &Path, chk: Option<&Path>, events: u64, rate: u64) -> PathBuf {
    let checkpoints = chk.map_or(String::new(), |c| {
        format!(
            "SET 'execution.checkpointing.interval' = '100 ms';\n\
             SET 'execution.checkpointing.dir' = '{}';\n\
             SET 'execution.checkpointing.externalized-checkpoint-retention' = 'RETAIN_ON_CANCELLATION';\n",
            c.display()
        )
    });
    let sql = format!(
        "{checkpoints}\
         CREATE TABLE bids (\n\
           event_type INT,\n\
           bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>\n\
         ) WITH ('connector' = 'nexmark', 'events.num' = '{events}', 'first-event.rate' = '{rate}', 'max-emit-speed' = 'false');\n\
         CREATE TABLE out_t (auction BIGINT, bidder BIGINT, price BIGINT, url VARCHAR)\n\
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv', 'sink.rolling-policy.file-size' = '64 kb');\n\
         INSERT INTO out_t SELECT bid.auction, bid.bidder, bid.price, bid.url FROM bids WHERE event_type = 2;\n",
        out.display()
    );
    let file = dir.join(if chk.is_some() { "job.sql" } else { "ref.sql" });
    std::fs::write(&file, sql).unwrap();
    file
}

/// The published checkpoints under a checkpoint directory.
fn published(chk: &Path) -> usize {
    let Ok(jobs) = std::fs::read_dir(chk) else {
        return 0;
    };
    jobs.flatten()
        .filter_map(|j| std::fs::read_dir(j.path()).ok())
        .flat_map(|d| d.flatten())
        .filter(|c| c.path().join("_metadata").is_file())
        .count()
}

/// Waits until a checkpoint newer than any seen before is published (the job has made
/// progress), or the process ends.
fn wait_for_new_checkpoint(child: &mut Child, chk: &Path) {
    let newest = |chk: &Path| -> u64 {
        let Ok(jobs) = std::fs::read_dir(chk) else {
            return 0;
        };
        jobs.flatten()
            .filter_map(|j| std::fs::read_dir(j.path()).ok())
            .flat_map(|d| d.flatten())
            .filter(|c| c.path().join("_metadata").is_file())
            .filter_map(|c| c.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
            .max()
            .unwrap_or(0)
    };
    let before = newest(chk);
    let give_up = Instant::now() + Duration::from_secs(120);
    while newest(chk) <= before && Instant::now() < give_up {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every visible file is whole: each line has all four columns and the file ends with a
/// line break (a partial file would be cut mid-line).
fn assert_visible_files_whole(out: &Path) {
    for f in data_files(out) {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{} is cut short",
            f.display()
        );
        for line in text.lines() {
            assert_eq!(line.split(',').count(), 4, "{}: {line}", f.display());
        }
    }
}

#[test]
fn a_job_killed_twice_resumes_and_commits_every_row_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (out, chk, reference) = (
        dir.path().join("out"),
        dir.path().join("chk"),
        dir.path().join("ref"),
    );
    let (events, rate) = (60_000, 20_000);
    let ref_sql = paced_job(dir.path(), &reference, None, events, 10_000_000);
    let done = eddy(&["run", ref_sql.to_str().unwrap(), "-p", "2"]);
    assert!(done.status.success(), "{}", stderr(&done));
    let want = sorted_csv_rows(&reference);
    assert!(want.len() > 50_000, "{} rows", want.len());

    let sql = paced_job(dir.path(), &out, Some(&chk), events, rate);
    let sql = sql.to_str().unwrap();
    let chk_arg = chk.to_str().unwrap();
    let mut kills = 0;
    let mut child = spawn_eddy(&["run", sql, "-p", "2"]);
    loop {
        wait_for_new_checkpoint(&mut child, &chk);
        wait_for_new_checkpoint(&mut child, &chk);
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        assert_visible_files_whole(&out);
        if kills == 1 {
            // What an unpublished checkpoint would have left: the next run deletes it.
            let job = std::fs::read_dir(&chk)
                .unwrap()
                .flatten()
                .next()
                .unwrap()
                .path();
            std::fs::write(job.join("files/orphan-of-a-kill-000001.run"), "x").unwrap();
            std::fs::write(job.join("manifests/orphan-000000000999.json"), "{}").unwrap();
        }
        let resume: Vec<&str> = vec!["run", sql, "-p", "2", "--from", chk_arg];
        child = spawn_eddy(&resume);
        if kills == 2 {
            break;
        }
    }
    let status = child.wait_with_output().unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(kills >= 1, "the job ended before it could be killed");
    assert!(published(&chk) >= 1);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".inprogress"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let job = std::fs::read_dir(&chk)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    assert!(!job.join("files/orphan-of-a-kill-000001.run").exists());
    assert!(!job.join("manifests/orphan-000000000999.json").exists());
    let got = sorted_csv_rows(&out);
    assert_eq!(got.len(), want.len(), "after {kills} kills");
    assert!(
        got == want,
        "the committed rows differ from a run without failures"
    );
}

/// Copies a directory tree (the state of a killed run, to restore it twice).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_checkpoint_taken_at_parallelism_two_restores_at_one_and_three() {
    let dir = tempfile::tempdir().unwrap();
    let (out, chk, reference) = (
        dir.path().join("out"),
        dir.path().join("chk"),
        dir.path().join("ref"),
    );
    let (events, rate) = (40_000, 20_000);
    let ref_sql = paced_job(dir.path(), &reference, None, events, 10_000_000);
    assert!(eddy(&["run", ref_sql.to_str().unwrap(), "-p", "2"])
        .status
        .success());
    let want = sorted_csv_rows(&reference);

    let sql = paced_job(dir.path(), &out, Some(&chk), events, rate);
    let sql = sql.to_str().unwrap();
    let mut child = spawn_eddy(&["run", sql, "-p", "2"]);
    wait_for_new_checkpoint(&mut child, &chk);
    wait_for_new_checkpoint(&mut child, &chk);
    child.kill().unwrap();
    child.wait().unwrap();
    let saved = dir.path().join("saved");
    copy_tree(&out, &saved.join("out"));
    copy_tree(&chk, &saved.join("chk"));

    for p in ["1", "3"] {
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_dir_all(&chk);
        copy_tree(&saved.join("out"), &out);
        copy_tree(&saved.join("chk"), &chk);
        let resumed = eddy(&["run", sql, "-p", p, "--from", chk.to_str().unwrap()]);
        assert!(resumed.status.success(), "p={p}: {}", stderr(&resumed));
        let got = sorted_csv_rows(&out);
        assert_eq!(got.len(), want.len(), "restored at parallelism {p}");
        assert!(got == want, "restored at parallelism {p}: rows differ");
    }
}

/// The `_metadata` of the newest checkpoint under `chk`.
fn newest_metadata(chk: &Path) -> PathBuf {
    let job = std::fs::read_dir(chk)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut chks: Vec<PathBuf> = std::fs::read_dir(&job)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("_metadata").is_file())
        .collect();
    chks.sort_by_key(|p| {
        p.file_name().unwrap().to_str().unwrap()[4..]
            .parse::<u64>()
            .unwrap()
    });
    chks.last().unwrap().join("_metadata")
}

#[test]
fn a_flipped_byte_or_a_cut_metadata_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (out, chk) = (dir.path().join("out"), dir.path().join("chk"));
    let sql = paced_job(dir.path(), &out, Some(&chk), 2_000, 10_000_000);
    let sql = sql.to_str().unwrap();
    let done = eddy(&["run", sql, "-p", "1"]);
    assert!(done.status.success(), "{}", stderr(&done));
    let meta = newest_metadata(&chk);
    let good = std::fs::read(&meta).unwrap();

    let mut flipped = good.clone();
    let at = flipped.len() / 2 + 40;
    flipped[at] ^= 0x01;
    std::fs::write(&meta, &flipped).unwrap();
    let o = eddy(&["run", sql, "--from", chk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(meta.to_str().unwrap()),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("checksum"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    std::fs::write(&meta, &good[..good.len() / 3]).unwrap();
    let o = eddy(&["run", sql, "--from", meta.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(meta.to_str().unwrap()),
        "{}",
        stderr(&o)
    );

    let o = eddy(&[
        "run",
        sql,
        "--from",
        dir.path().join("nowhere").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nowhere"), "{}", stderr(&o));
}

/// Every operator can be checkpointed now (the runtime's tests refuse one that cannot); a
/// checkpointing key eddy does not implement is refused by name.
#[test]
fn an_unimplemented_checkpointing_key_is_refused_before_the_job_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("in.csv");
    std::fs::write(&data, "a,1\nb,2\na,3\n").unwrap();
    let sql = format!(
        "SET 'execution.checkpointing.interval' = '1 s';\n\
         CREATE TABLE t (k STRING, v BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
         CREATE TABLE s (k STRING, n BIGINT) WITH ('connector' = 'print');\n\
         INSERT INTO s SELECT k, COUNT(*) FROM t GROUP BY k;\n",
        data.display()
    );
    let file = dir.path().join("agg.sql");
    std::fs::write(&file, sql).unwrap();
    let o = eddy(&[
        "run",
        file.to_str().unwrap(),
        "--set",
        "execution.checkpointing.unaligned.enabled=true",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("execution.checkpointing.unaligned.enabled"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn sigterm_cancels_without_publishing_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sql = paced_job(dir.path(), &out, None, 1_000_000, 20_000);
    let sql = std::fs::read_to_string(&sql).unwrap().replace(
        "'format' = 'csv',",
        "'format' = 'csv', 'sink.partition-commit.policy.kind' = 'success-file',",
    );
    let file = dir.path().join("long.sql");
    std::fs::write(&file, sql).unwrap();
    let child = spawn_eddy(&["run", file.to_str().unwrap(), "-p", "2"]);
    // Wait until rows are being written (an in-progress file exists).
    let give_up = Instant::now() + Duration::from_secs(120);
    while Instant::now() < give_up {
        let writing = std::fs::read_dir(&out).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".inprogress"))
        });
        if writing {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm(&child);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("cancelled"), "{err}");
    assert!(data_files(&out).is_empty(), "visible files after a cancel");
    assert!(!out.join("_SUCCESS").exists());
}

/// Runs `query` (over table `ev`, the Nexmark stream, into `out_t` with `columns`) without
/// failures, then with checkpoints at parallelism 2, kills it after two checkpoints and
/// resumes it at parallelism 3: the committed rows must be the same.
fn killed_and_resumed_at_three_gives_the_same_rows(
    events: (u64, u64),
    columns: &str,
    query: &str,
    min_rows: usize,
) {
    killed_and_resumed_at_three(events, columns, query, min_rows, false)
}

/// As [`killed_and_resumed_at_three_gives_the_same_rows`]; with `materialize` the (updating)
/// results go to `--materialize-dir` and the final tables are compared.
fn killed_and_resumed_at_three(
    events: (u64, u64),
    columns: &str,
    query: &str,
    min_rows: usize,
    materialize: bool,
) {
    killed_and_resumed_at("3", events, columns, query, min_rows, materialize)
}

/// As [`killed_and_resumed_at_three`], resumed at parallelism `resume_at`.
fn killed_and_resumed_at(
    resume_at: &str,
    (events, rate): (u64, u64),
    columns: &str,
    query: &str,
    min_rows: usize,
    materialize: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let (out, chk, reference) = (
        dir.path().join("out"),
        dir.path().join("chk"),
        dir.path().join("ref"),
    );
    let job = |out: &Path, chk: Option<&Path>| {
        let checkpoints = chk.map_or(String::new(), |c| {
            format!(
                "SET 'execution.checkpointing.interval' = '100 ms';\n\
                 SET 'execution.checkpointing.dir' = '{}';\n\
                 SET 'execution.checkpointing.externalized-checkpoint-retention' = 'RETAIN_ON_CANCELLATION';\n",
                c.display()
            )
        });
        let unpaced = if chk.is_some() { "false" } else { "true" };
        format!(
            "{checkpoints}\
             CREATE TABLE ev (\n\
               event_type INT,\n\
               person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,\n\
               auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,\n\
               bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,\n\
               ts AS CASE WHEN event_type = 0 THEN person.dateTime WHEN event_type = 1 THEN auction.dateTime ELSE bid.dateTime END,\n\
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND\n\
             ) WITH ('connector' = 'nexmark', 'events.num' = '{events}', 'first-event.rate' = '{rate}', 'max-emit-speed' = '{unpaced}');\n\
             CREATE TABLE out_t ({columns}) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             {query}\n",
            out.display()
        )
    };
    let materialized = |out: &Path| -> Vec<String> {
        if materialize {
            vec!["--materialize-dir".into(), out.display().to_string()]
        } else {
            Vec::new()
        }
    };
    let run_args = |sql: &str, p: &str, out: &Path, from: Option<&Path>| -> Vec<String> {
        let mut args: Vec<String> = vec!["run".into(), sql.into(), "-p".into(), p.into()];
        args.extend(materialized(out));
        if let Some(from) = from {
            args.extend(["--from".into(), from.display().to_string()]);
        }
        args
    };
    let ref_sql = dir.path().join("ref.sql");
    std::fs::write(&ref_sql, job(&reference, None)).unwrap();
    let args = run_args(ref_sql.to_str().unwrap(), "2", &reference, None);
    let done = eddy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(done.status.success(), "{}", stderr(&done));
    let want = sorted_csv_rows(&reference);
    assert!(want.len() >= min_rows, "{} rows", want.len());

    let sql = dir.path().join("job.sql");
    std::fs::write(&sql, job(&out, Some(&chk))).unwrap();
    let sql = sql.to_str().unwrap();
    let args = run_args(sql, "2", &out, None);
    let mut child = spawn_eddy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for_new_checkpoint(&mut child, &chk);
    wait_for_new_checkpoint(&mut child, &chk);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job ended before the kill"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let args = run_args(sql, resume_at, &out, Some(&chk));
    let resumed = eddy(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let got = sorted_csv_rows(&out);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "rows differ from a run without failures");
}

#[test]
fn a_killed_two_phase_window_aggregation_resumes_at_another_parallelism_with_the_same_windows() {
    killed_and_resumed_at_three_gives_the_same_rows(
        (150_000, 100_000),
        "auction BIGINT, wstart TIMESTAMP(3), n BIGINT, m BIGINT",
        "INSERT INTO out_t SELECT bid.auction, window_start, COUNT(*), MAX(bid.price)\n\
         FROM TABLE(HOP(TABLE ev, DESCRIPTOR(ts), INTERVAL '200' MILLISECOND, INTERVAL '600' MILLISECOND))\n\
         WHERE event_type = 2 GROUP BY bid.auction, window_start, window_end;",
        10_000,
    );
}

#[test]
fn a_killed_two_phase_window_aggregation_resumes_at_parallelism_one() {
    // With checkpoints the plan is the same at every parallelism: two phases at 1 too.
    killed_and_resumed_at(
        "1",
        (150_000, 100_000),
        "auction BIGINT, wstart TIMESTAMP(3), n BIGINT",
        "INSERT INTO out_t SELECT bid.auction, window_start, COUNT(*)\n\
         FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '300' MILLISECOND))\n\
         WHERE event_type = 2 GROUP BY bid.auction, window_start, window_end;",
        5_000,
        false,
    );
}

#[test]
fn a_killed_window_join_resumes_at_another_parallelism_with_the_same_pairs() {
    // Person and auction events only (the source skips bids), so more events for as long a
    // run.
    killed_and_resumed_at_three_gives_the_same_rows(
        (1_500_000, 500_000),
        "id BIGINT, starttime TIMESTAMP(3)",
        "INSERT INTO out_t SELECT P.id, P.starttime FROM (\n\
           SELECT person.id AS id, window_start AS starttime, window_end AS endtime\n\
           FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '300' MILLISECOND))\n\
           WHERE event_type = 0 GROUP BY person.id, window_start, window_end) P\n\
         JOIN (\n\
           SELECT auction.seller AS seller, window_start AS starttime, window_end AS endtime\n\
           FROM TABLE(TUMBLE(TABLE ev, DESCRIPTOR(ts), INTERVAL '300' MILLISECOND))\n\
           WHERE event_type = 1 GROUP BY auction.seller, window_start, window_end) A\n\
         ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;",
        20,
    );
}

#[test]
fn a_killed_session_window_resumes_at_another_parallelism_with_the_same_sessions() {
    killed_and_resumed_at_three_gives_the_same_rows(
        (150_000, 100_000),
        "bidder BIGINT, n BIGINT, sstart TIMESTAMP(3)",
        "INSERT INTO out_t SELECT bid.bidder, COUNT(*), SESSION_START(ts, INTERVAL '50' MILLISECOND)\n\
         FROM ev WHERE event_type = 2 GROUP BY bid.bidder, SESSION(ts, INTERVAL '50' MILLISECOND);",
        1_000,
    );
}

#[test]
fn a_killed_group_aggregation_resumes_at_another_parallelism_with_the_same_final_table() {
    // Updating results: MIN/MAX over an updating input keep multisets, COUNT DISTINCT its
    // values; the inner aggregate's -U/+U reach the outer one.
    killed_and_resumed_at_three(
        (150_000, 100_000),
        "c BIGINT, n BIGINT, lo BIGINT, hi BIGINT, d BIGINT",
        "INSERT INTO out_t SELECT bids % 7, COUNT(*), MIN(top), MAX(top), COUNT(DISTINCT channel)
         FROM (SELECT bid.auction AS auction, COUNT(*) AS bids, MAX(bid.price) AS top,
                      MAX(bid.channel) AS channel
               FROM ev WHERE event_type = 2 GROUP BY bid.auction)
         GROUP BY bids % 7;",
        7,
        true,
    );
}

#[test]
fn a_killed_mini_batch_split_distinct_aggregation_resumes_with_the_same_final_table() {
    // Split distinct: a bucketed aggregate feeding a merging one; mini-batches are sent at
    // every barrier.
    killed_and_resumed_at_three(
        (150_000, 100_000),
        "c VARCHAR, n BIGINT, d BIGINT, s BIGINT",
        "SET 'table.optimizer.distinct-agg.split.enabled' = 'true';\n\
         SET 'table.exec.mini-batch.enabled' = 'true';\n\
         SET 'table.exec.mini-batch.allow-latency' = '50 ms';\n\
         SET 'table.exec.mini-batch.size' = '5000';\n\
         INSERT INTO out_t SELECT bid.channel, COUNT(*), COUNT(DISTINCT bid.bidder), SUM(bid.price)\n\
         FROM ev WHERE event_type = 2 GROUP BY bid.channel;",
        4,
        true,
    );
}

#[test]
fn a_killed_stream_join_resumes_at_another_parallelism_with_the_same_pairs() {
    // A regular inner join of auctions with their sellers: both sides keep every row.
    killed_and_resumed_at_three_gives_the_same_rows(
        (400_000, 100_000),
        "id BIGINT, name VARCHAR, item VARCHAR",
        "INSERT INTO out_t SELECT P.person.id, P.person.name, A.auction.itemName\n\
         FROM ev AS A JOIN ev AS P ON A.auction.seller = P.person.id\n\
         WHERE A.event_type = 1 AND P.event_type = 0;",
        1_000,
    );
}

#[test]
fn a_killed_join_of_updating_inputs_resumes_at_another_parallelism_with_the_same_final_table() {
    // A LEFT JOIN of two aggregates (ChangelogJoin): both sides retract and re-insert.
    killed_and_resumed_at_three(
        (150_000, 100_000),
        "auction BIGINT, n BIGINT, m BIGINT",
        "INSERT INTO out_t SELECT a.auction, a.n, b.m\n\
         FROM (SELECT bid.auction AS auction, COUNT(*) AS n FROM ev WHERE event_type = 2\n\
               GROUP BY bid.auction) a\n\
         LEFT JOIN (SELECT auction.id AS auction, COUNT(*) AS m FROM ev WHERE event_type = 1\n\
               GROUP BY auction.id) b ON a.auction = b.auction;",
        100,
        true,
    );
}

#[test]
fn a_killed_over_window_resumes_at_another_parallelism_with_the_same_rows() {
    // Rows wait for the watermark in their partitions across the kill.
    killed_and_resumed_at_three_gives_the_same_rows(
        (150_000, 100_000),
        "auction BIGINT, price BIGINT, m BIGINT",
        "INSERT INTO out_t SELECT bid.auction, bid.price, MAX(bid.price) OVER (\n\
           PARTITION BY bid.auction ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)\n\
         FROM ev WHERE event_type = 2;",
        10_000,
    );
}
