//! What run and blob files share once written: opened with a check that the file is not
//! shorter than its footer, and deleted when the last reader lets go after no table
//! version names the file any more.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{StateError, StateResult};

/// An immutable table file open for reading.
#[derive(Debug)]
pub(crate) struct LocalFile {
    path: PathBuf,
    pub file: File,
    /// The file's length in bytes.
    pub len: u64,
    /// Set when no live table version names the file: it is deleted once the last reader
    /// (an iterator, a retained snapshot) lets go.
    obsolete: AtomicBool,
}

impl LocalFile {
    /// Opens `path`, refusing a file too short to hold a `footer_len`-byte footer.
    pub(crate) fn open(path: &Path, footer_len: usize) -> StateResult<LocalFile> {
        let file = File::open(path).map_err(|e| StateError::io(path, e))?;
        let len = file.metadata().map_err(|e| StateError::io(path, e))?.len();
        if len < footer_len as u64 {
            return Err(StateError::corrupt(
                path,
                "file is shorter than its footer (truncated)",
            ));
        }
        Ok(LocalFile {
            path: path.to_path_buf(),
            file,
            len,
            obsolete: AtomicBool::new(false),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Relaxed);
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Relaxed) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
