//! The Nexmark benchmark for eddy.
//!
//! - [`generator`]: a columnar port of the statistical shape of Flink's `nexmark` connector
//!   (event mix, id windows and hot ratios, log-uniform prices, string shapes, `extra`
//!   padding, channels and URLs, timestamps, auction expiry). It writes Arrow arrays directly.
//!   Unlike Flink's, whose random source is unseeded, it is deterministic for a given `seed`.
//! - [`connector`]: `'connector' = 'nexmark'` for eddy's connector registry.
//! - [`queries`]: Flink's DDL, views and q0–q23 verbatim (q23 is not in the original suite), and the runner's substitutions.

mod ascii;
mod bid_columns;
pub mod config;
pub mod connector;
pub mod generator;
mod model;
pub mod queries;
mod rng;
mod tables;

pub use config::GeneratorConfig;
pub use connector::NexmarkConnector;
pub use generator::{event_schema, EventColumns, NexmarkGenerator, Split};

#[cfg(test)]
mod generator_tests;
