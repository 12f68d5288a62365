//! The RPC interface nodes serve over TCP (a tarpc service): Raft's messages between nodes,
//! commands for the node's state machine, and status for `raftlab cluster status`. Every call
//! carries the cluster id, and a node refuses calls from another cluster.
//!
//! Commands and outputs travel as bytes (postcard) so that one service serves any
//! [`rsm::StateMachine`]: the node decodes a command with its machine's `Command` type.

use raft::Envelope;
use rsm::{Session, SubmitError};
use serde::{Deserialize, Serialize};

/// Refusal of a call that carries another cluster's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("this node belongs to cluster {expected:016x}, not {got:016x}")]
pub struct WrongCluster {
    pub expected: u64,
    pub got: u64,
}

/// What `raftlab cluster status` shows for a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    pub pid: u32,
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    /// Bytes of Raft state on disk (write-ahead log).
    pub log_bytes: u64,
}

/// Why a node did not carry out a submitted command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SubmitFailure {
    /// Not here (not the leader, lost its place, timed out): try another node.
    #[error(transparent)]
    Retry(#[from] SubmitError),
    /// The bytes are not a command of this node's state machine.
    #[error("not a command of this cluster's state machine: {0}")]
    BadCommand(String),
}

#[tarpc::service]
pub trait RaftKv {
    /// The cluster this node belongs to (the one call that needs no id: clients learn it here).
    async fn cluster_id() -> u64;
    /// A Raft request from another node; returns its reply.
    async fn step(cluster: u64, env: Envelope) -> Result<Option<Envelope>, WrongCluster>;
    /// A command for the state machine (postcard bytes), as `session` if given (exactly once);
    /// returns the output (postcard bytes).
    async fn submit(
        cluster: u64,
        session: Option<Session>,
        command: Vec<u8>,
    ) -> Result<Result<Vec<u8>, SubmitFailure>, WrongCluster>;
    /// The node's state.
    async fn status(cluster: u64) -> Result<NodeStatus, WrongCluster>;
}
