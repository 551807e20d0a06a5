//! Window aggregation: slices, group keys, and the (local, global or single) operator.

mod aggregate;
mod group_keys;
mod spec;

pub use aggregate::{
    partial_schema, AggregatePhase, WindowAggregateCall, WindowAggregateFactory, WindowOutput,
};
pub use spec::{WindowKind, WindowSpec};

#[cfg(test)]
mod tests;
