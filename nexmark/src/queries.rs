//! Flink's Nexmark SQL, verbatim (nexmark/nexmark at 6b3646c), and the runner's substitutions.
//!
//! As in Flink's runner, a query runs as `ddl_gen.sql` + `ddl_views.sql` + `qN.sql` in one
//! session, after `${NAME}` placeholders are replaced.

use std::collections::BTreeMap;

use kernel::{Error, Result};

pub const DDL_GEN: &str = include_str!("../queries/ddl_gen.sql");
pub const DDL_VIEWS: &str = include_str!("../queries/ddl_views.sql");

/// Every query: q0–q23.
pub const QUERIES: &[(&str, &str)] = &[
    ("q0", include_str!("../queries/q0.sql")),
    ("q1", include_str!("../queries/q1.sql")),
    ("q2", include_str!("../queries/q2.sql")),
    ("q3", include_str!("../queries/q3.sql")),
    ("q4", include_str!("../queries/q4.sql")),
    ("q5", include_str!("../queries/q5.sql")),
    ("q6", include_str!("../queries/q6.sql")),
    ("q7", include_str!("../queries/q7.sql")),
    ("q8", include_str!("../queries/q8.sql")),
    ("q9", include_str!("../queries/q9.sql")),
    ("q10", include_str!("../queries/q10.sql")),
    ("q11", include_str!("../queries/q11.sql")),
    ("q12", include_str!("../queries/q12.sql")),
    ("q13", include_str!("../queries/q13.sql")),
    ("q14", include_str!("../queries/q14.sql")),
    ("q15", include_str!("../queries/q15.sql")),
    ("q16", include_str!("../queries/q16.sql")),
    ("q17", include_str!("../queries/q17.sql")),
    ("q18", include_str!("../queries/q18.sql")),
    ("q19", include_str!("../queries/q19.sql")),
    ("q20", include_str!("../queries/q20.sql")),
    ("q21", include_str!("../queries/q21.sql")),
    ("q22", include_str!("../queries/q22.sql")),
    ("q23", include_str!("../queries/q23.sql")),
];

/// The SQL of query `name` (`q0`…`q23`), or an error listing the valid names.
pub fn query(name: &str) -> Result<&'static str> {
    QUERIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, sql)| *sql)
        .ok_or_else(|| {
            let names: Vec<&str> = QUERIES.iter().map(|(n, _)| *n).collect();
            Error::user(format!(
                "unknown Nexmark query '{name}'; valid queries: {}",
                names.join(", ")
            ))
        })
}

/// Replaces every `${NAME}` in `text` with `vars[NAME]`; an unknown name is an error.
pub fn substitute(text: &str, vars: &BTreeMap<&str, String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| Error::user("unterminated ${…} placeholder"))?;
        let name = &after[..end];
        let value = vars
            .get(name)
            .ok_or_else(|| Error::user(format!("no value for placeholder ${{{name}}}")))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Settings of one Nexmark job, turned into the placeholders of Flink's SQL files.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub events: u64,
    /// `first-event.rate` (and `next-event.rate`): event-time density, events per second.
    pub rate: u64,
    /// Extra `WITH` options for the `datagen` table (eddy's `seed`, …), appended verbatim.
    pub extra_options: Vec<(String, String)>,
    /// Where q10 writes (`${NEXMARK_DIR}`), and the run's stamp (`${SUBMIT_TIME}`).
    pub nexmark_dir: String,
    pub submit_time: String,
    /// `${FLINK_HOME}` for q13's side input.
    pub flink_home: String,
}

/// Rows of q13's side input.
pub const SIDE_INPUT_ROWS: u64 = 10_000;

/// Writes q13's side input where its script reads it, `<flink_home>/data/side_input.txt`: the
/// lines `i,i` for i in 0..10000, as Flink's Nexmark setup writes them.
pub fn write_side_input(flink_home: &std::path::Path) -> Result<()> {
    let dir = flink_home.join("data");
    let path = dir.join("side_input.txt");
    let text: String = (0..SIDE_INPUT_ROWS).map(|i| format!("{i},{i}\n")).collect();
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|e| Error::io(format!("cannot write '{}'", path.display()), e))
}

/// The full script of a query: DDL, views and the query, placeholders filled.
pub fn job_script(name: &str, s: &JobSettings) -> Result<String> {
    let q = query(name)?;
    let mut vars = BTreeMap::new();
    vars.insert("TPS", s.rate.to_string());
    vars.insert("EVENTS_NUM", s.events.to_string());
    vars.insert("PERSON_PROPORTION", "1".to_string());
    vars.insert("AUCTION_PROPORTION", "3".to_string());
    vars.insert("BID_PROPORTION", "46".to_string());
    vars.insert("NEXMARK_TABLE", "datagen".to_string());
    vars.insert("NEXMARK_DIR", s.nexmark_dir.clone());
    vars.insert("SUBMIT_TIME", s.submit_time.clone());
    vars.insert("FLINK_HOME", s.flink_home.clone());
    let mut ddl = substitute(DDL_GEN, &vars)?;
    if !s.extra_options.is_empty() {
        // Add eddy's options inside the WITH clause, before its closing parenthesis.
        let close = ddl
            .rfind(')')
            .ok_or_else(|| Error::internal("ddl_gen.sql has no WITH clause"))?;
        let extra: String = s
            .extra_options
            .iter()
            .map(|(k, v)| format!(",\n    '{k}' = '{v}'"))
            .collect();
        ddl.insert_str(close, &format!("{extra}\n"));
    }
    Ok(format!(
        "{ddl}\n{}\n{}",
        substitute(DDL_VIEWS, &vars)?,
        substitute(q, &vars)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_unknown_ones_refused() {
        let mut vars = BTreeMap::new();
        vars.insert("A", "1".to_string());
        assert_eq!(substitute("x ${A} y", &vars).unwrap(), "x 1 y");
        assert!(substitute("${B}", &vars)
            .unwrap_err()
            .to_string()
            .contains("${B}"));
    }

    #[test]
    fn a_job_script_has_no_placeholders_left() {
        let s = JobSettings {
            events: 1000,
            rate: 10_000_000,
            extra_options: vec![("seed".into(), "7".into())],
            nexmark_dir: "/tmp/nx".into(),
            submit_time: "t".into(),
            flink_home: "/tmp".into(),
        };
        for (name, _) in QUERIES {
            let script = job_script(name, &s).unwrap();
            assert!(!script.contains("${"), "{name}");
        }
        let q0 = job_script("q0", &s).unwrap();
        assert!(q0.contains("'seed' = '7'") && q0.contains("'events.num' = '1000'"));
        assert!(query("q99").unwrap_err().to_string().contains("q22"));
    }
}
