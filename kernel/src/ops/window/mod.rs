//! Windows: slices, group keys, the (local, global or single) window aggregation, the session
//! window aggregation, and the window join.

mod aggregate;
mod group_keys;
mod join;
mod session;
mod spec;

pub use aggregate::{
    partial_schema, AggregatePhase, WindowAggregateCall, WindowAggregateFactory, WindowOutput,
};
pub use join::{JoinSide, WindowJoinFactory, WindowJoinType};
pub use session::SessionAggregateFactory;
pub use spec::{WindowKind, WindowSpec};

use arrow::datatypes::Schema;

use crate::operator::OperatorContext;

/// "keys [...], aggregates [...]" for an operator's `describe`.
fn keys_and_calls(key_schema: &Schema, calls: &[WindowAggregateCall]) -> String {
    let keys: Vec<&str> = key_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    let calls: Vec<&str> = calls.iter().map(|c| c.function.name()).collect();
    format!("keys {keys:?}, aggregates {calls:?}")
}

/// At the end of a run: tells `eddy run`'s user how many late rows an operator dropped.
fn note_late_rows(ctx: &OperatorContext, operator: &str, late_rows: u64) {
    if late_rows > 0 {
        ctx.metrics.note(format!(
            "{operator} (subtask {}): {late_rows} late rows dropped",
            ctx.subtask
        ));
    }
}

#[cfg(test)]
mod join_tests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod tests;
