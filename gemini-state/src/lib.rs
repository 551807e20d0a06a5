//! Keyed state for eddy operators.
//!
//! Operators touch state only through [`StateTable`]. Keys are memcomparable bytes (the
//! kernel encodes key columns with arrow-row) prefixed by their key group, so that rescaling
//! moves whole key-group ranges and scans never need comparator callbacks. The API is
//! batch-first: one call reads or writes many keys.
//!
//! [`TieredTable`] implements it over three tiers: tier 0, typed bytes in memory behind a
//! hash index; tier 1, sorted run files on local disk, written when tier 0 passes its memory
//! budget and compacted in the background; tier 2, the checkpoint location (a local directory
//! or an S3-compatible bucket, through `object_store`) that snapshots copy run files to and
//! restores fetch them back from, each file on first use.

mod checkpoint;
mod key_group;
mod run;
mod table;
mod tier0;
mod tiered;

pub use checkpoint::{CheckpointStore, Manifest};
pub use key_group::{KeyGroup, KeyGroupRange};
pub use table::Result as StateResult;
pub use table::{StateError, StateSize, StateTable, TableOptions};
pub use tiered::{BlobUse, PendingSnapshot, RunMeta, TieredStats, TieredTable};
