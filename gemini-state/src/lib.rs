//! Keyed state for eddy operators.
//!
//! Operators touch state only through [`StateTable`]. Keys are memcomparable bytes (the
//! kernel encodes key columns with arrow-row) prefixed by their key group, so that rescaling
//! moves whole key-group ranges and scans never need comparator callbacks. The API is
//! batch-first: one call reads or writes many keys.
//!
//! Tier 0 is [`MemoryTable`]. The local LSM runs and the object-store tier come later behind
//! the same trait.

mod key_group;
mod memory;
mod run;
mod table;
mod tier0;

pub use key_group::{subtask_for_key_group, KeyGroup, KeyGroupRange, DEFAULT_MAX_PARALLELISM};
pub use memory::MemoryTable;
pub use table::Result as StateResult;
pub use table::{Entry, StateError, StateSize, StateTable, TableOptions, TableSnapshot};
