//! The write-ahead log's format: a magic header, then frames.
//!
//! Frame (integers little-endian):
//! `len u32 | payload crc32 u32 | header crc32 u32 (of the 8 bytes before it) | payload`,
//! payload = postcard of `Vec<Record>`: every record of one `save`, so that a torn write loses
//! a whole save (which was never acknowledged) and never half of one.
//!
//! The length has its own checksum so that a flipped bit in it is recognised as damage. Without
//! it a length pointing past the end of the file would look like a torn final write, and every
//! frame after it would be dropped silently.

use std::borrow::Cow;
use std::path::Path;

use raft::{Entry, LogIndex, NodeId, Term};
use serde::{Deserialize, Serialize};

use super::error::StorageError;

pub const WAL_FILE: &str = "wal";
pub const WAL_TMP: &str = "wal.tmp";
pub(super) const MAGIC: &[u8; 8] = b"RLWAL001";
pub(super) const FRAME_HEADER: usize = 12;

/// One change to the stored state; replayed in order they rebuild it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Record<'a> {
    /// Figure 2's currentTerm and votedFor.
    HardState {
        term: Term,
        voted_for: Option<NodeId>,
    },
    /// Entries through `index` are in the snapshot file; the last of them has `term`. As in
    /// `RaftLog::compact`, later entries survive only if the log has `index` with `term`.
    SnapshotBase { index: LogIndex, term: Term },
    /// The log from `from` on is replaced by `entries` (a truncation, an append, or both).
    Entries {
        from: LogIndex,
        entries: Cow<'a, [Entry]>,
    },
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Appends one frame holding `records` to `out`.
pub(super) fn encode_frame(records: &[Record<'_>], out: &mut Vec<u8>) -> Result<(), StorageError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    *out = postcard::to_extend(records, std::mem::take(out))
        .map_err(|e| StorageError::Invalid(format!("cannot encode a WAL record: {e}")))?;
    let payload_len = out.len() - start - FRAME_HEADER;
    let len = u32::try_from(payload_len).map_err(|_| {
        StorageError::Invalid(format!("a WAL record of {payload_len} bytes exceeds 4 GiB"))
    })?;
    let payload_crc = crc32fast::hash(&out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&header_crc.to_le_bytes());
    Ok(())
}

/// How a scan ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Tail {
    /// Every byte belonged to a valid frame.
    Clean,
    /// The bytes from `offset` on are a torn final write: drop them.
    Torn { offset: u64, reason: String },
}

/// Reads the frames of a whole WAL file (`data`, magic included), calling `apply` with each
/// frame's offset and records. A damaged frame is a torn write only if it is the last thing in
/// the file and not the first frame; anything else (a file without frames too) is corruption,
/// reported with its offset.
pub(super) fn scan(
    data: &[u8],
    path: &Path,
    mut apply: impl FnMut(u64, Vec<Record<'static>>) -> Result<(), StorageError>,
) -> Result<Tail, StorageError> {
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        path: path.to_owned(),
        offset: offset as u64,
        reason,
    };
    // The file is created whole (aside, then renamed), so a bad magic is never a torn write.
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return Err(corrupt(0, "not a WAL file (bad magic)".into()));
    }
    // The first frame is written with the file (aside, synced, renamed), so it is never a
    // torn append either: dropping it would restart the node from term 0 with no vote.
    let torn = |offset: usize, reason: String| {
        if offset == MAGIC.len() {
            return Err(corrupt(
                offset,
                format!("{reason} in the first frame, which is always written whole"),
            ));
        }
        Ok(Tail::Torn {
            offset: offset as u64,
            reason,
        })
    };
    let mut off = MAGIC.len();
    loop {
        let rest = &data[off..];
        if rest.is_empty() {
            if off == MAGIC.len() {
                return Err(corrupt(off, "no frame after the magic".into()));
            }
            return Ok(Tail::Clean);
        }
        if rest.len() < FRAME_HEADER {
            return torn(
                off,
                format!("incomplete frame header ({} bytes)", rest.len()),
            );
        }
        let len = le_u32(rest, 0) as usize;
        let payload_crc = le_u32(rest, 4);
        if crc32fast::hash(&rest[..8]) != le_u32(rest, 8) {
            // Some filesystems extend the file before the data lands: a crash then leaves zeros.
            if rest.iter().all(|&b| b == 0) {
                return torn(off, format!("zero-filled tail ({} bytes)", rest.len()));
            }
            // The final frame with a damaged checksum field: its length still fits exactly.
            if FRAME_HEADER.checked_add(len) == Some(rest.len()) {
                return torn(off, "final frame's header checksum mismatch".into());
            }
            // The final frame with a damaged length: the rest of the file is its payload.
            if crc32fast::hash(&rest[FRAME_HEADER..]) == payload_crc {
                return torn(off, "final frame's length field damaged".into());
            }
            return Err(corrupt(off, "frame header checksum mismatch".into()));
        }
        let end = FRAME_HEADER + len;
        if end > rest.len() {
            return torn(
                off,
                format!("incomplete final frame ({} of {end} bytes)", rest.len()),
            );
        }
        let payload = &rest[FRAME_HEADER..end];
        if crc32fast::hash(payload) != payload_crc {
            if end == rest.len() {
                return torn(off, "final frame's checksum mismatch".into());
            }
            return Err(corrupt(off, "frame checksum mismatch".into()));
        }
        // The checksum held, so these are the bytes that were written: failing to decode them
        // is a format or software problem, never a torn write to drop.
        let records: Vec<Record<'static>> = postcard::from_bytes(payload)
            .map_err(|e| corrupt(off, format!("undecodable frame: {e}")))?;
        apply(off as u64, records)?;
        off += end;
    }
}
