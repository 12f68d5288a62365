//! What Raft keeps on stable storage (Figure 2, "Persistent state on all servers": currentTerm,
//! votedFor, log[]), plus where the snapshot's prefix ends, and the storage interface the driver
//! writes it through.

use serde::{Deserialize, Serialize};

use crate::configuration::Membership;
use crate::core::Persist;
use crate::log::{Entry, RaftLog};
use crate::types::{LogIndex, NodeId, Term};

/// The fixed-size part of the persistent state; the entries follow it.
#[derive(Serialize)]
struct Header<'a> {
    term: Term,
    voted_for: Option<NodeId>,
    snapshot_index: LogIndex,
    snapshot_term: Term,
    snapshot_membership: Option<&'a Membership>,
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
    snapshot_membership: Option<Membership>,
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
        snapshot_membership: log.snapshot_membership(),
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
    let corrupt = |reason: String| PersistError::Corrupt {
        len: bytes.len(),
        reason,
    };
    let s: StateOwned = postcard::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
    // Every index the log uses, and the one after its last, must fit in a u64: the core
    // computes `last_index + 1`, which would overflow (a panic, or in a release build a log
    // wrapping around to index 0).
    let fits = u64::try_from(s.entries.len())
        .ok()
        .and_then(|n| s.snapshot_index.0.checked_add(n))
        .is_some_and(|last| last < u64::MAX);
    if !fits {
        return Err(corrupt(format!(
            "a log of {} entries after index {} runs past the largest index",
            s.entries.len(),
            s.snapshot_index
        )));
    }
    Ok(HardState {
        term: s.term,
        voted_for: s.voted_for,
        log: RaftLog::from_parts(s.snapshot_index, s.snapshot_term, s.entries)
            .with_snapshot_membership(s.snapshot_membership),
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
            Some(s) => self.save_shared(p.raft_state(), s.clone()),
            None => self.save_raft_state(p.raft_state()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Whole<'a> {
        term: Term,
        voted_for: Option<NodeId>,
        snapshot_index: LogIndex,
        snapshot_term: Term,
        snapshot_membership: Option<Membership>,
        entries: &'a [Entry],
    }

    /// The hand-assembled encoding must be exactly what serde would write for the whole state.
    #[test]
    fn incremental_encoding_matches_serde() {
        let mut log = RaftLog::new();
        for i in 0..300u64 {
            log.append(Entry::new(
                Term(i / 7 + 1),
                vec![i as u8; (i % 13) as usize],
            ));
        }
        log.truncate_from(LogIndex(250));
        log.compact(LogIndex(100), Term(15));
        log.append(Entry::new(Term(99), b"after".to_vec()));
        let whole = Whole {
            term: Term(99),
            voted_for: None,
            snapshot_index: log.snapshot_index(),
            snapshot_term: log.snapshot_term(),
            snapshot_membership: None,
            entries: log.entries(),
        };
        let expected = postcard::to_stdvec(&whole).expect("encode");
        assert_eq!(encode(Term(99), None, &log), expected);
        assert_eq!(decode(&expected).expect("decode").log, log);
    }

    #[test]
    fn round_trip_and_corruption_is_an_error() {
        let mut log = RaftLog::from_parts(LogIndex(5), Term(2), vec![]);
        log.append(Entry::new(Term(3), b"x".to_vec()));
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

    #[test]
    fn regression_a_log_running_past_u64_max_is_corrupt() {
        // Decoded whole, this used to build a log whose last index + 1 overflowed.
        for (index, n) in [(u64::MAX, 1usize), (u64::MAX - 1, 1), (u64::MAX - 2, 2)] {
            let entries = vec![Entry::new(Term(1), vec![]); n];
            let whole = Whole {
                term: Term(1),
                voted_for: None,
                snapshot_index: LogIndex(index),
                snapshot_term: Term(1),
                snapshot_membership: None,
                entries: &entries,
            };
            let bytes = postcard::to_stdvec(&whole).expect("encode");
            assert!(
                matches!(decode(&bytes), Err(PersistError::Corrupt { .. })),
                "index {index}, {n} entries"
            );
        }
        // The largest log that fits still decodes.
        let whole = Whole {
            term: Term(1),
            voted_for: None,
            snapshot_index: LogIndex(u64::MAX - 1),
            snapshot_term: Term(1),
            snapshot_membership: None,
            entries: &[],
        };
        let bytes = postcard::to_stdvec(&whole).expect("encode");
        assert_eq!(
            decode(&bytes).expect("fits").log.last_index(),
            LogIndex(u64::MAX - 1)
        );
    }

    /// Property tests of the real encoder (the decoder's robustness is in
    /// `raft/tests/all/decode_props.rs`).
    mod props {
        use super::*;
        use proptest::prelude::*;

        /// 256 cases unless `PROPTEST_CASES` says otherwise.
        fn config() -> ProptestConfig {
            let default = ProptestConfig::default();
            let cases = match std::env::var_os("PROPTEST_CASES") {
                Some(_) => default.cases,
                None => 256,
            };
            ProptestConfig { cases, ..default }
        }

        /// What can happen to a log: the three ways the core changes it.
        #[derive(Clone, Debug)]
        enum Change {
            Append(u64, Vec<u8>),
            TruncateFrom(u64),
            Compact(u64, bool),
        }

        fn change() -> impl Strategy<Value = Change> {
            prop_oneof![
                4 => (0..9u64, proptest::collection::vec(any::<u8>(), 0..12))
                    .prop_map(|(t, c)| Change::Append(t, c)),
                1 => (0..40u64).prop_map(Change::TruncateFrom),
                1 => (0..40u64, any::<bool>()).prop_map(|(i, keep)| Change::Compact(i, keep)),
            ]
        }

        /// A log built by a sequence of appends, truncations and compactions, so that its
        /// encoding cache has been cut and shifted the ways the core does it.
        fn log() -> impl Strategy<Value = RaftLog> {
            (0..5u64, proptest::collection::vec(change(), 0..40)).prop_map(|(base, changes)| {
                let mut log = RaftLog::from_parts(LogIndex(base), Term(base), vec![]);
                for c in changes {
                    match c {
                        Change::Append(t, command) => {
                            log.append(Entry::new(Term(t), command));
                        }
                        Change::TruncateFrom(i) => {
                            let from = LogIndex(log.snapshot_index().0 + 1 + i);
                            log.truncate_from(from);
                        }
                        Change::Compact(i, keep) => {
                            let index = LogIndex(log.snapshot_index().0 + i);
                            let term = match (keep, log.term_at(index)) {
                                (true, Some(t)) => t,
                                (_, t) => Term(t.map_or(0, |t| t.0) + 1),
                            };
                            log.compact(index, term);
                        }
                    }
                }
                log
            })
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn encode_then_decode_gives_the_same_state(
                term in any::<u64>(),
                voted_for in proptest::option::of(any::<u64>()),
                log in log(),
            ) {
                let (term, voted_for) = (Term(term), voted_for.map(NodeId));
                let bytes = encode(term, voted_for, &log);
                let hs = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(hs, HardState { term, voted_for, log: log.clone() });
                let whole = Whole {
                    term,
                    voted_for,
                    snapshot_index: log.snapshot_index(),
                    snapshot_term: log.snapshot_term(),
            snapshot_membership: None,
                    entries: log.entries(),
                };
                prop_assert_eq!(bytes, postcard::to_stdvec(&whole).expect("encode"));
            }
        }
    }
}
