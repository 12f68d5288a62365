//! The snapshot file: the service's snapshot with the last log index and term it covers.
//!
//! Layout (integers little-endian):
//! `"RLSNAP01"` (8) | index u64 | term u64 | data length u64 | crc32 u32 | data.
//! The crc covers index, term, length and data, so a damaged header cannot pass as a valid
//! snapshot of another point in the log.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use raft::{LogIndex, Term};

use super::error::{StorageError, io_at};
use super::fsutil;

pub const SNAPSHOT_FILE: &str = "snapshot";
pub const SNAPSHOT_TMP: &str = "snapshot.tmp";
const MAGIC: &[u8; 8] = b"RLSNAP01";
/// Magic, index, term, length, crc.
const HEADER: usize = 8 + 8 + 8 + 8 + 4;

fn checksum(fields: &[u8], data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(fields);
    h.update(data);
    h.finalize()
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The snapshot in `dir`, if there is one: (index, term, data).
pub(super) fn read(dir: &Path) -> Result<Option<(LogIndex, Term, Vec<u8>)>, StorageError> {
    let path = dir.join(SNAPSHOT_FILE);
    let mut bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(path)(e)),
    };
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        path: path.clone(),
        offset: offset as u64,
        reason,
    };
    // The file only ever appears whole (written aside, synced, renamed), so unlike the WAL's
    // tail nothing here can be a torn write: any mismatch is damage.
    if bytes.len() < HEADER {
        return Err(corrupt(
            bytes.len(),
            format!(
                "snapshot header truncated ({} of {HEADER} bytes)",
                bytes.len()
            ),
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err(corrupt(0, "not a snapshot file (bad magic)".into()));
    }
    let index = le_u64(&bytes, 8);
    let term = le_u64(&bytes, 16);
    let len = le_u64(&bytes, 24);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[32..36]);
    let crc = u32::from_le_bytes(crc);
    let actual_len = (bytes.len() - HEADER) as u64;
    if len != actual_len {
        return Err(corrupt(
            24,
            format!("header says {len} data bytes, file holds {actual_len}"),
        ));
    }
    if checksum(&bytes[8..32], &bytes[HEADER..]) != crc {
        return Err(corrupt(32, "snapshot checksum mismatch".into()));
    }
    bytes.drain(..HEADER);
    Ok(Some((LogIndex(index), Term(term), bytes)))
}

/// Replaces the snapshot in `dir`, atomically and durably.
pub(super) fn write(
    dir: &Path,
    index: LogIndex,
    term: Term,
    data: &[u8],
) -> Result<(), StorageError> {
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&index.0.to_le_bytes());
    header.extend_from_slice(&term.0.to_le_bytes());
    header.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let crc = checksum(&header[8..32], data);
    header.extend_from_slice(&crc.to_le_bytes());
    fsutil::replace_atomically(dir, SNAPSHOT_FILE, SNAPSHOT_TMP, &[&header, data])?;
    Ok(())
}
