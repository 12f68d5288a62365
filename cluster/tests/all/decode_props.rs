//! Property tests of the cluster's decoders of bytes from outside:
//!
//! - the data directory ([`DiskStorage::open`]): the WAL's frames and records, the snapshot
//!   file, the cluster-id file ([`storage::read_cluster_id`]);
//! - the wire: tarpc's bincode frames of the node's service, decoded as the server does
//!   ([`wire::decode_request`]) and as clients do ([`wire::decode`]);
//! - the command bytes inside them: kvraft's [`KvCommand`] and outputs (postcard), and the KV
//!   store's snapshot ([`Store::restore`]).
//!
//! For each: arbitrary bytes and mutated valid encodings never panic, give a typed error or a
//! value, and allocate at most a bounded amount (measured by a counting allocator); valid
//! values round-trip. A data directory that opens must open again to the same state (the
//! repair of a torn tail is itself readable). 256 cases per property (64 for those writing
//! directories); `PROPTEST_CASES=N` runs N.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cluster::rpc::{
    MembershipFailure, MembershipStatus, NodeStatus, PeerContact, RaftKvRequest, RaftKvResponse,
    SubmitFailure, TransferFailure, WrongCluster,
};
use cluster::storage::{self, DiskStorage, Options, SNAPSHOT_FILE, StorageError, Update, WAL_FILE};
use cluster::wire;
use kvraft::common::KvCommand;
use kvraft::{OpKind, Store};
use proptest::prelude::*;
use proptest::sample::Index;
use raft::log::RaftLog;
use raft::message::{AppendEntries, InstallSnapshot, RequestVote, RequestVoteReply};
use raft::{Entry, Envelope, HardState, LogIndex, Membership, Message, NodeId, Term};
use rsm::{Session, StateMachine, SubmitError};
use serde::Serialize;
use tarpc::{ClientMessage, Request, Response, ServerError};

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

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => default.cases,
        None => cases,
    };
    ProptestConfig { cases, ..default }
}

/// What decoding `len` bytes may allocate: serde preallocates at most 1 MiB per sequence,
/// and a decoded value is a small multiple of its encoding.
fn bound(len: usize) -> usize {
    (4 << 20) + 64 * len
}

fn within_bound(usage: testalloc::Usage, len: usize) -> Result<(), TestCaseError> {
    prop_assert!(
        usage.peak <= bound(len) && usage.largest <= bound(len),
        "decoding {len} bytes used {usage:?}"
    );
    Ok(())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Mostly small numbers, sometimes any, sometimes the largest ones.
fn wild() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0..16u64, 1 => any::<u64>(), 1 => (u64::MAX - 16)..=u64::MAX]
}

fn entry() -> impl Strategy<Value = Entry> {
    (wild(), bytes(24)).prop_map(|(t, command)| Entry::new(Term(t), command))
}

// ---------------------------------------------------------------------------------------------
// The data directory

/// A fresh directory (in memory under /dev/shm where there is one: the storage syncs every
/// write), removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        let path = base.join(format!("raftlab-props-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One save, as the Raft core makes them.
#[derive(Clone, Debug)]
enum Op {
    Vote(u64, Option<u64>),
    /// Replace the last `back` entries (at most) by these.
    Append(u64, Vec<Entry>),
    /// A snapshot through a point of the log, or `Some(k)`: `k` entries past its end; with a
    /// new configuration as of its index, or (`None`) the previous snapshot's.
    Snapshot(Index, Option<u64>, Vec<u8>, Option<Membership>),
}

/// A configuration: a few voters (possibly joint) and learners, disjoint as the core keeps them.
fn membership() -> impl Strategy<Value = Membership> {
    (
        proptest::collection::btree_set(0..7u64, 1..4),
        proptest::collection::btree_set(0..7u64, 0..3),
        proptest::collection::btree_set(0..7u64, 0..3),
    )
        .prop_map(|(voters, outgoing, learners)| {
            let voters: std::collections::BTreeSet<NodeId> =
                voters.into_iter().map(NodeId).collect();
            Membership {
                learners: learners
                    .into_iter()
                    .map(NodeId)
                    .filter(|l| !voters.contains(l))
                    .collect(),
                outgoing: outgoing.into_iter().map(NodeId).collect(),
                voters,
            }
        })
}

fn small_entry() -> impl Strategy<Value = Entry> {
    (0..6u64, bytes(16)).prop_map(|(t, command)| Entry::new(Term(t), command))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..9u64, proptest::option::of(0..5u64)).prop_map(|(t, v)| Op::Vote(t, v)),
        4 => (0..4u64, proptest::collection::vec(small_entry(), 0..6))
            .prop_map(|(back, e)| Op::Append(back, e)),
        1 => (
            any::<Index>(),
            proptest::option::of(0..4u64),
            bytes(48),
            proptest::option::of(membership()),
        )
            .prop_map(|(at, past, data, m)| Op::Snapshot(at, past, data, m)),
    ]
}

