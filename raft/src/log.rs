//! The replicated log, with the prefix that a snapshot replaced.
//!
//! Indices are global: entry `i` stays entry `i` after compaction. The log remembers the index
//! and term of the last entry the snapshot covers, because AppendEntries' consistency check
//! (section 5.3) may need the term of the entry just before the first one it still stores.

use serde::{Deserialize, Serialize};

use crate::configuration::{EntryKind, Membership};
use crate::types::{LogIndex, Term};

/// One log entry: the term it was created in and the service's opaque command (or, for a
/// configuration entry, the encoded configuration).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub kind: EntryKind,
    /// Encoded as one byte string rather than a sequence of numbers: the same bytes on the
    /// wire, decoded with one copy instead of one call per byte.
    #[serde(with = "serde_bytes")]
    pub command: Vec<u8>,
}

impl Entry {
    /// A command entry.
    pub fn new(term: Term, command: Vec<u8>) -> Entry {
        Entry {
            term,
            kind: EntryKind::Command,
            command,
        }
    }

    /// The configuration a configuration entry holds (`None` for commands and for bytes that
    /// are not a configuration).
    pub fn membership(&self) -> Option<Membership> {
        match self.kind {
            EntryKind::Membership => Membership::decode(&self.command),
            EntryKind::Command => None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    /// Last index covered by the snapshot (0 when there is none).
    snapshot_index: LogIndex,
    snapshot_term: Term,
    /// `entries[k]` has index `snapshot_index + 1 + k`.
    entries: Vec<Entry>,
    /// The entries already encoded for stable storage, and where each one starts in it.
    /// Raft persists its whole log on every change (the labs' `Persister` saves one blob);
    /// re-encoding every entry each time would make a long log quadratic to persist.
    encoded: Vec<u8>,
    starts: Vec<usize>,
    /// The lowest index changed (appended, overwritten or dropped) since the last
    /// [`RaftLog::take_dirty`]: storage that keeps the log incrementally rewrites from there.
    dirty_from: Option<LogIndex>,
    /// The configuration as of the snapshot's last entry (`None`: the bootstrap one).
    snapshot_membership: Option<Membership>,
    /// The configuration entries after the snapshot, in log order (thesis 4.1: a node uses the
    /// latest one, committed or not).
    changes: Vec<(LogIndex, Membership)>,
}

/// Two logs are equal when they hold the same entries after the same snapshot point; the
/// encoding cache and the change tracking are bookkeeping.
impl PartialEq for RaftLog {
    fn eq(&self, other: &Self) -> bool {
        self.snapshot_index == other.snapshot_index
            && self.snapshot_term == other.snapshot_term
            && self.entries == other.entries
            && self.snapshot_membership == other.snapshot_membership
    }
}

impl Eq for RaftLog {}

/// Hashes what equality compares.
impl std::hash::Hash for RaftLog {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.snapshot_index.hash(state);
        self.snapshot_term.hash(state);
        self.entries.hash(state);
        self.snapshot_membership.hash(state);
    }
}

fn encode_entry(entry: &Entry, out: Vec<u8>) -> Vec<u8> {
    // Encoding integers and bytes into a Vec cannot fail; keep `out` intact if it ever did.
    match postcard::to_extend(entry, out) {
        Ok(out) => out,
        Err(_) => unreachable!("encoding a log entry into memory cannot fail"),
    }
}

impl RaftLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_parts(snapshot_index: LogIndex, snapshot_term: Term, entries: Vec<Entry>) -> Self {
        let mut log = RaftLog {
            snapshot_index,
            snapshot_term,
            entries: Vec::with_capacity(entries.len()),
            encoded: Vec::new(),
            starts: Vec::new(),
            dirty_from: None,
            snapshot_membership: None,
            changes: Vec::new(),
        };
        for e in entries {
            log.append(e);
        }
        // A log rebuilt from storage has nothing storage does not already hold.
        log.dirty_from = None;
        log
    }

