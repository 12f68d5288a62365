//! Helpers shared by the core's unit tests.

use raft::core::Persisted;
use raft::{Envelope, Message, NodeId, Raft};

/// Persists (into nothing) and releases the outputs.
pub fn out(r: &mut Raft) -> Persisted {
    r.ready().persist(|_| Ok::<(), ()>(())).expect("persist")
}

pub fn env(from: u64, to: u64, msg: Message) -> Envelope {
    Envelope {
        from: NodeId(from),
        to: NodeId(to),
        msg,
    }
}
