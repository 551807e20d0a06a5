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

#[cfg(test)]
mod join_tests;
#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod tests;
