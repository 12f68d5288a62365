//! Durable storage for one Raft node: a write-ahead log of its own plus a snapshot file,
//! implementing [`raft::Storage`].
//!
//! # Files in the data directory
//! - `wal`: `"RLWAL001"`, then frames `len u32 | payload crc32 u32 | header crc32 u32 |
//!   payload` (little-endian; the header crc covers the first 8 bytes), payload = postcard of
//!   the records of one `save`: `HardState { term, voted_for }`, `SnapshotBase { index, term }`
//!   (entries through `index` are in the snapshot file), `Entries { from, entries }` (replace the
//!   log from `from` on). Replaying the frames in order rebuilds term, vote and log.
//! - `snapshot`: `"RLSNAP02" | index u64 | term u64 | conf len u32 | data len u64 | crc32 |
//!   conf | data`, conf = the configuration as of `index` (`raft::Membership::encode()`, the
//!   snapshot's `Persist::snapshot_membership`; empty when none, i.e. the bootstrap
//!   configuration), crc32 over everything after the magic but itself. A restarted node whose
//!   snapshot covers configuration changes comes back in the configuration it had: the log
//!   after the snapshot holds the later ones. A configuration that does not decode is
//!   [`StorageError::Corrupt`].
//! - `cluster-id`: 16 hex digits and a newline (see [`read_cluster_id`]).
//! - `removed`: present once the node's removal from the configuration committed (text: when
//!   and why); a node refuses to start on such a directory (see [`write_removed`]).
//! - `LOCK`: locked while a [`DiskStorage`] is open, so two processes never share a directory.
//! - `wal.tmp`, `snapshot.tmp`, `cluster-id.tmp`: files being replaced; a crash may leave them,
//!   and opening removes them.
//!
//! # Durability and crashes
//! `save` returns once its frame is written and `sync_data` returned: one write and one fsync
//! per call, whatever it changed. A new snapshot goes first to `snapshot.tmp`, is synced,
//! renamed to `snapshot`, and the directory synced; only then does the WAL say the log starts
//! after it (by rewriting the WAL, which also drops the compacted entries: `wal.tmp` with the
//! whole live state in one frame, synced, renamed over `wal`, directory synced). The WAL is also
//! rewritten when it grows much larger than the live state (truncations, compaction).
//!
//! Every crash point leaves a state some prefix of the saves produced:
//! - before a rename: the old file is intact and the `.tmp` is removed on open;
//! - after the snapshot's rename, before the WAL's: the snapshot is newer than the WAL's base,
//!   and opening compacts the replayed log to it (as `RaftLog::compact` does), then rewrites
//!   the WAL. Only committed entries are in a snapshot, so having it early is harmless;
//! - during an append: the final frame is incomplete or fails its checksum. That save never
//!   returned, so nothing was promised from it: it is dropped with a warning and the file cut
//!   there. Damage anywhere else (a frame with valid frames after it, the first frame, which
//!   the file was created with, a bad length, a damaged snapshot) stops the open with
//!   [`StorageError::Corrupt`] naming the file and offset.
//!
//! The live log is kept in memory (besides Raft's own copy), to answer `load` and rewrite the WAL.

mod error;
mod fsutil;
mod meta;
mod snapshot_file;
mod state;
mod wal;

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::log::RaftLog;
use raft::{Entry, HardState, LogIndex, Membership, NodeId, Persist, PersistError, Storage, Term};

pub use error::StorageError;
pub use meta::{
    CLUSTER_ID_FILE, REMOVED_FILE, read_cluster_id, read_removed, write_cluster_id, write_removed,
};
pub use snapshot_file::{SNAPSHOT_FILE, SNAPSHOT_TMP};
pub use wal::{WAL_FILE, WAL_TMP};

use error::io_at;
use state::State;
use wal::{Record, Tail};

pub const LOCK_FILE: &str = "LOCK";

/// When to rewrite the WAL down to the live state (besides after every snapshot).
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Never rewrite a WAL smaller than this (rewriting a small file gains nothing).
    pub rewrite_min_bytes: u64,
    /// Rewrite once the WAL is more than this many times the size of the live state.
    pub rewrite_ratio: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rewrite_min_bytes: 64 << 20,
            rewrite_ratio: 4,
        }
    }
}

