//! What clerks and servers say to each other, and what goes into the Raft log.

use serde::{Deserialize, Serialize};

/// The three operations of the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    Get,
    Put,
    Append,
}

/// One client operation, as a clerk sends it.
///
/// `(client_id, seq)` identifies it: a clerk numbers its operations 1, 2, 3, ... and retries
/// an operation with the same number until it gets an answer, so the servers can apply each
/// operation exactly once however many times it was submitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub client_id: u64,
    pub seq: u64,
    pub kind: OpKind,
    pub key: String,
    pub value: String,
}

/// What goes into the log for an [`Op`]: the operation without its session (the `rsm` layer
/// carries that).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvCommand {
    pub kind: OpKind,
    pub key: String,
    pub value: String,
}

/// Why a server did not carry out a request. The clerk retries elsewhere on all of them.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KvError {
    /// This server is not the leader (or lost leadership before the operation committed).
    #[error("wrong leader")]
    WrongLeader,
    /// The operation did not commit in time (e.g. the leader is in a minority).
    #[error("timed out waiting for the operation to commit")]
    Timeout,
    /// The server is shutting down.
    #[error("server shutting down")]
    ShuttingDown,
}

/// The reply to an [`Op`]: the value for a Get (empty for a missing key), empty otherwise.
pub type Reply = Result<String, KvError>;

/// The labrpc method a KV server serves.
pub const COMMAND_METHOD: &str = "KVServer.Command";
