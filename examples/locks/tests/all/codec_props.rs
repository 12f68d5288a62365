//! Property tests of the lock service's bytes: its commands and replies as they travel
//! (postcard, inside the cluster's frames) and its snapshot ([`LockTable::restore`]). Valid
//! values round-trip; arbitrary bytes and mutated encodings never panic and give an error or
//! a value. 256 cases per property; `PROPTEST_CASES=N` runs N.

use locks::{LockCommand, LockReply, LockTable};
use proptest::prelude::*;
use proptest::sample::Index;
use rsm::StateMachine;

/// 256 cases unless `PROPTEST_CASES` says otherwise.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = match std::env::var_os("PROPTEST_CASES") {
        Some(_) => default.cases,
        None => 256,
    };
    ProptestConfig { cases, ..default }
}

fn command() -> impl Strategy<Value = LockCommand> {
    prop_oneof![
        ("[a-c]{1,2}", "[x-z]{1,2}").prop_map(|(lock, owner)| LockCommand::Acquire { lock, owner }),
        ("[a-c]{1,2}", "[x-z]{1,2}").prop_map(|(lock, owner)| LockCommand::Release { lock, owner }),
        (".{0,12}", ".{0,12}").prop_map(|(lock, owner)| LockCommand::Acquire { lock, owner }),
    ]
}

fn reply() -> impl Strategy<Value = LockReply> {
    prop_oneof![
        any::<u64>().prop_map(|token| LockReply::Acquired { token }),
        (".{0,12}", any::<u64>()).prop_map(|(owner, token)| LockReply::Held { owner, token }),
        Just(LockReply::Released),
        Just(LockReply::NotHolder),
    ]
}

/// Damage: bit flips, inserted bytes (favouring postcard's varint of `u64::MAX`), deletions,
/// a cut.
fn damage(bytes: &mut Vec<u8>, edits: &[(u8, Index, u8)]) {
    for &(kind, i, b) in edits {
        let len = bytes.len();
        match kind % 4 {
            0 if len > 0 => bytes[i.index(len)] ^= 1 << (b % 8),
            1 => {
                let at = i.index(len + 1);
                let insert = if b % 2 == 0 {
                    [vec![0xff; 9], vec![0x01]].concat()
                } else {
                    vec![b]
                };
                bytes.splice(at..at, insert);
            }
            2 if len > 0 => {
                bytes.remove(i.index(len));
            }
            3 => bytes.truncate(i.index(len + 1)),
            _ => {}
        }
    }
}

fn decode_anything(bytes: &[u8]) {
    let _ = postcard::from_bytes::<LockCommand>(bytes);
    let _ = postcard::from_bytes::<LockReply>(bytes);
    let _ = LockTable::default().restore(bytes);
}

fn edits() -> impl Strategy<Value = Vec<(u8, Index, u8)>> {
    proptest::collection::vec((any::<u8>(), any::<Index>(), any::<u8>()), 1..4)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn commands_and_replies_round_trip(c in command(), r in reply()) {
        let bytes = postcard::to_stdvec(&c).expect("encode");
        prop_assert_eq!(postcard::from_bytes::<LockCommand>(&bytes).ok(), Some(c));
        let bytes = postcard::to_stdvec(&r).expect("encode");
        prop_assert_eq!(postcard::from_bytes::<LockReply>(&bytes).ok(), Some(r));
    }

    #[test]
    fn snapshots_round_trip(commands in proptest::collection::vec(command(), 0..24)) {
        let mut table = LockTable::default();
        for c in commands {
            table.apply(c);
        }
        let mut back = LockTable::default();
        back.restore(&table.snapshot()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, table);
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_anything(&b);
    }

    #[test]
    fn mutated_commands_and_snapshots_decode_or_fail(
        c in command(),
        commands in proptest::collection::vec(command(), 0..8),
        e in edits(),
    ) {
        let mut bytes = postcard::to_stdvec(&c).expect("encode");
        damage(&mut bytes, &e);
        decode_anything(&bytes);
        let mut table = LockTable::default();
        for c in commands {
            table.apply(c);
        }
        let mut snapshot = table.snapshot();
        damage(&mut snapshot, &e);
        decode_anything(&snapshot);
    }
}
