//! The `cluster-id` file: which cluster a data directory belongs to, so that a node started
//! with the wrong directory (or a directory reused for a new cluster) refuses to run.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::error::{StorageError, io_at};
use super::fsutil;

pub const CLUSTER_ID_FILE: &str = "cluster-id";
const CLUSTER_ID_TMP: &str = "cluster-id.tmp";

/// The cluster id stored in `dir`, or `None` if the directory (or the file) does not exist.
pub fn read_cluster_id(dir: &Path) -> Result<Option<u64>, StorageError> {
    let path = dir.join(CLUSTER_ID_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        // Not UTF-8 is damage, not an I/O failure.
        Err(e) if e.kind() == ErrorKind::InvalidData => {
            return Err(StorageError::Corrupt {
                path,
                offset: 0,
                reason: "not text".into(),
            });
        }
        Err(e) => return Err(io_at(path)(e)),
    };
    // Written as 16 hex digits and a newline, the way ids are displayed.
    u64::from_str_radix(text.trim(), 16)
        .map(Some)
        .map_err(|e| StorageError::Corrupt {
            path,
            offset: 0,
            reason: format!("not a hexadecimal cluster id ({e}): {:?}", text.trim()),
        })
}

/// Stores the cluster id in `dir` (created if needed), atomically: a crash leaves either no
/// file or the whole id, never a prefix of it.
pub fn write_cluster_id(dir: &Path, id: u64) -> Result<(), StorageError> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let text = format!("{id:016x}\n");
    fsutil::replace_atomically(dir, CLUSTER_ID_FILE, CLUSTER_ID_TMP, &[text.as_bytes()])?;
    Ok(())
}

/// The `removed` file: written once the node's removal from the configuration has committed,
/// so that its data directory never rejoins the cluster by accident (a node restarted on it
/// would otherwise campaign or answer with a stale log as if it still belonged). Its text says
/// when and why, for the operator.
pub const REMOVED_FILE: &str = "removed";
const REMOVED_TMP: &str = "removed.tmp";

/// Marks `dir` as the data directory of a removed node, atomically.
pub fn write_removed(dir: &Path, why: &str) -> Result<(), StorageError> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let text = format!("{}\n", why.trim_end());
    fsutil::replace_atomically(dir, REMOVED_FILE, REMOVED_TMP, &[text.as_bytes()])?;
    Ok(())
}

/// The text of `dir`'s `removed` file, if the node was removed (any bytes, lossily: the file
/// is only ever checked for presence and shown).
pub fn read_removed(dir: &Path) -> Result<Option<String>, StorageError> {
    let path = dir.join(REMOVED_FILE);
    match fs::read(&path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim_end().to_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(path)(e)),
    }
}