    /// The same log with the configuration its snapshot covers (restoring from storage).
    pub fn with_snapshot_membership(mut self, membership: Option<Membership>) -> Self {
        self.snapshot_membership = membership;
        self
    }

    /// The configuration as of the snapshot (`None`: the bootstrap configuration).
    pub fn snapshot_membership(&self) -> Option<&Membership> {
        self.snapshot_membership.as_ref()
    }

    /// The latest configuration in the log or, without one, the snapshot's.
    pub fn membership(&self) -> Option<&Membership> {
        self.changes
            .last()
            .map(|(_, m)| m)
            .or(self.snapshot_membership.as_ref())
    }

    /// The index of the latest configuration entry; the snapshot's index (or 0) when the
    /// configuration comes from the snapshot or the bootstrap.
    pub fn membership_index(&self) -> LogIndex {
        match self.changes.last() {
            Some((i, _)) => *i,
            None if self.snapshot_membership.is_some() => self.snapshot_index,
            None => LogIndex(0),
        }
    }

    /// The configuration entries after the snapshot.
    pub fn membership_changes(&self) -> &[(LogIndex, Membership)] {
        &self.changes
    }

    fn mark_dirty(&mut self, from: LogIndex) {
        self.dirty_from = Some(self.dirty_from.map_or(from, |d| d.min(from)));
    }

    /// The lowest index changed since the last call, if any: the stored log must be replaced
    /// from there on by [`RaftLog::entries_from`] (which may be empty after a truncation).
    pub fn take_dirty(&mut self) -> Option<LogIndex> {
        self.dirty_from.take()
    }