/// What one save changes: the fields of [`raft::Persist`], which only the Raft core can build,
/// so that tests and tools can drive [`DiskStorage`] directly.
#[derive(Clone, Debug, Default)]
pub struct Update<'a> {
    pub term: Term,
    pub voted_for: Option<NodeId>,
    /// When `Some(i)`: the stored log from index `i` on is replaced by `entries`.
    pub entries_from: Option<LogIndex>,
    pub entries: &'a [Entry],
    /// The snapshot, when it changed; it covers the log through `snapshot_index`.
    pub snapshot: Option<Arc<Vec<u8>>>,
    pub snapshot_index: LogIndex,
    pub snapshot_term: Term,
    /// The configuration the snapshot covers (`None`: the bootstrap one); it changes only with
    /// a new snapshot.
    pub snapshot_membership: Option<&'a Membership>,
}

impl<'a> Update<'a> {
    pub fn from_persist(p: &'a Persist<'_>) -> Self {
        Update {
            term: p.term,
            voted_for: p.voted_for,
            entries_from: p.entries_from,
            entries: p.entries,
            snapshot: p.snapshot.clone(),
            snapshot_index: p.snapshot_index,
            snapshot_term: p.snapshot_term,
            snapshot_membership: p.snapshot_membership,
        }
    }
}

/// Counters, for status displays and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Current size of the WAL file.
    pub wal_bytes: u64,
    /// Saves that wrote something.
    pub saves: u64,
    /// Times the WAL was rewritten down to the live state.
    pub rewrites: u64,
}

/// A Raft node's durable state in a directory. See the module documentation.
pub struct DiskStorage {
    dir: PathBuf,
    wal_path: PathBuf,
    /// Open at its end: frames are appended with one write each.
    wal: File,
    state: State,
    snapshot: Arc<Vec<u8>>,
    /// The configuration as of the snapshot (in the snapshot file).
    snapshot_membership: Option<Membership>,
    options: Options,
    stats: WalStats,
    /// Reused for each frame, so a save allocates nothing in the common case.
    buf: Vec<u8>,
    /// Set when a write or sync failed: what is on disk is unknown from then on.
    failed: Option<String>,
    /// Holds the directory's lock until dropped.
    _lock: File,
}