fn options() -> impl Strategy<Value = Options> {
    (0..2048u64, 1..5u64).prop_map(|(rewrite_min_bytes, rewrite_ratio)| Options {
        rewrite_min_bytes,
        rewrite_ratio,
    })
}

/// What a valid directory holds: the state and snapshot it was last saved with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Saved {
    term: Term,
    voted_for: Option<NodeId>,
    log: RaftLog,
    snapshot: Vec<u8>,
}

/// Saves `ops` through [`DiskStorage::save_update`] (each a valid update, built the way the
/// core builds them), tracking what the directory must then hold.
fn write_valid(dir: &Path, options: Options, ops: &[Op]) -> Saved {
    let mut disk = DiskStorage::open_with(dir, options).expect("open a fresh directory");
    let mut s = Saved::default();
    for op in ops {
        let mut snapshot = None;
        match op {
            Op::Vote(t, v) => {
                s.term = Term(*t);
                s.voted_for = v.map(NodeId);
            }
            Op::Append(back, entries) => {
                let base = s.log.snapshot_index().0;
                let from = s.log.last_index().0.saturating_sub(*back).max(base) + 1;
                s.log.truncate_from(LogIndex(from));
                for e in entries {
                    s.log.append(e.clone());
                }
            }
            Op::Snapshot(at, past, data, m) => {
                let (base, last) = (s.log.snapshot_index().0, s.log.last_index().0);
                let (index, term) = match past {
                    Some(k) => (last + 1 + k, Term(s.log.last_term().0 + 1)),
                    None => {
                        let i = LogIndex(base + at.index((last - base + 1) as usize) as u64);
                        (i.0, s.log.term_at(i).expect("inside the log"))
                    }
                };
                s.log.compact(LogIndex(index), term);
                if let Some(m) = m {
                    s.log = std::mem::take(&mut s.log).with_snapshot_membership(Some(m.clone()));
                }
                s.snapshot = data.clone();
                snapshot = Some(Arc::new(data.clone()));
            }
        }
        let entries_from = s.log.take_dirty();
        let update = Update {
            term: s.term,
            voted_for: s.voted_for,
            entries_from,
            entries: entries_from.map_or(&[][..], |f| s.log.entries_from(f)),
            snapshot,
            snapshot_index: s.log.snapshot_index(),
            snapshot_term: s.log.snapshot_term(),
            snapshot_membership: s.log.snapshot_membership(),
        };
        disk.save_update(&update).expect("a valid update saves");
    }
    s
}

fn loaded(disk: &DiskStorage) -> Result<Saved, TestCaseError> {
    let (hs, snapshot) = disk
        .load_state()
        .map_err(|e| TestCaseError::fail(format!("load after a successful open: {e}")))?;
    let HardState {
        term,
        voted_for,
        log,
    } = hs;
    Ok(Saved {
        term,
        voted_for,
        log,
        snapshot,
    })
}

/// Opens `dir` under measurement: no panic, a typed error or a state, bounded memory. A
/// directory that opened must open again to the same state. `input` is how many bytes the
/// directory's files hold.
fn check_open(dir: &Path, input: usize) -> Result<Option<Saved>, TestCaseError> {
    let (result, usage) = testalloc::measure(|| DiskStorage::open(dir).map(|d| (loaded(&d), d)));
    within_bound(usage, input)?;
    let first = match result {
        Ok((state, disk)) => {
            drop(disk);
            state?
        }
        Err(StorageError::Corrupt { .. } | StorageError::Io { .. } | StorageError::Invalid(_)) => {
            return Ok(None);
        }
        Err(e) => return Err(TestCaseError::fail(format!("unexpected error: {e}"))),
    };
    let last = first
        .log
        .snapshot_index()
        .0
        .checked_add(first.log.entries().len() as u64);
    prop_assert!(
        last.is_some_and(|l| l < u64::MAX),
        "the log's indices overflow"
    );
    let again = DiskStorage::open(dir).map_err(|e| {
        TestCaseError::fail(format!("a directory that opened fails to reopen: {e}"))
    })?;
    prop_assert_eq!(&loaded(&again)?, &first, "reopening gives another state");
    Ok(Some(first))
}

fn files_len(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len() as usize)
            .sum()
    })
}

/// The WAL's records, as `cluster/src/storage/wal.rs` lays them out (same variants, same
/// order), to write frames with records no valid save produces.
#[derive(Clone, Debug, Serialize)]
enum Record {
    HardState {
        term: Term,
        voted_for: Option<NodeId>,
    },
    SnapshotBase {
        index: LogIndex,
        term: Term,
    },
    Entries {
        from: LogIndex,
        entries: Vec<Entry>,
    },
}

