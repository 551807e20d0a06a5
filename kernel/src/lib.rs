//! eddy's engine core: the contracts every part of a job keeps, and the operators.
//!
//! A job is a [`graph::JobGraph`] of sources, operators and sinks joined by partitioned
//! edges. Every edge carries [`types::Message`]s: Arrow record batches, watermarks, barriers
//! and an end marker. Operators are synchronous callbacks ([`operator::Operator`]), sources
//! and sinks have traits of their own ([`operator::Source`], [`sink::Sink`]), and all three
//! keep the checkpoint contract written on them. Rows are placed by one rule ([`keys`]).
//! Connectors are known only by their API ([`connector`]).
//!
//! This crate must not know SQL, the runtime that drives the operators (threads, channels,
//! barrier injection: the `runtime` crate), any connector or file format, or any client
//! library or async runtime: those live in crates above it.

pub mod changelog;
pub mod checkpoint;
pub mod config;
pub mod connector;
pub mod error;
pub mod graph;
pub mod keys;
pub mod metrics;
pub mod operator;
pub mod ops;
pub mod sink;
pub mod types;

pub use error::{Error, Result};
