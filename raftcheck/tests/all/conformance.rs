//! The storage conformance suite on the stores of this crate's dependencies: the labs'
//! persister and the three in-memory stores; and a broken store it must reject.

use raft::persist::PersistError;
use raft::stores::{LogStore, MemLogStore, MemSnapshotStore, MemStores, SnapshotStore};
use raft::{Entry, LogIndex, Membership, Term};
use raftcheck::conformance::check_storage;

#[test]
fn the_labs_persister_conforms() {
    // A crash keeps what was saved: the tester restarts a server from a copy of its persister.
    let checked = check_storage(labrpc::Persister::new, |p| p.copy()).expect("conforms");
    assert!(checked.saves >= 10, "{checked:?}");
    assert!(
        checked.truncations >= 1,
        "no truncation exercised: {checked:?}"
    );
    assert!(
        checked.snapshots >= 2,
        "compaction and install not both exercised: {checked:?}"
    );
    assert!(checked.snapshot_configurations >= 2, "{checked:?}");
}

#[test]
fn three_small_stores_conform() {
    let checked = check_storage(MemStores::default, |s| s).expect("conforms");
    assert!(
        checked.truncations >= 1 && checked.snapshots >= 2,
        "{checked:?}"
    );
    assert!(checked.snapshot_configurations >= 2, "{checked:?}");
}

/// A snapshot store that keeps the data but forgets the configuration it covers: a node
/// restarted from it would come back in its bootstrap configuration.
#[derive(Default)]
struct ForgetsConfiguration(MemSnapshotStore);

impl SnapshotStore for ForgetsConfiguration {
    fn load(&self) -> Result<(Vec<u8>, Option<Membership>), PersistError> {
        Ok((self.0.load()?.0, None))
    }

    fn save(
        &mut self,
        index: LogIndex,
        term: Term,
        membership: Option<&Membership>,
        data: &[u8],
    ) -> Result<(), PersistError> {
        self.0.save(index, term, membership, data)
    }
}

#[test]
fn a_store_that_forgets_the_snapshots_configuration_is_rejected() {
    type Broken =
        raft::stores::Stores<MemLogStore, raft::stores::MemStableStore, ForgetsConfiguration>;
    let err = check_storage(Broken::default, |s| s).expect_err("must not conform");
    assert!(err.contains("configuration"), "{err}");
}

/// A log store that appends but never truncates: the classic bug of a hand-written store.
#[derive(Default)]
struct NoTruncation(MemLogStore);

impl LogStore for NoTruncation {
    fn load(&self) -> Result<(LogIndex, Term, Vec<Entry>), PersistError> {
        self.0.load()
    }

    fn replace_from(&mut self, from: LogIndex, entries: &[Entry]) -> Result<(), PersistError> {
        let (after, _, held) = self.0.load()?;
        let end = LogIndex(after.0 + held.len() as u64 + 1);
        // Only what lies past the end is written.
        let skip = end.0.saturating_sub(from.0) as usize;
        self.0.replace_from(end, entries.get(skip..).unwrap_or(&[]))
    }

    fn compact(&mut self, index: LogIndex, term: Term) -> Result<(), PersistError> {
        self.0.compact(index, term)
    }
}

#[test]
fn a_store_that_does_not_truncate_is_rejected() {
    type Broken = raft::stores::Stores<
        NoTruncation,
        raft::stores::MemStableStore,
        raft::stores::MemSnapshotStore,
    >;
    let err = check_storage(Broken::default, |s| s).expect_err("must not conform");
    assert!(err.contains("loaded log"), "{err}");
}