const WAL_MAGIC: &[u8; 8] = b"RLWAL001";
const SNAPSHOT_MAGIC: &[u8; 8] = b"RLSNAP02";

/// One frame: `len u32 | payload crc32 | header crc32 | payload`, with valid checksums.
fn frame(records: &[Record]) -> Vec<u8> {
    let payload = postcard::to_stdvec(records).expect("encode");
    let mut out = Vec::new();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out[..8]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// A snapshot file with a valid checksum, holding `conf` as its configuration's bytes.
fn snapshot_file(index: u64, term: u64, conf: &[u8], data: &[u8]) -> Vec<u8> {
    let mut fields = Vec::new();
    fields.extend_from_slice(&index.to_le_bytes());
    fields.extend_from_slice(&term.to_le_bytes());
    fields.extend_from_slice(&(conf.len() as u32).to_le_bytes());
    fields.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&fields);
    h.update(conf);
    h.update(data);
    [
        &SNAPSHOT_MAGIC[..],
        &fields,
        &h.finalize().to_le_bytes(),
        conf,
        data,
    ]
    .concat()
}

/// A snapshot file's configuration bytes: none, a valid one, or any bytes.
fn conf_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        membership().prop_map(|m| m.encode()),
        bytes(12),
    ]
}

/// Indices near 0 and near the top, where records meet or overflow.
fn edge() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..6u64,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => (u64::MAX - 6)..=u64::MAX,
    ]
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (wild(), proptest::option::of(wild())).prop_map(|(t, v)| Record::HardState {
            term: Term(t),
            voted_for: v.map(NodeId),
        }),
        (edge(), wild()).prop_map(|(i, t)| Record::SnapshotBase {
            index: LogIndex(i),
            term: Term(t),
        }),
        (edge(), proptest::collection::vec(entry(), 0..4)).prop_map(|(f, entries)| {
            Record::Entries {
                from: LogIndex(f),
                entries,
            }
        }),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("mkdir");
    fs::write(dir.join(name), bytes).expect("write");
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Wal,
    Snapshot,
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn saved_state_round_trips_through_the_directory(
        options in options(),
        ops in proptest::collection::vec(op(), 0..24),
    ) {
        let dir = TempDir::new();
        let saved = write_valid(dir.path(), options, &ops);
        let reopened = check_open(dir.path(), files_len(dir.path()))?;
        prop_assert_eq!(reopened, Some(saved));
    }

    #[test]
    fn mutated_storage_files_open_or_fail_with_a_typed_error(
        ops in proptest::collection::vec(op(), 1..16),
        target in prop_oneof![Just(Target::Wal), Just(Target::Snapshot)],
        m in mutate::mutations(),
    ) {
        let dir = TempDir::new();
        write_valid(dir.path(), Options::default(), &ops);
        let name = match target {
            Target::Wal => WAL_FILE,
            Target::Snapshot => SNAPSHOT_FILE,
        };
        let path = dir.path().join(name);
        if let Ok(mut bytes) = fs::read(&path) {
            mutate::apply(&mut bytes, &m);
            fs::write(&path, &bytes).expect("write");
        }
        check_open(dir.path(), files_len(dir.path()))?;
    }

    #[test]
    fn arbitrary_wal_bytes_open_or_fail_with_a_typed_error(
        magic in any::<bool>(),
        b in bytes(1024),
    ) {
        let dir = TempDir::new();
        let wal = if magic { [&WAL_MAGIC[..], &b].concat() } else { b };
        write(dir.path(), WAL_FILE, &wal);
        check_open(dir.path(), wal.len())?;
    }

    #[test]
    fn frames_of_any_records_open_or_fail_with_a_typed_error(
        frames in proptest::collection::vec(proptest::collection::vec(record(), 1..4), 0..5),
        snapshot in proptest::option::of((edge(), wild(), conf_bytes(), bytes(16))),
    ) {
        let dir = TempDir::new();
        let mut wal = WAL_MAGIC.to_vec();
        for f in &frames {
            wal.extend(frame(f));
        }
        write(dir.path(), WAL_FILE, &wal);
        if let Some((index, term, conf, data)) = &snapshot {
            write(dir.path(), SNAPSHOT_FILE, &snapshot_file(*index, *term, conf, data));
        }
        check_open(dir.path(), files_len(dir.path()))?;
    }

    #[test]
    fn arbitrary_snapshot_files_open_or_fail_with_a_typed_error(
        header in any::<bool>(),
        b in bytes(512),
    ) {
        let dir = TempDir::new();
        write_valid(dir.path(), Options::default(), &[]);
        let file = if header { [&SNAPSHOT_MAGIC[..], &b].concat() } else { b };
        write(dir.path(), SNAPSHOT_FILE, &file);
        check_open(dir.path(), files_len(dir.path()))?;
    }

    #[test]
    fn cluster_id_files_are_an_id_or_corrupt(b in bytes(64)) {
        let dir = TempDir::new();
        write(dir.path(), storage::CLUSTER_ID_FILE, &b);
        match storage::read_cluster_id(dir.path()) {
            Ok(Some(_)) => {}
            Ok(None) => prop_assert!(false, "the file exists"),
            Err(StorageError::Corrupt { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error: {e}"),
        }
    }

    #[test]
    fn cluster_ids_round_trip(id in any::<u64>()) {
        let dir = TempDir::new();
        storage::write_cluster_id(dir.path(), id).expect("write");
        prop_assert_eq!(storage::read_cluster_id(dir.path()).ok(), Some(Some(id)));
    }
}

// ---------------------------------------------------------------------------------------------
// The wire

fn node() -> impl Strategy<Value = NodeId> {
    wild().prop_map(NodeId)
}

fn request_vote() -> impl Strategy<Value = RequestVote> {
    (wild(), wild(), wild(), any::<bool>()).prop_map(|(t, i, lt, transfer)| RequestVote {
        term: Term(t),
        last_log_index: LogIndex(i),
        last_log_term: Term(lt),
        transfer,
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        request_vote().prop_map(Message::RequestVote),
        request_vote().prop_map(Message::PreVote),
        (wild(), any::<bool>()).prop_map(|(t, vote_granted)| {
            Message::RequestVoteReply(RequestVoteReply {
                term: Term(t),
                vote_granted,
            })
        }),
        (
            wild(),
            wild(),
            wild(),
            proptest::collection::vec(entry(), 0..5),
            wild(),
            wild()
        )
            .prop_map(|(t, pi, pt, entries, c, round)| {
                Message::AppendEntries(AppendEntries {
                    term: Term(t),
                    prev_log_index: LogIndex(pi),
                    prev_log_term: Term(pt),
                    entries,
                    leader_commit: LogIndex(c),
                    round,
                })
            }),
        (wild(), wild(), wild(), bytes(64)).prop_map(|(t, i, lt, data)| {
            Message::InstallSnapshot(InstallSnapshot {
                term: Term(t),
                last_included_index: LogIndex(i),
                last_included_term: Term(lt),
                membership: None,
                data,
            })
        }),
    ]
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (node(), node(), message()).prop_map(|(from, to, msg)| Envelope { from, to, msg })
}

fn session() -> impl Strategy<Value = Session> {
    (wild(), wild()).prop_map(|(client, seq)| Session { client, seq })
}

fn request() -> impl Strategy<Value = RaftKvRequest> {
    prop_oneof![
        Just(()).prop_map(|()| RaftKvRequest::ClusterId {}),
        (any::<u64>(), envelope()).prop_map(|(cluster, env)| RaftKvRequest::Step { cluster, env }),
        (any::<u64>(), proptest::option::of(session()), bytes(48)).prop_map(
            |(cluster, session, command)| RaftKvRequest::Submit {
                cluster,
                session,
                command,
            }
        ),
        (any::<u64>(), bytes(48))
            .prop_map(|(cluster, command)| RaftKvRequest::Read { cluster, command }),
        (any::<u64>(), wild()).prop_map(|(cluster, to)| RaftKvRequest::Transfer { cluster, to }),
        any::<u64>().prop_map(|cluster| RaftKvRequest::Status { cluster }),
        (any::<u64>(), wild(), any::<([u8; 4], u16)>()).prop_map(|(cluster, id, (ip, port))| {
            RaftKvRequest::AddPeer {
                cluster,
                id,
                addr: std::net::SocketAddr::from((ip, port)),
            }
        }),
        (any::<u64>(), conf_change())
            .prop_map(|(cluster, change)| RaftKvRequest::ChangeMembership { cluster, change }),
        any::<u64>().prop_map(|cluster| RaftKvRequest::Retire { cluster }),
    ]
}

fn wrong_cluster() -> impl Strategy<Value = WrongCluster> {
    (any::<u64>(), any::<u64>()).prop_map(|(expected, got)| WrongCluster { expected, got })
}

fn submit_failure() -> impl Strategy<Value = SubmitFailure> {
    prop_oneof![
        Just(SubmitFailure::Retry(SubmitError::NotLeader)),
        Just(SubmitFailure::Retry(SubmitError::Lost)),
        Just(SubmitFailure::Retry(SubmitError::Timeout)),
        ".{0,20}".prop_map(SubmitFailure::BadCommand),
        Just(SubmitFailure::NotLeader { leader: None }),
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SubmitFailure::NotLeader {
            leader: Some(std::net::SocketAddr::from((ip, port)))
        }),
    ]
}

fn transfer_failure() -> impl Strategy<Value = TransferFailure> {
    prop_oneof![
        (wild(), proptest::option::of(wild()))
            .prop_map(|(at, hint)| TransferFailure::NotLeader { at, hint }),
        wild().prop_map(TransferFailure::UnknownNode),
        wild().prop_map(TransferFailure::AlreadyLeader),
        wild().prop_map(TransferFailure::InProgress),
    ]
}

fn node_status() -> impl Strategy<Value = NodeStatus> {
    let peer = (
        wild(),
        proptest::option::of(wild()),
        proptest::option::of(wild()),
    )
        .prop_map(|(id, heard_ms_ago, unreachable_ms)| PeerContact {
            id,
            heard_ms_ago,
            unreachable_ms,
        });
    (
        (
            wild(),
            any::<u32>(),
            "[a-z]{0,10}",
            wild(),
            proptest::option::of(wild()),
        ),
        (wild(), wild(), wild(), wild(), wild()),
        (
            proptest::option::of((wild(), wild())),
            proptest::collection::vec(peer, 0..5),
            proptest::option::of(wild()),
            any::<(bool, bool, bool)>(),
        ),
        membership_status(),
    )
        .prop_map(
            |(
                (id, pid, role, term, leader),
                (commit, applied, last_index, snapshot_index, log_bytes),
                (leader_contact, peers, transferring_to, (pre_vote, check_quorum, lease_reads)),
                membership,
            )| NodeStatus {
                id,
                pid,
                role,
                term,
                leader,
                commit,
                applied,
                last_index,
                snapshot_index,
                log_bytes,
                leader_contact,
                peers,
                transferring_to,
                pre_vote,
                check_quorum,
                lease_reads,
                membership,
            },
        )
}

fn membership_status() -> impl Strategy<Value = MembershipStatus> {
    let ids = || proptest::collection::vec(wild(), 0..4);
    (ids(), ids(), ids(), wild()).prop_map(|(voters, outgoing, learners, index)| MembershipStatus {
        voters,
        outgoing,
        learners,
        index,
    })
}

fn conf_change() -> impl Strategy<Value = raft::ConfChange> {
    use raft::ConfChange;
    let set = || proptest::collection::btree_set(wild().prop_map(NodeId), 0..4);
    prop_oneof![
        wild().prop_map(|n| ConfChange::AddVoter(NodeId(n))),
        wild().prop_map(|n| ConfChange::AddLearner(NodeId(n))),
        wild().prop_map(|n| ConfChange::Remove(NodeId(n))),
        (set(), set()).prop_map(|(voters, learners)| ConfChange::Replace { voters, learners }),
    ]
}

fn membership_failure() -> impl Strategy<Value = MembershipFailure> {
    prop_oneof![
        (wild(), proptest::option::of(wild()))
            .prop_map(|(at, hint)| MembershipFailure::NotLeader { at, hint }),
        Just(MembershipFailure::NotCommittedInTerm),
        wild().prop_map(MembershipFailure::InProgress),
        (wild(), wild(), wild()).prop_map(|(node, behind, lag)| MembershipFailure::Behind {
            node,
            behind,
            lag
        }),
        wild().prop_map(MembershipFailure::NoChange),
        wild().prop_map(MembershipFailure::NotMember),
        (wild(), ".{0,12}").prop_map(|(index, why)| MembershipFailure::Unknown { index, why }),
        ".{0,12}".prop_map(MembershipFailure::Busy),
        ".{0,12}".prop_map(MembershipFailure::Refused),
    ]
}

fn outcome() -> impl Strategy<Value = Result<Result<Vec<u8>, SubmitFailure>, WrongCluster>> {
    prop_oneof![
        bytes(48).prop_map(|b| Ok(Ok(b))),
        submit_failure().prop_map(|f| Ok(Err(f))),
        wrong_cluster().prop_map(Err),
    ]
}

fn response() -> impl Strategy<Value = Response<RaftKvResponse>> {
    let body = prop_oneof![
        any::<u64>().prop_map(RaftKvResponse::ClusterId),
        prop_oneof![
            proptest::option::of(envelope()).prop_map(Ok),
            wrong_cluster().prop_map(Err)
        ]
        .prop_map(RaftKvResponse::Step),
        outcome().prop_map(RaftKvResponse::Submit),
        outcome().prop_map(RaftKvResponse::Read),
        prop_oneof![
            Just(Ok(Ok(()))),
            transfer_failure().prop_map(|f| Ok(Err(f))),
            wrong_cluster().prop_map(Err),
        ]
        .prop_map(RaftKvResponse::Transfer),
        prop_oneof![node_status().prop_map(Ok), wrong_cluster().prop_map(Err)]
            .prop_map(RaftKvResponse::Status),
        prop_oneof![Just(Ok(())), wrong_cluster().prop_map(Err)].prop_map(RaftKvResponse::AddPeer),
        prop_oneof![
            wild().prop_map(|i| Ok(Ok(i))),
            membership_failure().prop_map(|f| Ok(Err(f))),
            wrong_cluster().prop_map(Err),
        ]
        .prop_map(RaftKvResponse::ChangeMembership),
        prop_oneof![
            Just(Ok(Ok(()))),
            ".{0,12}".prop_map(|e| Ok(Err(e))),
            wrong_cluster().prop_map(Err),
        ]
        .prop_map(RaftKvResponse::Retire),
    ];
    let message = prop_oneof![
        4 => body.prop_map(Ok),
        1 => (0..20u32, ".{0,20}").prop_map(|(k, detail)| {
            let kinds = [std::io::ErrorKind::NotFound, std::io::ErrorKind::TimedOut,
                         std::io::ErrorKind::InvalidData, std::io::ErrorKind::Other];
            Err(ServerError::new(kinds[k as usize % kinds.len()], detail))
        }),
    ];
    (any::<u64>(), message).prop_map(|(request_id, message)| Response {
        request_id,
        message,
    })
}

/// A request frame as a client sends it, with a deadline `deadline_ms` from now.
// Real time, outside any simulation: tarpc's deadlines are wall-clock instants.
#[allow(clippy::disallowed_methods)]
fn client_message(
    id: u64,
    deadline_ms: u64,
    message: RaftKvRequest,
) -> ClientMessage<RaftKvRequest> {
    let mut context = tarpc::context::current();
    context.deadline = Instant::now() + Duration::from_millis(deadline_ms);
    ClientMessage::Request(Request {
        context,
        id,
        message,
    })
}

/// Decodes a request frame as the server does, under measurement.
fn check_request_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (result, usage) = testalloc::measure(|| wire::decode_request::<RaftKvRequest>(bytes));
    within_bound(usage, bytes.len())?;
    if let Err(e) = result {
        prop_assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    }
    Ok(())
}

