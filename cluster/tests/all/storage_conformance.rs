//! The write-ahead log passes the storage conformance suite (`raftcheck::conformance`): after
//! every save it is closed and opened again from its directory, and must load exactly what the
//! Raft core saved.

use cluster::storage::DiskStorage;
use raftcheck::conformance::check_storage;

#[test]
fn the_write_ahead_log_conforms() {
    let dir = std::env::temp_dir().join(format!("raftlab-wal-conformance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let open_dir = dir.clone();
    let reopen_dir = dir.clone();
    let checked = check_storage(
        move || match DiskStorage::open(&open_dir) {
            Ok(s) => s,
            Err(e) => panic!("cannot open a WAL in {}: {e}", open_dir.display()),
        },
        move |old| {
            drop(old); // as if the process died: only what is on disk is left
            match DiskStorage::open(&reopen_dir) {
                Ok(s) => s,
                Err(e) => panic!("cannot reopen the WAL in {}: {e}", reopen_dir.display()),
            }
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
    let checked = checked.unwrap_or_else(|e| panic!("the WAL does not conform: {e}"));
    assert!(
        checked.truncations >= 1 && checked.snapshots >= 2 && checked.snapshot_configurations >= 2,
        "{checked:?}"
    );
}