/// A summary: the log itself may be large.
impl std::fmt::Debug for DiskStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStorage")
            .field("dir", &self.dir)
            .field("term", &self.state.term)
            .field("voted_for", &self.state.voted_for)
            .field("snapshot_index", &self.state.base_index)
            .field("last_index", &self.state.last_index())
            .field("stats", &self.stats)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl DiskStorage {
    /// Opens (creating if needed) the storage in `dir`, with the default [`Options`].
    pub fn open(dir: &Path) -> Result<DiskStorage, StorageError> {
        Self::open_with(dir, Options::default())
    }

    /// Opens the storage in `dir`: replays the WAL, cuts a torn final frame (with a warning),
    /// and fails on any other damage.
    pub fn open_with(dir: &Path, options: Options) -> Result<DiskStorage, StorageError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_at(&lock_path))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => StorageError::Locked {
                path: lock_path.clone(),
            },
            std::fs::TryLockError::Error(source) => StorageError::Io {
                path: lock_path.clone(),
                source,
            },
        })?;
        // Leftovers of an interrupted replacement: the real files are intact, these are not.
        for tmp in [WAL_TMP, SNAPSHOT_TMP, "cluster-id.tmp", "removed.tmp"] {
            fsutil::remove_stale(dir, tmp)?;
        }

        let snapshot = snapshot_file::read(dir)?;
        let wal_path = dir.join(WAL_FILE);
        let (snap_index, snap_term) = snapshot
            .as_ref()
            .map_or((LogIndex(0), Term(0)), |f| (f.index, f.term));
        let (state, wal, wal_bytes, rewrite) = match fs::read(&wal_path) {
            Ok(data) => {
                let (mut state, wal, len) = replay(&wal_path, &data)?;
                let rewrite = reconcile(&mut state, &wal_path, snap_index, snap_term, dir)?;
                (state, wal, len, rewrite)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The WAL is created on first open, before any snapshot can be written: a
                // snapshot without a WAL means the WAL was lost, and the term and vote with it.
                if snapshot.is_some() {
                    return Err(StorageError::Corrupt {
                        path: wal_path,
                        offset: 0,
                        reason: "missing, but a snapshot file exists".into(),
                    });
                }
                let state = State::default();
                let (wal, len) = write_live_wal(dir, &state)?;
                (state, wal, len, false)
            }
            Err(e) => return Err(io_at(&wal_path)(e)),
        };
        let (snapshot, snapshot_membership) = match snapshot {
            Some(f) => (f.data, f.membership),
            None => (Vec::new(), None),
        };
        let mut storage = DiskStorage {
            dir: dir.to_owned(),
            wal_path,
            wal,
            state,
            snapshot: Arc::new(snapshot),
            snapshot_membership,
            options,
            stats: WalStats {
                wal_bytes,
                ..WalStats::default()
            },
            buf: Vec::new(),
            failed: None,
            _lock: lock,
        };
        if rewrite || storage.wal_too_big(0) {
            storage.rewrite_wal()?;
        }
        Ok(storage)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> WalStats {
        self.stats
    }

    /// Saves `u`, returning once it is on disk. Fails without writing anything if `u` does not
    /// fit the stored log; after a failed write, fails on every call.
    pub fn save_update(&mut self, u: &Update<'_>) -> Result<(), StorageError> {
        if let Some(why) = &self.failed {
            return Err(StorageError::Failed(why.clone()));
        }
        self.state.check(u).map_err(StorageError::Invalid)?;
        if u.snapshot.is_none() && u.snapshot_membership != self.snapshot_membership.as_ref() {
            return Err(StorageError::Invalid(
                "the snapshot's configuration changes without a new snapshot".into(),
            ));
        }
        let result = self.save_checked(u);
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    fn save_checked(&mut self, u: &Update<'_>) -> Result<(), StorageError> {
        // Term and vote first: a torn frame loses the whole save anyway, but keeping them first
        // means no replay ever sees entries of a term the node has not adopted.
        let mut records = Vec::with_capacity(3);
        if (u.term, u.voted_for) != (self.state.term, self.state.voted_for) {
            records.push(Record::HardState {
                term: u.term,
                voted_for: u.voted_for,
            });
        }
        if (u.snapshot_index, u.snapshot_term) != (self.state.base_index, self.state.base_term) {
            records.push(Record::SnapshotBase {
                index: u.snapshot_index,
                term: u.snapshot_term,
            });
        }
        if let Some(from) = u.entries_from {
            records.push(Record::Entries {
                from,
                entries: Cow::Borrowed(u.entries),
            });
        }
        if records.is_empty() && u.snapshot.is_none() {
            return Ok(());
        }
        for r in &records {
            // `check` accepted the update, so this cannot fail; if it did, memory and disk
            // would disagree, so it poisons the storage like a failed write.
            self.state.apply(r).map_err(StorageError::Failed)?;
        }
        self.stats.saves += 1;

        if let Some(data) = &u.snapshot {
            // The snapshot must be durable before any WAL says the log starts after it.
            snapshot_file::write(
                &self.dir,
                u.snapshot_index,
                u.snapshot_term,
                u.snapshot_membership,
                data,
            )?;
            self.snapshot = Arc::clone(data);
            self.snapshot_membership = u.snapshot_membership.cloned();
            // The rewrite holds all of this save's records and drops the compacted entries.
            return self.rewrite_wal();
        }

        self.buf.clear();
        wal::encode_frame(&records, &mut self.buf)?;
        if self.wal_too_big(self.buf.len() as u64) {
            return self.rewrite_wal();
        }
        self.wal
            .write_all(&self.buf)
            .map_err(io_at(&self.wal_path))?;
        // sync_data also makes the new file length durable: that is what a reader needs.
        self.wal.sync_data().map_err(io_at(&self.wal_path))?;
        self.stats.wal_bytes += self.buf.len() as u64;
        // Keep a big buffer from one large save from being held forever.
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::new();
        }
        Ok(())
    }

    fn wal_too_big(&self, adding: u64) -> bool {
        let size = self.stats.wal_bytes + adding;
        size > self.options.rewrite_min_bytes
            && size
                > self
                    .options
                    .rewrite_ratio
                    .saturating_mul(self.state.live_bytes + 64)
    }

    /// Replaces the WAL by one holding only the live state: term and vote, the snapshot's
    /// base, and the log after it (atomically: written aside, synced, renamed, dir synced).
    pub fn rewrite_wal(&mut self) -> Result<(), StorageError> {
        if let Some(why) = &self.failed {
            return Err(StorageError::Failed(why.clone()));
        }
        let result = self.rewrite_inner();
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    fn rewrite_inner(&mut self) -> Result<(), StorageError> {
        let (wal, len) = write_live_wal(&self.dir, &self.state)?;
        self.wal = wal;
        self.stats.wal_bytes = len;
        self.stats.rewrites += 1;
        Ok(())
    }

    /// The stored state and snapshot, as [`Storage::load`] returns them.
    pub fn load_state(&self) -> Result<(HardState, Vec<u8>), StorageError> {
        if let Some(why) = &self.failed {
            return Err(StorageError::Failed(why.clone()));
        }
        let s = &self.state;
        let state = HardState {
            term: s.term,
            voted_for: s.voted_for,
            log: RaftLog::from_parts(s.base_index, s.base_term, s.entries.clone())
                .with_snapshot_membership(self.snapshot_membership.clone()),
        };
        Ok((state, self.snapshot.as_ref().clone()))
    }
}

