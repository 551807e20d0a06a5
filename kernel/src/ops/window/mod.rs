//! Windows: slices, group keys, the (local, global or single) window aggregation, and the
//! window join.

mod aggregate;
mod group_keys;
mod join;
mod spec;

pub use aggregate::{
    partial_schema, AggregatePhase, WindowAggregateCall, WindowAggregateFactory, WindowOutput,
};
pub use join::{JoinSide, WindowJoinFactory, WindowJoinType};
pub use spec::{WindowKind, WindowSpec};

#[cfg(test)]
mod join_tests;
#[cfg(test)]
mod tests;
