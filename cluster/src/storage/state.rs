//! Term, vote and log as the WAL's records build them, kept in memory beside Raft's own copy
//! (to answer `load` and rewrite the WAL), with the checks that keep a save from making the
//! directory impossible to reopen.

use raft::{Entry, LogIndex, NodeId, Term};

use super::Update;
use super::wal::Record;

/// Term, vote and log as the WAL's records build them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct State {
    pub(super) term: Term,
    pub(super) voted_for: Option<NodeId>,
    pub(super) base_index: LogIndex,
    pub(super) base_term: Term,
    /// `entries[k]` has index `base_index + 1 + k`.
    pub(super) entries: Vec<Entry>,
    /// About what the entries take encoded, to decide when the WAL is worth rewriting.
    pub(super) live_bytes: u64,
}

fn entry_bytes(e: &Entry) -> u64 {
    // Term and length varints, at most ten bytes each.
    e.command.len() as u64 + 12
}

impl State {
    pub(super) fn last_index(&self) -> LogIndex {
        LogIndex(self.base_index.0 + self.entries.len() as u64)
    }

    fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        if index < self.base_index {
            return None;
        }
        let k = usize::try_from(index.0 - self.base_index.0 - 1).ok()?;
        self.entries.get(k).map(|e| e.term)
    }

    /// Base and last index after compacting to (`index`, `term`), or why that is impossible.
    fn after_compact(&self, index: LogIndex, term: Term) -> Result<(LogIndex, LogIndex), String> {
        if index < self.base_index {
            return Err(format!(
                "snapshot through {index} is older than the stored one through {}",
                self.base_index
            ));
        }
        if index == self.base_index {
            if term != self.base_term {
                return Err(format!(
                    "snapshot through {index} has term {term}, the stored one term {}",
                    self.base_term
                ));
            }
            return Ok((index, self.last_index()));
        }
        if self.term_at(index) == Some(term) {
            Ok((index, self.last_index()))
        } else if index.0 == u64::MAX {
            // The log would start after the largest index: it could never grow.
            Err(format!(
                "snapshot through {index} leaves no index for the log"
            ))
        } else {
            Ok((index, index))
        }
    }

    /// Entries through `index` are in the snapshot. Later ones survive only if the log has
    /// `index` with `term` (section 7; the same rule as `RaftLog::compact`).
    pub(super) fn compact(&mut self, index: LogIndex, term: Term) -> Result<(), String> {
        self.after_compact(index, term)?;
        if index == self.base_index {
            return Ok(());
        }
        if self.term_at(index) == Some(term) {
            let k = (index.0 - self.base_index.0) as usize;
            let dropped: u64 = self.entries[..k].iter().map(entry_bytes).sum();
            self.entries.drain(..k);
            self.live_bytes -= dropped;
        } else {
            self.entries.clear();
            self.live_bytes = 0;
        }
        self.base_index = index;
        self.base_term = term;
        Ok(())
    }

    /// Whether `n` entries from `from` on fit a log holding `base + 1..=last`. Every index,
    /// and the one after the last, must fit in a u64 (`last < u64::MAX`, as everywhere).
    fn check_from(from: LogIndex, n: usize, base: LogIndex, last: LogIndex) -> Result<(), String> {
        if from <= base || from > last.next() {
            return Err(format!(
                "entries from {from} do not fit a log holding {}..={last}",
                base.next()
            ));
        }
        let fits = u64::try_from(n)
            .ok()
            .and_then(|n| from.0.checked_add(n))
            .is_some();
        if !fits {
            return Err(format!(
                "{n} entries from {from} run past the largest index"
            ));
        }
        Ok(())
    }

    pub(super) fn replace_from(&mut self, from: LogIndex, entries: &[Entry]) -> Result<(), String> {
        Self::check_from(from, entries.len(), self.base_index, self.last_index())?;
        let k = (from.0 - self.base_index.0 - 1) as usize;
        let dropped: u64 = self.entries[k..].iter().map(entry_bytes).sum();
        self.entries.truncate(k);
        self.live_bytes -= dropped;
        self.live_bytes += entries.iter().map(entry_bytes).sum::<u64>();
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    pub(super) fn apply(&mut self, record: &Record<'_>) -> Result<(), String> {
        match record {
            Record::HardState { term, voted_for } => {
                self.term = *term;
                self.voted_for = *voted_for;
                Ok(())
            }
            Record::SnapshotBase { index, term } => self.compact(*index, *term),
            Record::Entries { from, entries } => self.replace_from(*from, entries),
        }
    }

    /// Whether `u` can be applied, checked before anything is written.
    pub(super) fn check(&self, u: &Update<'_>) -> Result<(), String> {
        // A base past the snapshot file would make the directory impossible to reopen.
        if u.snapshot.is_none() && u.snapshot_index != self.base_index {
            return Err(format!(
                "the log moves to start after {} without a snapshot covering it",
                u.snapshot_index
            ));
        }
        let (base, last) = self.after_compact(u.snapshot_index, u.snapshot_term)?;
        if let Some(from) = u.entries_from {
            Self::check_from(from, u.entries.len(), base, last)?;
        }
        Ok(())
    }
}