fn check_response_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (result, usage) = testalloc::measure(|| wire::decode::<Response<RaftKvResponse>>(bytes));
    within_bound(usage, bytes.len())?;
    if let Ok(r) = result {
        // Whatever decodes encodes back to a response that decodes to the same.
        let again = wire::encode(&r).expect("encode");
        let twice = wire::decode::<Response<RaftKvResponse>>(&again).expect("decode");
        same_response(&twice, &r)?;
    }
    Ok(())
}

/// Equal responses, but for a `ServerError`'s kind: tarpc writes it as an i32 and reads it as
/// a u32, so with bincode's varints (zigzag for signed) only `NotFound` (0) comes back as
/// itself. Our clients treat every `ServerError` alike; only the detail is compared.
fn same_response(
    got: &Response<RaftKvResponse>,
    want: &Response<RaftKvResponse>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.request_id, want.request_id);
    match (&got.message, &want.message) {
        (Ok(_), Ok(_)) => prop_assert_eq!(wire::encode(got).ok(), wire::encode(want).ok()),
        (Err(a), Err(b)) => prop_assert_eq!(&a.detail, &b.detail),
        _ => prop_assert!(false, "Ok and Err swapped"),
    }
    Ok(())
}

fn tarpc_encode<T: Serialize + Unpin>(item: &T) -> Vec<u8> {
    use std::pin::Pin;
    use tarpc::tokio_serde::Serializer;
    use tarpc::tokio_serde::formats::Bincode;
    let mut codec = Bincode::<T, T>::default();
    Pin::new(&mut codec)
        .serialize(item)
        .expect("encode")
        .to_vec()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn requests_round_trip_through_the_server_codec(
        id in any::<u64>(),
        deadline_ms in 0..3_600_000u64,
        message in request(),
    ) {
        let sent = client_message(id, deadline_ms, message);
        // The bytes a client writes: tarpc's own codec.
        let bytes = tarpc_encode(&sent);
        let got = wire::decode_request::<RaftKvRequest>(&bytes)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (ClientMessage::Request(sent), ClientMessage::Request(got)) = (sent, got) else {
            return Err(TestCaseError::fail("not a request"));
        };
        prop_assert_eq!(got.id, sent.id);
        prop_assert_eq!(got.context.trace_context, sent.context.trace_context);
        prop_assert_eq!(wire::encode(&got.message).ok(), wire::encode(&sent.message).ok());
        // The deadline travels as a duration: it comes back within the time this took.
        let skew = got.context.deadline.max(sent.context.deadline)
            - got.context.deadline.min(sent.context.deadline);
        prop_assert!(skew < Duration::from_secs(5), "deadline moved by {skew:?}");
    }

    #[test]
    fn responses_round_trip_and_match_the_client_codec(r in response()) {
        let bytes = wire::encode(&r).expect("encode");
        prop_assert_eq!(&bytes, &tarpc_encode(&r), "the server writes what clients read");
        let back = wire::decode::<Response<RaftKvResponse>>(&bytes)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        same_response(&back, &r)?;
    }

    #[test]
    fn request_frames_of_arbitrary_bytes_decode_or_fail(b in bytes(1024)) {
        check_request_decode(&b)?;
    }

    #[test]
    fn response_frames_of_arbitrary_bytes_decode_or_fail(b in bytes(1024)) {
        check_response_decode(&b)?;
    }

    #[test]
    fn mutated_request_frames_decode_or_fail(
        message in request(),
        m in mutate::mutations(),
    ) {
        let mut bytes = tarpc_encode(&client_message(1, 1000, message));
        mutate::apply(&mut bytes, &m);
        check_request_decode(&bytes)?;
    }

    #[test]
    fn mutated_response_frames_decode_or_fail(r in response(), m in mutate::mutations()) {
        let mut bytes = wire::encode(&r).expect("encode");
        mutate::apply(&mut bytes, &m);
        check_response_decode(&bytes)?;
    }
}

