//! Flink SQL for eddy.
//!
//! A script (`CREATE TABLE … WITH (…)`, `CREATE VIEW`, `CREATE FUNCTION`, `SET`, `INSERT INTO …
//! SELECT …`, statement sets) is split and parsed with sqlparser under a [`FlinkDialect`] plus a
//! small front end for Flink's DDL; queries are planned and optimized by DataFusion; the
//! optimized logical plans are lowered to the kernel's typed physical [`kernel::graph::JobGraph`].
//! Anything eddy cannot run yet is refused at plan time with a message naming the construct.

mod catalog;
mod dialect;
mod error;
pub mod functions;
mod legacy_window;
mod lower;
mod lower_group_agg;
mod lower_join;
mod lower_lookup_join;
mod lower_over_agg;
mod lower_rank;
mod lower_split_distinct;
mod lower_stream_join;
mod lower_temporal_join;
mod lower_window;
mod planner;
mod rewrite;
mod script;
mod types;
mod window_tvf;

pub use dialect::FlinkDialect;
pub use error::{Location, PlanError};
pub use planner::{plan_script, PlanOptions, PlannedJob};
pub use types::parse_flink_type;
