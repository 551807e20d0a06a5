//! Tier 1: immutable sorted run files on local disk.

mod blob;
mod block;
mod bloom;
mod format;
mod index;
mod local;
mod reader;
mod writer;

pub(crate) use blob::{BlobFile, BlobRef};
pub(crate) use format::{stable_hash, Kind, Stored};
pub(crate) use local::LocalFile;
pub(crate) use reader::{RunFile, RunIter};
pub(crate) use writer::{BlobSeparation, RunWriter};

#[cfg(test)]
mod tests;