// ---------------------------------------------------------------------------------------------
// The commands inside the frames: kvraft's

fn kv_command() -> impl Strategy<Value = KvCommand> {
    (
        prop_oneof![Just(OpKind::Get), Just(OpKind::Put), Just(OpKind::Append)],
        ".{0,12}",
        ".{0,24}",
    )
        .prop_map(|(kind, key, value)| KvCommand { kind, key, value })
}

fn check_kv_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (result, usage) = testalloc::measure(|| {
        (
            postcard::from_bytes::<KvCommand>(bytes).is_ok(),
            postcard::from_bytes::<String>(bytes).is_ok(),
            Store::default().restore(bytes).is_ok(),
        )
    });
    within_bound(usage, bytes.len())?;
    let _ = result;
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn kv_commands_round_trip(c in kv_command()) {
        let bytes = postcard::to_stdvec(&c).expect("encode");
        prop_assert_eq!(postcard::from_bytes::<KvCommand>(&bytes).ok(), Some(c));
    }

    #[test]
    fn kv_store_snapshots_round_trip(commands in proptest::collection::vec(kv_command(), 0..24)) {
        let mut store = Store::default();
        for c in commands {
            store.apply(c);
        }
        let mut back = Store::default();
        back.restore(&store.snapshot()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, store);
    }

    #[test]
    fn kv_bytes_of_arbitrary_content_decode_or_fail(b in bytes(1024)) {
        check_kv_decode(&b)?;
    }

    #[test]
    fn mutated_kv_commands_and_snapshots_decode_or_fail(
        c in kv_command(),
        commands in proptest::collection::vec(kv_command(), 0..8),
        m in mutate::mutations(),
    ) {
        let mut bytes = postcard::to_stdvec(&c).expect("encode");
        mutate::apply(&mut bytes, &m);
        check_kv_decode(&bytes)?;
        let mut store = Store::default();
        for c in commands {
            store.apply(c);
        }
        let mut snapshot = store.snapshot();
        mutate::apply(&mut snapshot, &m);
        check_kv_decode(&snapshot)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions and edge cases

#[test]
fn regression_a_request_deadline_past_the_clock_is_an_error_not_a_panic() {
    // `Status { cluster: 1 }` with a deadline of u64::MAX seconds: tarpc's own decoding
    // computes `Instant::now() + deadline` and panics, killing the connection's task.
    let mut bytes = tarpc_encode(&client_message(
        7,
        1000,
        RaftKvRequest::Status { cluster: 1 },
    ));
    // Variant 0 (Request), then the deadline's seconds (varint) and nanoseconds.
    let secs_at = 1;
    let huge = [vec![0], vec![0xfd], vec![0xff; 8], vec![0]].concat();
    let rest = {
        // Skip the original deadline: its seconds (one byte, < 251) and nanoseconds (varint).
        let nanos_len = match bytes[secs_at + 1] {
            0..=250 => 1,
            251 => 3,
            252 => 5,
            _ => 9,
        };
        bytes.split_off(secs_at + 1 + nanos_len)
    };
    let frame = [huge, rest].concat();
    let tarpc_decode =
        std::panic::catch_unwind(|| wire::decode::<ClientMessage<RaftKvRequest>>(&frame).is_ok());
    assert!(
        tarpc_decode.is_err(),
        "tarpc's decoding of this frame panics"
    );
    let err = wire::decode_request::<RaftKvRequest>(&frame).expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("deadline"), "{err}");
    // A deadline just within the limit still decodes.
    let ok = client_message(
        8,
        wire::MAX_DEADLINE.as_millis() as u64 - 60_000,
        RaftKvRequest::Status { cluster: 1 },
    );
    assert!(wire::decode_request::<RaftKvRequest>(&tarpc_encode(&ok)).is_ok());
}

