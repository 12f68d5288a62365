//! Property tests of raft's decoders of bytes from outside: the persisted state
//! ([`raft::persist::decode`], what a node reads back from its `Persister` or disk) and the
//! messages ([`raft::Envelope`]) as postcard carries them between labrpc nodes (the TCP
//! cluster's bincode frames are tested in `cluster/tests/all/decode_props.rs`).
//!
//! For each: arbitrary bytes and mutated valid encodings never panic, give a typed error or a
//! value, and allocate at most a bounded amount (measured by a counting allocator); valid
//! values round-trip. The real encoder's round trip is a unit test of `raft/src/persist.rs`.
//! 256 cases per property; `PROPTEST_CASES=N` runs N.

use proptest::prelude::*;
use raft::log::RaftLog;
use raft::message::{
    AppendEntries, AppendEntriesReply, InstallSnapshot, InstallSnapshotReply, RequestVote,
    RequestVoteReply, TimeoutNow, TimeoutNowReply,
};
use raft::persist::{HardState, PersistError, decode};
use raft::{Entry, Envelope, LogIndex, Message, NodeId, Term};
use serde::Serialize;

#[global_allocator]
static ALLOC: testalloc::Tracking = testalloc::Tracking;

/// Damage done to a valid encoding: bit flips, overwritten, inserted and deleted bytes, a cut.
/// Inserted bytes favour huge length prefixes (postcard's and bincode's varints of 2^64 - 1).
mod mutate {
    use proptest::prelude::*;
    use proptest::sample::Index;

    #[derive(Clone, Debug)]
    pub enum Mutation {
        Flip(Index, u8),
        Set(Index, u8),
        Insert(Index, Vec<u8>),
        Delete(Index, usize),
        Truncate(Index),
    }

    /// postcard's varint of `u64::MAX`, bincode's (varint options) and bincode's u32 marker.
    fn huge_lengths() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just([vec![0xff; 9], vec![0x01]].concat()),
            Just([vec![0xfd], vec![0xff; 8]].concat()),
            Just(vec![0xfc, 0xff, 0xff, 0xff, 0x7f]),
            proptest::collection::vec(any::<u8>(), 1..6),
        ]
    }

    pub fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<Index>(), 0..8u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (any::<Index>(), huge_lengths()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            (any::<Index>(), 1..9usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
            any::<Index>().prop_map(Mutation::Truncate),
        ]
    }

    pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
        proptest::collection::vec(mutation(), 1..4)
    }

    pub fn apply(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
        for m in mutations {
            let len = bytes.len();
            match m {
                Mutation::Flip(i, bit) if len > 0 => bytes[i.index(len)] ^= 1 << bit,
                Mutation::Set(i, b) if len > 0 => bytes[i.index(len)] = *b,
                Mutation::Insert(i, b) => {
                    let at = i.index(len + 1);
                    bytes.splice(at..at, b.iter().copied());
                }
                Mutation::Delete(i, n) if len > 0 => {
                    let at = i.index(len);
                    bytes.drain(at..(at + n).min(len));
                }
                Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
                _ => {}
            }
        }
    }
}

/// 256 cases unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => default.cases,
        None => 256,
    };
    ProptestConfig { cases, ..default }
}

/// What decoding `len` bytes may allocate: serde preallocates at most 1 MiB per sequence,
/// and a decoded value is a small multiple of its encoding.
fn bound(len: usize) -> usize {
    (2 << 20) + 64 * len
}

/// Mostly small numbers, sometimes any, sometimes the largest ones.
fn wild() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0..16u64, 1 => any::<u64>(), 1 => (u64::MAX - 16)..=u64::MAX]
}

fn term() -> impl Strategy<Value = Term> {
    wild().prop_map(Term)
}

fn index() -> impl Strategy<Value = LogIndex> {
    wild().prop_map(LogIndex)
}

