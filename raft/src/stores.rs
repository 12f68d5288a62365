//! Storage in three small pieces, as hashicorp/raft splits it: a [`StableStore`] (currentTerm
//! and votedFor), a [`LogStore`] (the entries after the snapshot) and a [`SnapshotStore`] (the
//! service's snapshot, the index and term it covers, and the cluster configuration as of that
//! index, so that a restarted node whose snapshot covers a configuration change comes back in
//! that configuration). [`Stores`] puts three of them together
//! into a [`Storage`] the driver can use; the in-memory ones here are for tests and examples.
//!
//! The default store of the real cluster, its write-ahead log (`cluster::storage`), is one
//! [`Storage`] on its own: one record holds a save's term, vote, entries and snapshot, so a save
//! is atomic. [`Stores`] gets crash safety from order instead: the term and vote first (a log
//! never holds entries of a term the stable store has not reached), the snapshot before the
//! log is compacted to it, the entries last. Every store, whole or in pieces, can run
//! `raftcheck::conformance::check_storage`.

use std::sync::Arc;

use crate::configuration::Membership;
use crate::core::Persist;
use crate::log::{Entry, RaftLog};
use crate::persist::{HardState, PersistError, Storage};
use crate::types::{LogIndex, NodeId, Term};

/// Figure 2's currentTerm and votedFor. `set` returns once they are durable.
pub trait StableStore: Send + 'static {
    fn get(&self) -> Result<(Term, Option<NodeId>), PersistError>;
    fn set(&mut self, term: Term, voted_for: Option<NodeId>) -> Result<(), PersistError>;
}

/// The log after the snapshot. Each call returns once its change is durable.
pub trait LogStore: Send + 'static {
    /// The index and term the stored log starts after, and its entries.
    fn load(&self) -> Result<(LogIndex, Term, Vec<Entry>), PersistError>;
    /// Replaces the entries from index `from` on by `entries` (a truncation, an append, or both).
    fn replace_from(&mut self, from: LogIndex, entries: &[Entry]) -> Result<(), PersistError>;
    /// Discards the entries through `index` (whose term is `term`): a snapshot covers them.
    fn compact(&mut self, index: LogIndex, term: Term) -> Result<(), PersistError>;
}

/// The service's snapshot. `save` returns once it is durable.
pub trait SnapshotStore: Send + 'static {
    /// The snapshot (empty if none) and the configuration it covers (`None`: the bootstrap
    /// one, as for no snapshot).
    fn load(&self) -> Result<(Vec<u8>, Option<Membership>), PersistError>;
    /// Saves the snapshot through `index` (of term `term`), with the configuration as of
    /// `index` (`Persist::snapshot_membership`), atomically: never one without the other.
    fn save(
        &mut self,
        index: LogIndex,
        term: Term,
        membership: Option<&Membership>,
        data: &[u8],
    ) -> Result<(), PersistError>;
}

/// Three stores as one [`Storage`].
#[derive(Debug, Default)]
pub struct Stores<L, S, P> {
    pub log: L,
    pub stable: S,
    pub snapshots: P,
}

impl<L: LogStore, S: StableStore, P: SnapshotStore> Storage for Stores<L, S, P> {
    fn load(&self) -> Result<(HardState, Vec<u8>), PersistError> {
        let (term, voted_for) = self.stable.get()?;
        let (index, log_term, entries) = self.log.load()?;
        let (snapshot, membership) = self.snapshots.load()?;
        Ok((
            HardState {
                term,
                voted_for,
                log: RaftLog::from_parts(index, log_term, entries)
                    .with_snapshot_membership(membership),
            },
            snapshot,
        ))
    }

    fn save(&mut self, p: &Persist<'_>) -> Result<(), PersistError> {
        self.stable.set(p.term, p.voted_for)?;
        if let Some(data) = &p.snapshot {
            self.snapshots.save(
                p.snapshot_index,
                p.snapshot_term,
                p.snapshot_membership,
                data,
            )?;
            self.log.compact(p.snapshot_index, p.snapshot_term)?;
        }
        if let Some(from) = p.entries_from {
            self.log.replace_from(from, p.entries)?;
        }
        Ok(())
    }
}

/// A [`StableStore`] in memory.
#[derive(Clone, Debug, Default)]
pub struct MemStableStore {
    term: Term,
    voted_for: Option<NodeId>,
}

impl StableStore for MemStableStore {
    fn get(&self) -> Result<(Term, Option<NodeId>), PersistError> {
        Ok((self.term, self.voted_for))
    }

    fn set(&mut self, term: Term, voted_for: Option<NodeId>) -> Result<(), PersistError> {
        self.term = term;
        self.voted_for = voted_for;
        Ok(())
    }
}

/// A [`LogStore`] in memory.
#[derive(Clone, Debug, Default)]
pub struct MemLogStore {
    after_index: LogIndex,
    after_term: Term,
    entries: Vec<Entry>,
}

impl LogStore for MemLogStore {
    fn load(&self) -> Result<(LogIndex, Term, Vec<Entry>), PersistError> {
        Ok((self.after_index, self.after_term, self.entries.clone()))
    }

    fn replace_from(&mut self, from: LogIndex, entries: &[Entry]) -> Result<(), PersistError> {
        if from.0 <= self.after_index.0 {
            return Err(PersistError::Storage(format!(
                "replace from index {} inside the snapshot (through {})",
                from.0, self.after_index.0
            )));
        }
        let keep = (from.0 - self.after_index.0 - 1) as usize;
        if keep > self.entries.len() {
            return Err(PersistError::Storage(format!(
                "replace from index {} leaves a gap after index {}",
                from.0,
                self.after_index.0 + self.entries.len() as u64
            )));
        }
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    fn compact(&mut self, index: LogIndex, term: Term) -> Result<(), PersistError> {
        if index.0 > self.after_index.0 {
            let drop = ((index.0 - self.after_index.0) as usize).min(self.entries.len());
            let keeps_suffix = self
                .entries
                .get(drop.wrapping_sub(1))
                .is_some_and(|e| e.term == term);
            if keeps_suffix {
                self.entries.drain(..drop);
            } else {
                // The snapshot is not a prefix of this log (InstallSnapshot of a newer one):
                // nothing of it survives.
                self.entries.clear();
            }
            self.after_index = index;
            self.after_term = term;
        }
        Ok(())
    }
}

/// A [`SnapshotStore`] in memory.
#[derive(Clone, Debug, Default)]
pub struct MemSnapshotStore {
    data: Arc<Vec<u8>>,
    membership: Option<Membership>,
}

impl SnapshotStore for MemSnapshotStore {
    fn load(&self) -> Result<(Vec<u8>, Option<Membership>), PersistError> {
        Ok((self.data.as_ref().clone(), self.membership.clone()))
    }

    fn save(
        &mut self,
        _index: LogIndex,
        _term: Term,
        membership: Option<&Membership>,
        data: &[u8],
    ) -> Result<(), PersistError> {
        self.data = Arc::new(data.to_vec());
        self.membership = membership.cloned();
        Ok(())
    }
}

/// The three in-memory stores together.
pub type MemStores = Stores<MemLogStore, MemStableStore, MemSnapshotStore>;