#[test]
fn huge_lengths_in_a_step_request_are_errors_without_allocating() {
    // bincode's varint of u64::MAX in place of the entry count (an empty AppendEntries ends
    // with it, then `leader_commit` and `round`: 0, 0, 0) and of the snapshot's length (the
    // last byte of an empty InstallSnapshot).
    let huge = [vec![0xfd], vec![0xff; 8]].concat();
    let append = Message::AppendEntries(AppendEntries {
        term: Term(1),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![],
        leader_commit: LogIndex(0),
        round: 0,
    });
    let snapshot = Message::InstallSnapshot(InstallSnapshot {
        term: Term(1),
        last_included_index: LogIndex(0),
        last_included_term: Term(0),
        membership: None,
        data: vec![],
    });
    for (msg, from_end) in [(append, 3), (snapshot, 1)] {
        let env = Envelope {
            from: NodeId(0),
            to: NodeId(1),
            msg,
        };
        let request = RaftKvRequest::Step { cluster: 1, env };
        let bytes = tarpc_encode(&client_message(1, 1000, request));
        let at = bytes.len() - from_end;
        assert_eq!(bytes[at], 0, "the empty length");
        let frame = [&bytes[..at], &huge[..], &bytes[at + 1..]].concat();
        let (result, usage) = testalloc::measure(|| wire::decode_request::<RaftKvRequest>(&frame));
        assert!(result.is_err());
        assert!(usage.peak < 2 << 20, "{usage:?}");
    }
}