/// Writes a WAL holding only `s` (term and vote, the snapshot's base, the log after it) over
/// `dir/wal`, atomically. Returns the new file, open at its end, and its length.
fn write_live_wal(dir: &Path, s: &State) -> Result<(File, u64), StorageError> {
    let records = [
        Record::HardState {
            term: s.term,
            voted_for: s.voted_for,
        },
        Record::SnapshotBase {
            index: s.base_index,
            term: s.base_term,
        },
        Record::Entries {
            from: s.base_index.next(),
            entries: Cow::Borrowed(&s.entries),
        },
    ];
    let mut out = Vec::with_capacity(s.live_bytes as usize + 128);
    out.extend_from_slice(wal::MAGIC);
    wal::encode_frame(&records, &mut out)?;
    let file = fsutil::replace_atomically(dir, WAL_FILE, WAL_TMP, &[&out])?;
    Ok((file, out.len() as u64))
}

/// Replays the WAL's bytes, cutting a torn final frame off the file. Returns the state, the
/// file open at its (new) end, and its length.
fn replay(path: &Path, data: &[u8]) -> Result<(State, File, u64), StorageError> {
    let mut state = State::default();
    let tail = wal::scan(data, path, |offset, records| {
        for r in &records {
            state.apply(r).map_err(|reason| StorageError::Corrupt {
                path: path.to_owned(),
                offset,
                reason: format!("inconsistent record: {reason}"),
            })?;
        }
        Ok(())
    })?;
    let mut wal = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_at(path))?;
    let mut len = data.len() as u64;
    if let Tail::Torn { offset, reason } = tail {
        tracing::warn!(
            file = %path.display(),
            offset,
            dropped_bytes = len - offset,
            %reason,
            "WAL ends in a torn write (a save that never completed): truncating it there"
        );
        wal.set_len(offset).map_err(io_at(path))?;
        wal.sync_all().map_err(io_at(path))?;
        len = offset;
    }
    wal.seek(SeekFrom::Start(len)).map_err(io_at(path))?;
    Ok((state, wal, len))
}

/// Brings the replayed state in line with the snapshot file. Returns whether the WAL must be
/// rewritten (the snapshot is newer than the WAL's base).
fn reconcile(
    state: &mut State,
    wal_path: &Path,
    snap_index: LogIndex,
    snap_term: Term,
    dir: &Path,
) -> Result<bool, StorageError> {
    if state.base_index > snap_index {
        return Err(StorageError::Corrupt {
            path: wal_path.to_owned(),
            offset: 0,
            reason: format!(
                "the log starts after index {}, but the snapshot file covers only {snap_index}",
                state.base_index
            ),
        });
    }
    if (snap_index, snap_term) == (state.base_index, state.base_term) {
        return Ok(false);
    }
    // A crash between renaming the snapshot into place and rewriting the WAL: finish the job,
    // so that later frames extend the log the snapshot leaves.
    tracing::info!(
        snapshot_index = %snap_index,
        wal_base = %state.base_index,
        "the snapshot is newer than the WAL's base: compacting the log to it"
    );
    state
        .compact(snap_index, snap_term)
        .map_err(|reason| StorageError::Corrupt {
            path: dir.join(SNAPSHOT_FILE),
            offset: 0,
            reason: format!("does not match the WAL: {reason}"),
        })?;
    Ok(true)
}

impl Storage for DiskStorage {
    fn load(&self) -> Result<(HardState, Vec<u8>), PersistError> {
        Ok(self.load_state()?)
    }

    fn save(&mut self, p: &Persist<'_>) -> Result<(), PersistError> {
        Ok(self.save_update(&Update::from_persist(p))?)
    }
}
