//! Blob files: large values kept out of run files. A run entry of kind [`Kind::Blob`] holds a
//! [`BlobRef`] (which blob file, where, how long) instead of its value, so a compaction
//! rewrites keys and small references and passes the large values by, instead of copying
//! each one again at every tier (the WiscKey idea, as RocksDB's BlobDB and Titan do it).
//!
//! ```text
//! [value][crc32] [value][crc32] … [footer, 24 bytes: value count, data length, magic]
//! ```
//!
//! Values are read with `pread`, not through a map: they are large, read one at a time, and
//! mapped pages would count in the process's resident memory.
//!
//! [`Kind::Blob`]: super::Kind::Blob

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::format::{finish_file, get_varint, put_varint, read_checked};
use super::local::LocalFile;
use crate::{StateError, StateResult};

const BLOB_MAGIC: u64 = 0x6564_6479_424c_4231; // "eddyBLB1"
const BLOB_FOOTER_LEN: usize = 24;

/// Where a separated value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlobRef {
    /// The blob file's id (unique across the tables sharing a checkpoint location).
    pub blob: u64,
    pub offset: u64,
    pub len: u32,
}

impl BlobRef {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.blob.to_le_bytes());
        put_varint(out, self.offset);
        put_varint(out, u64::from(self.len));
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<BlobRef> {
        let blob = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let mut at = 8;
        let offset = get_varint(bytes, &mut at)?;
        let len = u32::try_from(get_varint(bytes, &mut at)?).ok()?;
        (at == bytes.len()).then_some(BlobRef { blob, offset, len })
    }

    /// Bytes the value takes in its file, checksum included.
    pub(crate) fn stored_bytes(&self) -> u64 {
        u64::from(self.len) + 4
    }
}

/// Appends values to a new blob file, under a temporary name until finished.
pub(crate) struct BlobWriter {
    id: u64,
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    count: u64,
}

impl BlobWriter {
    pub(crate) fn create(path: &Path, id: u64) -> StateResult<BlobWriter> {
        let tmp = path.with_extension("blob-tmp");
        let file = File::create(&tmp).map_err(|e| StateError::io(&tmp, e))?;
        Ok(BlobWriter {
            id,
            path: path.to_path_buf(),
            tmp,
            out: BufWriter::with_capacity(256 * 1024, file),
            offset: 0,
            count: 0,
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes appended so far.
    pub(crate) fn written(&self) -> u64 {
        self.offset
    }

    pub(crate) fn append(&mut self, value: &[u8]) -> StateResult<BlobRef> {
        let len = u32::try_from(value.len()).map_err(|_| {
            StateError::corrupt(&self.tmp, "a value of 4 GiB or more cannot be stored")
        })?;
        let crc = crc32fast::hash(value);
        self.out
            .write_all(value)
            .and_then(|_| self.out.write_all(&crc.to_le_bytes()))
            .map_err(|e| StateError::io(&self.tmp, e))?;
        let r = BlobRef {
            blob: self.id,
            offset: self.offset,
            len,
        };
        self.offset += r.stored_bytes();
        self.count += 1;
        Ok(r)
    }

    /// Writes the footer, syncs, and moves the file to its name; returns its size.
    pub(crate) fn finish(self) -> StateResult<u64> {
        let mut footer = [0u8; BLOB_FOOTER_LEN];
        footer[0..8].copy_from_slice(&self.count.to_le_bytes());
        footer[8..16].copy_from_slice(&self.offset.to_le_bytes());
        footer[16..24].copy_from_slice(&BLOB_MAGIC.to_le_bytes());
        finish_file(self.out, &footer, &self.tmp, &self.path)?;
        Ok(self.offset + BLOB_FOOTER_LEN as u64)
    }

    /// Drops the unfinished file.
    pub(crate) fn abandon(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// An open blob file.
#[derive(Debug)]
pub(crate) struct BlobFile {
    local: LocalFile,
    /// Bytes of values and their checksums (the footer's data length).
    data_len: u64,
}

impl BlobFile {
    /// Opens `path`, checking that its footer is whole and matches the file's length (a
    /// truncated file is refused here, a damaged value when it is read).
    pub(crate) fn open(path: &Path) -> StateResult<BlobFile> {
        let corrupt = |what: &str| StateError::corrupt(path, what);
        let local = LocalFile::open(path, BLOB_FOOTER_LEN)?;
        let bytes = local.len;
        let mut footer = [0u8; BLOB_FOOTER_LEN];
        local
            .file
            .read_exact_at(&mut footer, bytes - BLOB_FOOTER_LEN as u64)
            .map_err(|e| StateError::io(path, e))?;
        let u64_at = |i: usize| u64::from_le_bytes(footer[i..i + 8].try_into().expect("8 bytes"));
        if u64_at(16) != BLOB_MAGIC {
            return Err(corrupt(
                "footer magic is wrong (truncated or not a blob file)",
            ));
        }
        let data_len = u64_at(8);
        if data_len + BLOB_FOOTER_LEN as u64 != bytes {
            return Err(corrupt("the footer's data length does not match the file"));
        }
        Ok(BlobFile { local, data_len })
    }

    pub(crate) fn path(&self) -> &Path {
        self.local.path()
    }

    /// The open file and what it shares with run files.
    pub(crate) fn local(&self) -> &LocalFile {
        &self.local
    }

    /// The value `r` points at, into `buf`, checked against its checksum.
    pub(crate) fn read(&self, r: BlobRef, buf: &mut Vec<u8>) -> StateResult<()> {
        if r.offset + r.stored_bytes() > self.data_len {
            return Err(StateError::corrupt(
                self.path(),
                &format!("a reference points past the end, at byte {}", r.offset),
            ));
        }
        read_checked(
            &self.local.file,
            self.path(),
            r.offset,
            r.len as usize,
            "value",
            buf,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_reject_trailing_bytes() {
        let r = BlobRef {
            blob: u64::MAX - 3,
            offset: 1 << 33,
            len: 70_000,
        };
        let mut buf = Vec::new();
        r.encode(&mut buf);
        assert_eq!(BlobRef::decode(&buf), Some(r));
        buf.push(0);
        assert_eq!(BlobRef::decode(&buf), None);
        assert_eq!(BlobRef::decode(&buf[..5]), None);
    }

    #[test]
    fn values_read_back_and_damage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-1.blob");
        let mut w = BlobWriter::create(&path, 9).unwrap();
        let values: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 100 + i as usize]).collect();
        let refs: Vec<BlobRef> = values.iter().map(|v| w.append(v).unwrap()).collect();
        let size = w.finish().unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        let file = BlobFile::open(&path).unwrap();
        let mut buf = Vec::new();
        for (r, v) in refs.iter().zip(&values) {
            file.read(*r, &mut buf).unwrap();
            assert_eq!(&buf, v);
        }
        let past = BlobRef {
            offset: size,
            ..refs[0]
        };
        assert!(file.read(past, &mut buf).is_err());
        drop(file);

        // One flipped byte in a value: found when that value is read.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[refs[7].offset as usize + 3] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let file = BlobFile::open(&path).unwrap();
        let err = file.read(refs[7], &mut buf).unwrap_err().to_string();
        assert!(
            err.contains("t-1.blob") && err.contains("checksum"),
            "{err}"
        );
        file.read(refs[8], &mut buf).unwrap();
        drop(file);

        // Cut short: refused at open.
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = BlobFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("t-1.blob") && err.contains("footer"), "{err}");
    }
}
