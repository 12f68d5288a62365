//! Property tests of the layer's decoders of bytes it reads back: its log entries
//! ([`Entry`]: session and command, postcard) and its snapshots ([`Snapshot`]: the sessions
//! and the machine's own snapshot, decoded with [`decode_state`] and restored as the replica
//! does; `rsm/src/replica.rs` is a student's file, so the tests live here). Valid values round-trip;
//! arbitrary bytes and mutated encodings never panic and give a [`CorruptSnapshot`] or a
//! value. 256 cases per property; `PROPTEST_CASES=N` runs N.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use serde::{Deserialize, Serialize};

use super::{Entry, Session, Sessions, Snapshot};
use crate::machine::{CorruptSnapshot, StateMachine, decode_state, encode_state};

/// The layer's snapshot of `machine` with `sessions`, as the replica writes it.
fn encode<M: StateMachine>(sessions: &Sessions<M::Output>, machine: &M) -> Vec<u8> {
    encode_state(&Snapshot {
        sessions: sessions.clone(),
        machine: machine.snapshot(),
    })
}

/// The sessions and the machine from a layer's snapshot, as the replica restores them.
fn decode<M: StateMachine>(
    bytes: &[u8],
    machine: &mut M,
) -> Result<Sessions<M::Output>, CorruptSnapshot> {
    let snap: Snapshot<M::Output> = decode_state(bytes)?;
    machine.restore(&snap.machine)?;
    Ok(snap.sessions)
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

/// A small key/value machine: its commands carry strings, its snapshot is the map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Kv {
    map: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Cmd {
    Put(String, String),
    Get(String),
    Delete { key: String, if_present: bool },
}

impl StateMachine for Kv {
    type Command = Cmd;
    type Output = Option<String>;

    fn apply(&mut self, command: Cmd) -> Option<String> {
        match command {
            Cmd::Put(k, v) => self.map.insert(k, v),
            Cmd::Get(k) => self.map.get(&k).cloned(),
            Cmd::Delete { key, .. } => self.map.remove(&key),
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        encode_state(self)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), CorruptSnapshot> {
        *self = decode_state(snapshot)?;
        Ok(())
    }
}

fn wild() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0..16u64, 1 => any::<u64>()]
}

fn session() -> impl Strategy<Value = Session> {
    (wild(), wild()).prop_map(|(client, seq)| Session { client, seq })
}

fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        (".{0,8}", ".{0,16}").prop_map(|(k, v)| Cmd::Put(k, v)),
        ".{0,8}".prop_map(Cmd::Get),
        (".{0,8}", any::<bool>()).prop_map(|(key, if_present)| Cmd::Delete { key, if_present }),
    ]
}

fn entry_bytes(session: Option<Session>, command: &Cmd) -> Vec<u8> {
    #[derive(Serialize)]
    struct Written<'a> {
        session: Option<Session>,
        command: &'a Cmd,
    }
    postcard::to_stdvec(&Written { session, command }).expect("encode")
}

/// A machine and the sessions of the clients that drove it.
fn replica() -> impl Strategy<Value = (Sessions<Option<String>>, Kv)> {
    proptest::collection::vec((proptest::option::of(session()), cmd()), 0..24).prop_map(|ops| {
        let mut sessions = Sessions::default();
        let mut kv = Kv::default();
        for (s, c) in ops {
            let out = kv.apply(c);
            if let Some(s) = s {
                sessions.record(s, out);
            }
        }
        (sessions, kv)
    })
}

/// Damage: bit flips, overwritten, inserted (favouring postcard's varint of `u64::MAX`,
/// a huge length) and deleted bytes, a cut.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let huge = [vec![0xff; 9], vec![0x01]].concat();
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<Index>(),
            prop_oneof![Just(huge), proptest::collection::vec(any::<u8>(), 1..4)]
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1..6usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Flip(i, b) if len > 0 => bytes[i.index(len)] ^= 1 << b,
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

/// Decodes `bytes` as an entry and as a snapshot: no panic, an error or a value.
fn decode_anything(bytes: &[u8]) {
    let _ = postcard::from_bytes::<Entry<Cmd>>(bytes);
    let mut kv = Kv::default();
    let _ = decode(bytes, &mut kv);
    let _ = decode_state::<Kv>(bytes);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn entries_round_trip(session in proptest::option::of(session()), command in cmd()) {
        let bytes = entry_bytes(session, &command);
        let e: Entry<Cmd> = postcard::from_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(e.session, session);
        prop_assert_eq!(e.command, command);
    }

    #[test]
    fn snapshots_round_trip((sessions, kv) in replica()) {
        let bytes = encode(&sessions, &kv);
        let mut back = Kv::default();
        let restored = decode(&bytes, &mut back).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &kv);
        prop_assert_eq!(encode_state(&restored), encode_state(&sessions));
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail(b in proptest::collection::vec(any::<u8>(), 0..1024)) {
        decode_anything(&b);
    }

    #[test]
    fn mutated_entries_and_snapshots_decode_or_fail(
        session in proptest::option::of(session()),
        command in cmd(),
        (sessions, kv) in replica(),
        m in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut entry = entry_bytes(session, &command);
        mutate(&mut entry, &m);
        decode_anything(&entry);
        let mut snapshot = encode(&sessions, &kv);
        mutate(&mut snapshot, &m);
        decode_anything(&snapshot);
    }
}

#[test]
fn a_huge_session_count_is_corrupt() {
    // A snapshot whose sessions table claims 2^64 - 1 clients.
    let bytes = [vec![0xff; 9], vec![0x01]].concat();
    let mut kv = Kv::default();
    let err = decode(&bytes, &mut kv).expect_err("corrupt");
    assert_eq!(err.len, bytes.len());
}
