//! eddy's engine core.
//!
//! A job is a [`graph::JobGraph`] of sources and operators joined by partitioned edges. Every
//! edge carries [`types::Message`]s: Arrow record batches, watermarks, barriers and an end
//! marker. Operators are synchronous callbacks ([`operator::Operator`]); the
//! [`runtime`] chains forward edges into one task, runs each task on a thread, and connects
//! tasks with bounded channels from `net-shuffle`. This crate knows no SQL: the planner builds
//! graphs out of the operators in [`ops`] and the connectors in [`connectors`].

pub mod changelog;
pub mod connectors;
pub mod error;
pub mod graph;
pub mod metrics;
pub mod operator;
pub mod ops;
pub mod runtime;
pub mod types;

pub use error::{Error, Result};