#[test]
fn regression_a_snapshot_file_through_u64_max_is_corrupt() {
    // Opening compacted the log to the snapshot, then wrote a WAL whose entries start at
    // index u64::MAX + 1: an overflow panic, or in a release build a WAL that fails to reopen.
    let dir = TempDir::new();
    write_valid(dir.path(), Options::default(), &[]);
    write(
        dir.path(),
        SNAPSHOT_FILE,
        &snapshot_file(u64::MAX, 1, &[], b"s"),
    );
    let result = DiskStorage::open(dir.path());
    assert!(
        matches!(result, Err(StorageError::Corrupt { .. })),
        "{result:?}"
    );
}

#[test]
fn regression_wal_records_running_past_u64_max_are_corrupt() {
    let two = vec![Entry::new(Term(1), vec![]); 2];
    let cases = [
        // The base at the largest index, then entries after it.
        (
            u64::MAX,
            vec![
                Record::SnapshotBase {
                    index: LogIndex(u64::MAX),
                    term: Term(1),
                },
                Record::Entries {
                    from: LogIndex(u64::MAX),
                    entries: vec![],
                },
            ],
        ),
        // Two entries from the largest index: the second has none.
        (
            u64::MAX - 1,
            vec![
                Record::SnapshotBase {
                    index: LogIndex(u64::MAX - 1),
                    term: Term(1),
                },
                Record::Entries {
                    from: LogIndex(u64::MAX),
                    entries: two,
                },
            ],
        ),
    ];
    for (snapshot, records) in cases {
        let dir = TempDir::new();
        write(
            dir.path(),
            WAL_FILE,
            &[&WAL_MAGIC[..], &frame(&records)].concat(),
        );
        write(
            dir.path(),
            SNAPSHOT_FILE,
            &snapshot_file(snapshot, 1, &[], b"s"),
        );
        let result = DiskStorage::open(dir.path());
        assert!(
            matches!(result, Err(StorageError::Corrupt { .. })),
            "{records:?}: {result:?}"
        );
    }
}

#[test]
fn regression_a_damaged_first_wal_frame_is_corrupt_not_an_empty_state() {
    // The first frame is always written whole (aside, synced, renamed), so damage to it is
    // never a torn append: opening used to drop it and start from term 0 with no vote, a
    // node that could vote twice in a term.
    let ops = [
        Op::Vote(3, Some(1)),
        Op::Append(0, vec![Entry::new(Term(3), b"x".to_vec())]),
    ];
    for cut in [8usize, 8 + 5, 8 + 12, 8 + 13] {
        let dir = TempDir::new();
        // A rewrite at every save: the WAL is one frame holding everything.
        let options = Options {
            rewrite_min_bytes: 0,
            rewrite_ratio: 1,
        };
        let saved = write_valid(dir.path(), options, &ops);
        assert_eq!(saved.term, Term(3));
        let wal = dir.path().join(WAL_FILE);
        let bytes = fs::read(&wal).expect("read");
        fs::write(&wal, &bytes[..cut]).expect("cut");
        let result = DiskStorage::open(dir.path()).map(|d| d.load_state().map(|s| s.0.term));
        assert!(
            matches!(result, Err(StorageError::Corrupt { .. })),
            "cut at {cut}: {result:?}"
        );
    }
}
