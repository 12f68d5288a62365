//! The snapshot file: the service's snapshot with the last log index and term it covers, and
//! the cluster configuration as of that index.
//!
//! Layout (integers little-endian):
//! `"RLSNAP02"` (8) | index u64 | term u64 | configuration length u32 | data length u64 |
//! crc32 u32 | configuration | data.
//! The configuration is `raft::Membership::encode()` (postcard), or nothing (length 0) when
//! the snapshot covers no configuration entry (the bootstrap configuration is in force). The
//! crc covers everything after the magic but itself, so a damaged header cannot pass as a
//! valid snapshot of another point in the log or another configuration.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use raft::{LogIndex, Membership, Term};

use super::error::{StorageError, io_at};
use super::fsutil;

pub const SNAPSHOT_FILE: &str = "snapshot";
pub const SNAPSHOT_TMP: &str = "snapshot.tmp";
const MAGIC: &[u8; 8] = b"RLSNAP02";
/// Magic, index, term, configuration length, data length, crc.
const HEADER: usize = 8 + 8 + 8 + 4 + 8 + 4;
/// Where the crc is: it covers the fields before it and the bytes after it.
const CRC_AT: usize = HEADER - 4;

fn checksum(fields: &[u8], rest: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(fields);
    h.update(rest);
    h.finalize()
}

/// What the snapshot file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SnapshotFile {
    pub(super) index: LogIndex,
    pub(super) term: Term,
    /// The configuration as of `index` (`None`: the bootstrap one).
    pub(super) membership: Option<Membership>,
    pub(super) data: Vec<u8>,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The snapshot in `dir`, if there is one.
pub(super) fn read(dir: &Path) -> Result<Option<SnapshotFile>, StorageError> {
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
    let mut m = [0u8; 4];
    m.copy_from_slice(&bytes[24..28]);
    let membership_len = u64::from(u32::from_le_bytes(m));
    let len = le_u64(&bytes, 28);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[CRC_AT..HEADER]);
    let crc = u32::from_le_bytes(crc);
    let actual_len = (bytes.len() - HEADER) as u64;
    if membership_len.checked_add(len) != Some(actual_len) {
        return Err(corrupt(
            24,
            format!(
                "header says {membership_len} configuration and {len} data bytes, file holds \
                 {actual_len}"
            ),
        ));
    }
    if checksum(&bytes[8..CRC_AT], &bytes[HEADER..]) != crc {
        return Err(corrupt(CRC_AT, "snapshot checksum mismatch".into()));
    }
    // Both lengths fit in the file, which is in memory.
    let data_at = HEADER + membership_len as usize;
    let membership = if membership_len == 0 {
        None
    } else {
        Some(Membership::decode(&bytes[HEADER..data_at]).ok_or_else(|| {
            corrupt(
                HEADER,
                "the configuration is not a valid raft::Membership".into(),
            )
        })?)
    };
    bytes.drain(..data_at);
    Ok(Some(SnapshotFile {
        index: LogIndex(index),
        term: Term(term),
        membership,
        data: bytes,
    }))
}

/// Replaces the snapshot in `dir`, atomically and durably.
pub(super) fn write(
    dir: &Path,
    index: LogIndex,
    term: Term,
    membership: Option<&Membership>,
    data: &[u8],
) -> Result<(), StorageError> {
    let conf = membership.map(Membership::encode).unwrap_or_default();
    let conf_len = u32::try_from(conf.len())
        .map_err(|_| StorageError::Invalid(format!("a configuration of {} bytes", conf.len())))?;
    let mut header = Vec::with_capacity(HEADER + conf.len());
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&index.0.to_le_bytes());
    header.extend_from_slice(&term.0.to_le_bytes());
    header.extend_from_slice(&conf_len.to_le_bytes());
    header.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&header[8..CRC_AT]);
    h.update(&conf);
    h.update(data);
    header.extend_from_slice(&h.finalize().to_le_bytes());
    header.extend_from_slice(&conf);
    fsutil::replace_atomically(dir, SNAPSHOT_FILE, SNAPSHOT_TMP, &[&header, data])?;
    Ok(())
}