    /// The stored entries in their persisted encoding (concatenated, without a length prefix).
    pub fn encoded_entries(&self) -> &[u8] {
        &self.encoded
    }

    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot_index
    }

    pub fn snapshot_term(&self) -> Term {
        self.snapshot_term
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot_index.0 + self.entries.len() as u64)
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    fn offset(&self, index: LogIndex) -> Option<usize> {
        if index <= self.snapshot_index || index > self.last_index() {
            return None;
        }
        usize::try_from(index.0 - self.snapshot_index.0 - 1).ok()
    }

    /// The term of the entry at `index`, if the log still knows it (the snapshot's last entry
    /// counts; earlier compacted entries do not).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.offset(index).map(|k| self.entries[k].term)
    }

    /// The entry at `index`, if it is stored (not compacted, not past the end).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.offset(index).map(|k| &self.entries[k])
    }

    /// Entries from `from` to the end (empty if `from` is past the end).
    ///
    /// # Panics
    /// If `from` is inside the snapshot: the caller must send a snapshot instead.
    pub fn entries_from(&self, from: LogIndex) -> &[Entry] {
        assert!(from > self.snapshot_index, "entries {from}.. are compacted");
        if from > self.last_index() {
            return &[];
        }
        &self.entries[(from.0 - self.snapshot_index.0 - 1) as usize..]
    }

    pub fn append(&mut self, entry: Entry) -> LogIndex {
        self.mark_dirty(self.last_index().next());
        self.starts.push(self.encoded.len());
        self.encoded = encode_entry(&entry, std::mem::take(&mut self.encoded));
        let membership = entry.membership();
        self.entries.push(entry);
        if let Some(m) = membership {
            self.changes.push((self.last_index(), m));
        }
        self.last_index()
    }

    /// Deletes the entry at `from` and all that follow it (Figure 2, AppendEntries step 3).
    pub fn truncate_from(&mut self, from: LogIndex) {
        assert!(
            from > self.snapshot_index,
            "cannot truncate compacted entries"
        );
        if let Some(k) = self.offset(from) {
            self.mark_dirty(from);
            self.entries.truncate(k);
            self.encoded.truncate(self.starts[k]);
            self.starts.truncate(k);
            // A truncated configuration entry no longer counts (thesis 4.1).
            self.changes.retain(|(i, _)| *i < from);
        }
    }

    /// The first index holding an entry of `term`, searching down from `at` (which holds
    /// `term`). Used for the fast backtracking hint.
    pub fn first_index_of_term(&self, term: Term, at: LogIndex) -> LogIndex {
        let mut i = at;
        while i > self.snapshot_index.next() && self.term_at(i.prev()) == Some(term) {
            i = i.prev();
        }
        i
    }

    /// The last index holding an entry of `term`, if the log has one.
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        // Terms never decrease along the log, so scan back from the end.
        let mut i = self.last_index();
        while i >= self.snapshot_index {
            let t = self.term_at(i)?;
            if t == term {
                return Some(i);
            }
            if t < term || i == LogIndex(0) {
                return None;
            }
            i = i.prev();
        }
        None
    }

    /// Discards every entry up to and including `index`, which becomes the snapshot's last
    /// entry with term `term` (section 7). Entries after it are kept if the log has `index`
    /// with that term; otherwise the whole log is replaced by the snapshot.
    pub fn compact(&mut self, index: LogIndex, term: Term) {
        if index <= self.snapshot_index {
            return;
        }
        if self.term_at(index) == Some(term) {
            let k = (index.0 - self.snapshot_index.0) as usize;
            self.entries.drain(..k);
            let cut = self.starts.get(k).copied().unwrap_or(self.encoded.len());
            self.encoded.drain(..cut);
            self.starts.drain(..k);
            for s in &mut self.starts {
                *s -= cut;
            }
            // The configuration as of `index` now belongs to the snapshot.
            let covered = self.changes.partition_point(|(i, _)| *i <= index);
            if let Some((_, m)) = self.changes.drain(..covered).next_back() {
                self.snapshot_membership = Some(m);
            }
        } else {
            self.entries.clear();
            self.encoded.clear();
            self.starts.clear();
            // The log's configurations were of another history; the snapshot's is set by
            // `install_snapshot`.
            self.changes.clear();
            // Nothing after the snapshot survives: storage must drop its suffix too.
            self.mark_dirty(index.next());
        }
        // Changes to entries now inside the snapshot no longer need to be written.
        if self.dirty_from.is_some_and(|d| d <= index) {
            self.dirty_from = Some(index.next());
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Installs a snapshot received from the leader (Figure 13): compacts through `index` as
    /// [`RaftLog::compact`] does, and takes the configuration the snapshot covers.
    pub fn install_snapshot(
        &mut self,
        index: LogIndex,
        term: Term,
        membership: Option<Membership>,
    ) {
        if index <= self.snapshot_index {
            return;
        }
        self.compact(index, term);
        if membership.is_some() {
            self.snapshot_membership = membership;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(terms: &[u64]) -> RaftLog {
        let mut l = RaftLog::new();
        for t in terms {
            l.append(Entry::new(Term(*t), vec![]));
        }
        l
    }

    #[test]
    fn indices_are_one_based_and_survive_compaction() {
        let mut l = log(&[1, 1, 2, 3, 3]);
        assert_eq!(l.last_index(), LogIndex(5));
        assert_eq!(l.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(l.term_at(LogIndex(3)), Some(Term(2)));
        assert_eq!(l.term_at(LogIndex(6)), None);
        l.compact(LogIndex(3), Term(2));
        assert_eq!(l.last_index(), LogIndex(5));
        assert_eq!(l.term_at(LogIndex(3)), Some(Term(2)));
        assert_eq!(l.term_at(LogIndex(2)), None, "compacted");
        assert_eq!(l.entries_from(LogIndex(4)).len(), 2);
        assert_eq!(l.entry(LogIndex(5)).map(|e| e.term), Some(Term(3)));
    }

    #[test]
    fn compacting_past_the_end_replaces_the_log() {
        let mut l = log(&[1, 1]);
        l.compact(LogIndex(10), Term(4));
        assert_eq!(l.last_index(), LogIndex(10));
        assert_eq!(l.last_term(), Term(4));
        assert!(l.entries().is_empty());
    }

    #[test]
    fn compacting_with_a_conflicting_term_discards_the_suffix() {
        let mut l = log(&[1, 1, 2, 2]);
        l.compact(LogIndex(3), Term(3));
        assert_eq!(l.last_index(), LogIndex(3));
        assert_eq!(l.last_term(), Term(3));
    }

    #[test]
    fn term_boundaries_for_fast_backtracking() {
        let l = log(&[1, 1, 4, 4, 4, 5]);
        assert_eq!(l.first_index_of_term(Term(4), LogIndex(5)), LogIndex(3));
        assert_eq!(l.first_index_of_term(Term(1), LogIndex(2)), LogIndex(1));
        assert_eq!(l.last_index_of_term(Term(4)), Some(LogIndex(5)));
        assert_eq!(l.last_index_of_term(Term(2)), None);
        assert_eq!(l.last_index_of_term(Term(6)), None);
    }

    #[test]
    fn dirty_tracking_covers_appends_truncations_and_compaction() {
        let mut l = log(&[1, 1, 1]);
        assert_eq!(l.take_dirty(), Some(LogIndex(1)));
        assert_eq!(l.take_dirty(), None);
        l.truncate_from(LogIndex(3));
        l.append(Entry::new(Term(2), vec![]));
        assert_eq!(l.take_dirty(), Some(LogIndex(3)));
        l.append(Entry::new(Term(2), vec![]));
        l.compact(LogIndex(2), Term(1));
        assert_eq!(
            l.take_dirty(),
            Some(LogIndex(4)),
            "compaction keeps the suffix"
        );
        l.compact(LogIndex(9), Term(5));
        assert_eq!(l.take_dirty(), Some(LogIndex(10)), "the suffix is gone");
        let restored = RaftLog::from_parts(LogIndex(9), Term(5), vec![]);
        assert_eq!(restored.dirty_from, None);
    }

    fn conf(voters: &[u64]) -> Entry {
        Entry {
            term: Term(1),
            kind: EntryKind::Membership,
            command: Membership::voters(voters.iter().map(|v| crate::types::NodeId(*v))).encode(),
        }
    }

    #[test]
    fn configuration_takes_effect_on_append_and_reverts_on_truncation_4_1() {
        let mut l = log(&[1]);
        assert_eq!(l.membership(), None, "bootstrap");
        l.append(conf(&[0, 1]));
        l.append(conf(&[0, 1, 2]));
        assert_eq!(l.membership_index(), LogIndex(3));
        assert_eq!(l.membership().map(|m| m.voters.len()), Some(3));
        l.truncate_from(LogIndex(3));
        assert_eq!(l.membership_index(), LogIndex(2));
        assert_eq!(l.membership().map(|m| m.voters.len()), Some(2));
    }

    #[test]
    fn snapshot_carries_the_configuration_it_covers() {
        let mut l = log(&[1]);
        l.append(conf(&[0, 1]));
        l.append(Entry::new(Term(1), vec![]));
        l.append(conf(&[0, 1, 2]));
        l.compact(LogIndex(3), Term(1));
        assert_eq!(l.snapshot_membership().map(|m| m.voters.len()), Some(2));
        assert_eq!(l.membership().map(|m| m.voters.len()), Some(3));
        l.compact(LogIndex(4), Term(1));
        assert_eq!(l.membership_index(), LogIndex(4));
        assert!(l.membership_changes().is_empty());
        // A snapshot from the leader of another history brings its own configuration.
        l.install_snapshot(
            LogIndex(9),
            Term(3),
            Some(Membership::voters([crate::types::NodeId(7)])),
        );
        assert_eq!(l.membership().map(|m| m.voters.len()), Some(1));
        let restored = RaftLog::from_parts(LogIndex(0), Term(0), vec![conf(&[4])]);
        assert_eq!(restored.membership_index(), LogIndex(1));
    }

    #[test]
    fn truncation_keeps_the_prefix() {
        let mut l = log(&[1, 2, 3]);
        l.truncate_from(LogIndex(2));
        assert_eq!(l.last_index(), LogIndex(1));
        l.truncate_from(LogIndex(9));
        assert_eq!(l.last_index(), LogIndex(1));
    }
}
