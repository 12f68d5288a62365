//! What Raft keeps on stable storage (Figure 2, "Persistent state on all servers": currentTerm,
//! votedFor, log[]), plus where the snapshot's prefix ends, and the storage interface the driver
//! writes it through.

use serde::{Deserialize, Serialize};

use crate::core::Persist;
use crate::log::{Entry, RaftLog};
use crate::types::{LogIndex, NodeId, Term};

/// The fixed-size part of the persistent state; the entries follow it.
#[derive(Serialize)]
struct Header {
    term: Term,
    voted_for: Option<NodeId>,
    snapshot_index: LogIndex,
    snapshot_term: Term,
    entries: usize,
}

/// The persisted layout, as decoded: the header's fields, then the entries as a sequence
/// (which postcard writes as its length followed by the entries, as `encode` does by hand).
#[derive(Deserialize)]
struct StateOwned {
    term: Term,
    voted_for: Option<NodeId>,
    snapshot_index: LogIndex,
    snapshot_term: Term,
    entries: Vec<Entry>,
}

/// The persistent state as the core restores it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<NodeId>,
    pub log: RaftLog,
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("persisted Raft state is corrupt ({len} bytes): {reason}")]
    Corrupt { len: usize, reason: String },
    #[error("storage failed: {0}")]
    Storage(String),
}

/// Encodes term, vote and log. The log keeps its entries encoded as they are appended, so this
/// costs one copy of the log, not a fresh encoding of every entry.
pub(crate) fn encode(term: Term, voted_for: Option<NodeId>, log: &RaftLog) -> Vec<u8> {
    let header = Header {
        term,
        voted_for,
        snapshot_index: log.snapshot_index(),
        snapshot_term: log.snapshot_term(),
        entries: log.entries().len(),
    };
    let body = log.encoded_entries();
    let out = Vec::with_capacity(body.len() + 40);
    // Serializing plain integers into a Vec cannot fail.
    let mut out = postcard::to_extend(&header, out).unwrap_or_default();
    out.extend_from_slice(body);
    out
}

/// Decodes persisted state; empty bytes mean a node that never saved anything.
pub fn decode(bytes: &[u8]) -> Result<HardState, PersistError> {
    if bytes.is_empty() {
        return Ok(HardState::default());
    }
    let s: StateOwned = postcard::from_bytes(bytes).map_err(|e| PersistError::Corrupt {
        len: bytes.len(),
        reason: e.to_string(),
    })?;
    Ok(HardState {
        term: s.term,
        voted_for: s.voted_for,
        log: RaftLog::from_parts(s.snapshot_index, s.snapshot_term, s.entries),
    })
}

/// Stable storage for one node: term, vote, log and snapshot.
///
/// `save` must not return before the data is durable: the driver sends the messages that
/// depend on it (votes, acknowledgements) only after it returns.
pub trait Storage: Send + 'static {
    /// The saved state (default state if none) and snapshot (empty if none).
    fn load(&self) -> Result<(HardState, Vec<u8>), PersistError>;
    /// Saves what changed, atomically with respect to crashes.
    fn save(&mut self, p: &Persist<'_>) -> Result<(), PersistError>;
}

/// The labs' persister saves the whole state as one blob, with the snapshot beside it.
impl Storage for labrpc::Persister {
    fn load(&self) -> Result<(HardState, Vec<u8>), PersistError> {
        Ok((decode(&self.read_raft_state())?, self.read_snapshot()))
    }

    fn save(&mut self, p: &Persist<'_>) -> Result<(), PersistError> {
        match &p.snapshot {
            Some(s) => labrpc::Persister::save(self, p.raft_state(), s.as_ref().clone()),
            None => self.save_raft_state(p.raft_state()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-assembled encoding must be exactly what serde would write for the whole state.
    #[test]
    fn incremental_encoding_matches_serde() {
        #[derive(Serialize)]
        struct Whole<'a> {
            term: Term,
            voted_for: Option<NodeId>,
            snapshot_index: LogIndex,
            snapshot_term: Term,
            entries: &'a [Entry],
        }
        let mut log = RaftLog::new();
        for i in 0..300u64 {
            log.append(Entry {
                term: Term(i / 7 + 1),
                command: vec![i as u8; (i % 13) as usize],
            });
        }
        log.truncate_from(LogIndex(250));
        log.compact(LogIndex(100), Term(15));
        log.append(Entry {
            term: Term(99),
            command: b"after".to_vec(),
        });
        let whole = Whole {
            term: Term(99),
            voted_for: None,
            snapshot_index: log.snapshot_index(),
            snapshot_term: log.snapshot_term(),
            entries: log.entries(),
        };
        let expected = postcard::to_stdvec(&whole).expect("encode");
        assert_eq!(encode(Term(99), None, &log), expected);
        assert_eq!(decode(&expected).expect("decode").log, log);
    }

    #[test]
    fn round_trip_and_corruption_is_an_error() {
        let mut log = RaftLog::from_parts(LogIndex(5), Term(2), vec![]);
        log.append(Entry {
            term: Term(3),
            command: b"x".to_vec(),
        });
        let bytes = encode(Term(3), Some(NodeId(1)), &log);
        let hs = decode(&bytes).expect("round trip");
        assert_eq!(hs.term, Term(3));
        assert_eq!(hs.voted_for, Some(NodeId(1)));
        assert_eq!(hs.log, log);
        assert_eq!(decode(&[]).expect("empty").term, Term(0));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1]),
            Err(PersistError::Corrupt { .. })
        ));
    }
}
