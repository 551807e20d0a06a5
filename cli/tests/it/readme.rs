//! README.md stays true to the code: every flag of every command is in its command line, the
//! Nexmark queries it says run are the ones that do, and every connector is in its table.

use std::collections::BTreeSet;
use std::path::Path;

use kernel::connector::ConnectorLookup;

use crate::support::{eddy, registry, stdout};

fn readme() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join("README.md")).unwrap()
}

/// The long flags `eddy <command> --help` lists, `--help` aside.
fn flags(command: &[&str]) -> Vec<String> {
    let mut args = command.to_vec();
    args.push("--help");
    let help = stdout(&eddy(&args));
    help.lines()
        .filter_map(|l| {
            let at = l.find("--")?;
            let flag: String = l[at..]
                .chars()
                .take_while(|c| *c == '-' || c.is_ascii_alphanumeric())
                .collect();
            (l[..at].trim().is_empty() || l[..at].trim().ends_with(','))
                .then_some(flag)
                .filter(|f| f != "--help" && f != "--version")
        })
        .collect()
}

#[test]
fn every_flag_is_in_its_commands_line_of_the_readme() {
    let text = readme();
    let section = text
        .split_once("## Command line")
        .expect("README has a Command line section")
        .1;
    for command in [
        &["run"][..],
        &["explain"],
        &["nexmark", "run"],
        &["nexmark", "generate"],
        &["nexmark", "suite"],
        &["nexmark", "chart"],
    ] {
        let prefix = format!("    eddy {} ", command.join(" "));
        let line = section
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("README's Command line has no '{}' line", prefix.trim()));
        let listed = flags(command);
        assert!(
            !listed.is_empty() || command == ["nexmark", "chart"],
            "{command:?}"
        );
        for flag in listed {
            assert!(
                line.split(|c: char| !(c == '-' || c.is_ascii_alphanumeric()))
                    .any(|w| w == flag),
                "README's '{}' line lacks {flag}",
                prefix.trim()
            );
        }
    }
}

#[test]
fn the_nexmark_queries_the_readme_says_run_are_the_ones_that_do() {
    let pending: BTreeSet<String> = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../nexmark/reference/pending.txt"),
    )
    .unwrap()
    .lines()
    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    .map(|l| l.split_whitespace().next().unwrap().to_string())
    .collect();
    let names: Vec<&str> = nexmark::queries::QUERIES.iter().map(|(n, _)| *n).collect();
    let (first, last) = (names[0], names[names.len() - 1]);
    let claim = if pending.is_empty() {
        format!("- Nexmark: {first}–{last} run from Flink's verbatim SQL")
    } else {
        let runs: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !pending.contains(*n))
            .collect();
        format!(
            "- Nexmark: {} run from Flink's verbatim SQL",
            runs.join(", ")
        )
    };
    assert!(
        readme().contains(&claim),
        "README should say: {claim} (nexmark/queries and pending.txt)"
    );
}

#[test]
fn every_connector_has_a_row_in_the_readme() {
    let readme = readme();
    for name in registry().names() {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "connector '{name}' has no row in README's table"
        );
    }
}
