//! File and message formats for eddy: bytes ⇄ Arrow batches.
//!
//! This crate owns how rows look as text: CSV ([`csv`]) and JSON lines ([`json`]) read
//! into column builders a row at a time ([`columns`]), written back from whole batches
//! ([`encode`]), the values Flink's text forms use (SQL timestamps, decimals: [`text`]), and
//! the format options a table declares ([`options`]). Debezium-JSON, Canal-JSON, raw and
//! Avro will live here too. It knows no connector (where the bytes come from or go),
//! operator or runtime: connectors call it with bytes, it hands back batches.

pub mod columns;
pub mod csv;
pub mod encode;
pub mod json;
pub mod options;
pub mod text;

pub use columns::{Cell, ColumnBuilder, RowsBuilder};
pub use encode::{write_csv, write_json, TIMESTAMP_FORMAT};
pub use options::{FormatOptions, TextFormat, FORMAT_OPTION_KEYS};
pub use text::{parse_decimal, parse_timestamp_ms};
