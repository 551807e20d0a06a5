//! Every job in `examples/` runs as its own comment says, from the repository's root, and
//! prints what its `.out` file shows (lines compared as a multiset: parallel subtasks
//! interleave, and print's `N> ` subtask prefix is dropped).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The jobs under `examples/`, sorted.
fn jobs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![repository().join("examples")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "sql") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The arguments of the `eddy run …` command the job's comment gives.
fn documented_command(sql: &str, job: &Path) -> Vec<String> {
    let line = sql
        .lines()
        .find(|l| l.starts_with("--") && l.contains("Run from the repository's root:"))
        .unwrap_or_else(|| panic!("{}: no 'eddy run' line in its comment", job.display()));
    let args = &line[line.find("eddy run ").unwrap() + "eddy ".len()..];
    args.split_whitespace().map(str::to_string).collect()
}

fn lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let digits = l.bytes().take_while(u8::is_ascii_digit).count();
            match l[digits..].strip_prefix("> ") {
                Some(rest) if digits > 0 => rest.to_string(),
                _ => l.to_string(),
            }
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_runs_as_documented_and_prints_its_expected_rows() {
    let jobs = jobs();
    assert!(jobs.len() >= 3, "examples are missing: {jobs:?}");
    for job in jobs {
        let sql = std::fs::read_to_string(&job).unwrap();
        let args = documented_command(&sql, &job);
        let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
            .args(&args)
            .current_dir(repository())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", job.display());
        let expected = std::fs::read_to_string(job.with_extension("out"))
            .unwrap_or_else(|_| panic!("{}: no .out file beside it", job.display()));
        assert_eq!(
            lines(&String::from_utf8_lossy(&out.stdout)),
            lines(&expected),
            "{} printed other rows",
            job.display()
        );
    }
}