fn node() -> impl Strategy<Value = NodeId> {
    wild().prop_map(NodeId)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn entry() -> impl Strategy<Value = Entry> {
    (term(), bytes(24)).prop_map(|(term, command)| Entry::new(term, command))
}

fn request_vote() -> impl Strategy<Value = RequestVote> {
    (term(), index(), term(), any::<bool>()).prop_map(|(term, i, t, transfer)| RequestVote {
        term,
        last_log_index: i,
        last_log_term: t,
        transfer,
    })
}

fn request_vote_reply() -> impl Strategy<Value = RequestVoteReply> {
    (term(), any::<bool>()).prop_map(|(term, vote_granted)| RequestVoteReply { term, vote_granted })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        request_vote().prop_map(Message::RequestVote),
        request_vote_reply().prop_map(Message::RequestVoteReply),
        (
            term(),
            index(),
            term(),
            proptest::collection::vec(entry(), 0..6),
            index(),
            wild()
        )
            .prop_map(|(term, pi, pt, entries, commit, round)| {
                Message::AppendEntries(AppendEntries {
                    term,
                    prev_log_index: pi,
                    prev_log_term: pt,
                    entries,
                    leader_commit: commit,
                    round,
                })
            }),
        (
            term(),
            any::<bool>(),
            index(),
            proptest::option::of(term()),
            index(),
            wild()
        )
            .prop_map(|(term, success, m, ct, ci, round)| {
                Message::AppendEntriesReply(AppendEntriesReply {
                    term,
                    success,
                    match_index: m,
                    conflict_term: ct,
                    conflict_index: ci,
                    round,
                })
            }),
        (term(), index(), term(), bytes(64)).prop_map(|(term, i, t, data)| {
            Message::InstallSnapshot(InstallSnapshot {
                term,
                last_included_index: i,
                last_included_term: t,
                // Some snapshots carry a configuration, so it is round-tripped too.
                membership: (i.0 % 2 == 0).then(|| {
                    raft::Membership::voters([raft::NodeId(t.0 % 7), raft::NodeId(i.0 % 5)])
                }),
                data,
            })
        }),
        (term(), index()).prop_map(|(term, i)| {
            Message::InstallSnapshotReply(InstallSnapshotReply {
                term,
                last_included_index: i,
            })
        }),
        request_vote().prop_map(Message::PreVote),
        request_vote_reply().prop_map(Message::PreVoteReply),
        (term(), index()).prop_map(|(term, i)| Message::TimeoutNow(TimeoutNow {
            term,
            last_log_index: i
        })),
        (term(), any::<bool>()).prop_map(|(term, campaigning)| {
            Message::TimeoutNowReply(TimeoutNowReply { term, campaigning })
        }),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (node(), node(), message()).prop_map(|(from, to, msg)| Envelope { from, to, msg })
}

/// Persisted states whose indices all fit (the decoder refuses the others).
fn hard_state() -> impl Strategy<Value = HardState> {
    (
        term(),
        proptest::option::of(node()),
        wild(),
        term(),
        proptest::collection::vec(entry(), 0..12),
    )
        .prop_map(|(term, voted_for, base, base_term, entries)| {
            let base = base.min(u64::MAX - 1 - entries.len() as u64);
            HardState {
                term,
                voted_for,
                log: RaftLog::from_parts(LogIndex(base), base_term, entries)
                    .with_snapshot_membership(
                        (base % 3 == 0)
                            .then(|| raft::Membership::voters([NodeId(base % 5), NodeId(1)])),
                    ),
            }
        })
}

/// The persisted layout, as `raft/src/persist.rs` documents it: what serde writes for the
/// whole state with postcard.
#[derive(Serialize)]
struct Layout<'a> {
    term: Term,
    voted_for: Option<NodeId>,
    snapshot_index: LogIndex,
    snapshot_term: Term,
    snapshot_membership: Option<&'a raft::Membership>,
    entries: &'a [Entry],
}

fn layout(hs: &HardState) -> Vec<u8> {
    postcard::to_stdvec(&Layout {
        term: hs.term,
        voted_for: hs.voted_for,
        snapshot_index: hs.log.snapshot_index(),
        snapshot_term: hs.log.snapshot_term(),
        snapshot_membership: hs.log.snapshot_membership(),
        entries: hs.log.entries(),
    })
    .expect("encode")
}

/// Decodes persisted state under measurement: no panic (proptest reports one as a failure),
/// a typed error or a state whose indices fit, and bounded memory.
fn check_persist_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (result, usage) = testalloc::measure(|| decode(bytes));
    prop_assert!(
        usage.peak <= bound(bytes.len()) && usage.largest <= bound(bytes.len()),
        "decoding {} bytes used {usage:?}",
        bytes.len()
    );
    match result {
        Ok(hs) => {
            let last = hs
                .log
                .snapshot_index()
                .0
                .checked_add(hs.log.entries().len() as u64);
            prop_assert!(last.is_some_and(|l| l < u64::MAX), "indices overflow");
        }
        Err(PersistError::Corrupt { len, .. }) => prop_assert_eq!(len, bytes.len()),
        Err(e) => prop_assert!(false, "unexpected error kind: {e}"),
    }
    Ok(())
}

