//! Flink SQL for eddy.
//!
//! A script (`CREATE TABLE … WITH (…)`, `CREATE VIEW`, `CREATE FUNCTION`, `SET`, `INSERT INTO …
//! SELECT …`, statement sets) is split and parsed with sqlparser under a [`FlinkDialect`] plus a
//! small front end for Flink's DDL; queries are planned and optimized by DataFusion; the
//! optimized logical plans are lowered to the kernel's typed physical [`kernel::graph::JobGraph`].
//! Anything eddy cannot run yet is refused at plan time with a message naming the construct.

mod catalog;
mod checkpoint_settings;
mod dialect;
mod error;
pub mod functions;
mod legacy_window;
mod lower;
mod planner;
mod rewrite;
mod script;
mod types;
mod window_tvf;

pub use dialect::FlinkDialect;
pub use error::{Location, PlanError};
pub use planner::{plan_script, PlanOptions, PlannedJob};
pub use types::parse_flink_type;
