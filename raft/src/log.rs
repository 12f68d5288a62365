//! The replicated log, with the prefix that a snapshot replaced.
//!
//! Indices are global: entry `i` stays entry `i` after compaction. The log remembers the index
//! and term of the last entry the snapshot covers, because AppendEntries' consistency check
//! (section 5.3) may need the term of the entry just before the first one it still stores.

use serde::{Deserialize, Serialize};

use crate::types::{LogIndex, Term};

/// One log entry: the term it was created in and the service's opaque command.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    /// Encoded as one byte string rather than a sequence of numbers: the same bytes on the
    /// wire, decoded with one copy instead of one call per byte.
    #[serde(with = "serde_bytes")]
    pub command: Vec<u8>,
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
}

/// Two logs are equal when they hold the same entries after the same snapshot point; the
/// encoding cache and the change tracking are bookkeeping.
impl PartialEq for RaftLog {
    fn eq(&self, other: &Self) -> bool {
        self.snapshot_index == other.snapshot_index
            && self.snapshot_term == other.snapshot_term
            && self.entries == other.entries
    }
}

impl Eq for RaftLog {}

/// Hashes what equality compares.
impl std::hash::Hash for RaftLog {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.snapshot_index.hash(state);
        self.snapshot_term.hash(state);
        self.entries.hash(state);
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
        };
        for e in entries {
            log.append(e);
        }
        // A log rebuilt from storage has nothing storage does not already hold.
        log.dirty_from = None;
        log
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
        self.entries.push(entry);
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
        } else {
            self.entries.clear();
            self.encoded.clear();
            self.starts.clear();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(terms: &[u64]) -> RaftLog {
        let mut l = RaftLog::new();
        for t in terms {
            l.append(Entry {
                term: Term(*t),
                command: vec![],
            });
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
        l.append(Entry {
            term: Term(2),
            command: vec![],
        });
        assert_eq!(l.take_dirty(), Some(LogIndex(3)));
        l.append(Entry {
            term: Term(2),
            command: vec![],
        });
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

    #[test]
    fn truncation_keeps_the_prefix() {
        let mut l = log(&[1, 2, 3]);
        l.truncate_from(LogIndex(2));
        assert_eq!(l.last_index(), LogIndex(1));
        l.truncate_from(LogIndex(9));
        assert_eq!(l.last_index(), LogIndex(1));
    }
}
