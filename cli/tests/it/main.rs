//! eddy's integration tests: one test binary (DataFusion makes each one large), many modules.

mod aggregate_settings;
mod changelog;
mod checkpoints;
mod cli;
mod connectors;
mod examples;
mod interval_join;
mod lookup_join;
mod nexmark_golden;
mod nexmark_reference;
mod over_window;
mod readme;
mod reference;
mod savepoints;
mod support;
mod temporal_join;
mod windows;