fn check_envelope_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (result, usage) = testalloc::measure(|| postcard::from_bytes::<Envelope>(bytes));
    prop_assert!(
        usage.peak <= bound(bytes.len()) && usage.largest <= bound(bytes.len()),
        "decoding {} bytes used {usage:?}",
        bytes.len()
    );
    if let Ok(env) = result {
        // Whatever decodes encodes back to a value that decodes to itself.
        let again = postcard::to_stdvec(&env).expect("encode");
        prop_assert_eq!(postcard::from_bytes::<Envelope>(&again).ok(), Some(env));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn persisted_state_from_arbitrary_bytes_is_a_state_or_corrupt(b in bytes(1024)) {
        check_persist_decode(&b)?;
    }

    #[test]
    fn persisted_state_round_trips(hs in hard_state()) {
        let bytes = layout(&hs);
        let back = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, hs);
    }

    #[test]
    fn persisted_state_with_any_indices_decodes_iff_its_log_fits(
        term in term(),
        base in wild(),
        entries in proptest::collection::vec(entry(), 0..4),
    ) {
        let bytes = postcard::to_stdvec(&Layout {
            term,
            voted_for: None,
            snapshot_index: LogIndex(base),
            snapshot_term: term,
            snapshot_membership: None,
            entries: &entries,
        })
        .expect("encode");
        let fits = base.checked_add(entries.len() as u64).is_some_and(|l| l < u64::MAX);
        prop_assert_eq!(decode(&bytes).is_ok(), fits);
        check_persist_decode(&bytes)?;
    }

    #[test]
    fn mutated_persisted_state_is_a_state_or_corrupt(hs in hard_state(), m in mutate::mutations()) {
        let mut bytes = layout(&hs);
        mutate::apply(&mut bytes, &m);
        check_persist_decode(&bytes)?;
    }

    #[test]
    fn envelope_round_trips_through_postcard(env in envelope()) {
        let bytes = postcard::to_stdvec(&env).expect("encode");
        prop_assert_eq!(postcard::from_bytes::<Envelope>(&bytes).ok(), Some(env));
    }

    #[test]
    fn envelope_from_arbitrary_bytes_never_panics(b in bytes(1024)) {
        check_envelope_decode(&b)?;
    }

    #[test]
    fn mutated_envelope_never_panics(env in envelope(), m in mutate::mutations()) {
        let mut bytes = postcard::to_stdvec(&env).expect("encode");
        mutate::apply(&mut bytes, &m);
        check_envelope_decode(&bytes)?;
    }
}

/// postcard's varint of `u64::MAX`.
fn varint_max() -> Vec<u8> {
    [vec![0xff; 9], vec![0x01]].concat()
}

#[test]
fn an_entry_count_of_u64_max_is_corrupt_without_allocating() {
    // term 1, no vote, snapshot (0, 0), then the number of entries.
    let bytes = [vec![1, 0, 0, 0], varint_max()].concat();
    let (result, usage) = testalloc::measure(|| decode(&bytes));
    assert!(
        matches!(result, Err(PersistError::Corrupt { .. })),
        "{result:?}"
    );
    assert!(usage.peak < 1 << 20, "{usage:?}");
}

#[test]
fn regression_a_log_past_the_largest_index_is_corrupt() {
    // A snapshot through u64::MAX followed by one entry: the log's next index overflows.
    let entries = [Entry::new(Term(1), vec![])];
    let bytes = postcard::to_stdvec(&Layout {
        term: Term(1),
        voted_for: None,
        snapshot_index: LogIndex(u64::MAX),
        snapshot_term: Term(1),
        snapshot_membership: None,
        entries: &entries,
    })
    .expect("encode");
    assert!(matches!(decode(&bytes), Err(PersistError::Corrupt { .. })));
}

#[test]
fn huge_entry_counts_and_snapshot_lengths_in_messages_are_errors() {
    // AppendEntries (variant 2) from 0 to 1, term 1, prev (0, 0), then the entry count.
    let append = [vec![0, 1, 2, 1, 0, 0], varint_max()].concat();
    // InstallSnapshot (variant 4): term 1, last included (0, 0), then the data's length.
    let snapshot = [vec![0, 1, 4, 1, 0, 0], varint_max()].concat();
    for bytes in [append, snapshot] {
        let (result, usage) = testalloc::measure(|| postcard::from_bytes::<Envelope>(&bytes));
        assert!(result.is_err(), "{result:?}");
        assert!(usage.peak < 1 << 20, "{usage:?}");
    }
}
