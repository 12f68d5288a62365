//! Errors of the on-disk storage. Each names the file it concerns and, for corruption, the byte
//! offset, so an operator can find the damage; the trait boundary flattens them into
//! [`raft::PersistError::Storage`] with that text.

use std::io;
use std::path::PathBuf;

use raft::PersistError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Damage that is not a torn final write: the node must not start on it.
    #[error("{} is corrupt at byte offset {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{} is locked: another process is using this data directory", path.display())]
    Locked { path: PathBuf },
    /// The caller asked for something impossible (a gap in the log, a snapshot going back).
    #[error("invalid update: {0}")]
    Invalid(String),
    /// An earlier write or sync failed. After a failed fsync the kernel may have dropped the
    /// dirty pages, so what is on disk is unknown: refuse everything rather than guess.
    #[error("storage failed earlier and cannot be trusted any more: {0}")]
    Failed(String),
}

impl From<StorageError> for PersistError {
    fn from(e: StorageError) -> Self {
        PersistError::Storage(e.to_string())
    }
}

/// Wraps an I/O error with the path it happened on.
pub(super) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.into();
    move |source| StorageError::Io { path, source }
}
