//! The RPC interface nodes serve over TCP (a tarpc service): Raft's messages between nodes,
//! commands for the node's state machine, and status for `raftlab cluster status`. Every call
//! carries the cluster id, and a node refuses calls from another cluster.
//!
//! Commands and outputs travel as bytes (postcard) so that one service serves any
//! [`rsm::StateMachine`]: the node decodes a command with its machine's `Command` type. Reads
//! ([`RaftKv::read`]) carry the same command bytes as [`RaftKv::submit`]: one codec for both.

use raft::Envelope;
use rsm::{Session, SubmitError};
use serde::{Deserialize, Serialize};

use crate::faults::{FaultInjectionDisabled, FaultTable};

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
    /// The last AppendEntries or InstallSnapshot this node received: (from, milliseconds ago).
    pub leader_contact: Option<(u64, u64)>,
    /// What this node knows of every other node (for a leader: its followers).
    pub peers: Vec<PeerContact>,
    /// The follower a leadership transfer is under way to (on the leader).
    pub transferring_to: Option<u64>,
    /// The Raft extensions this node runs with.
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub lease_reads: bool,
}

/// One peer as a node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerContact {
    pub id: u64,
    /// Milliseconds since the last message from it (`None`: nothing since this node started).
    pub heard_ms_ago: Option<u64>,
    /// Milliseconds since the first of its calls to it that got no answer, if its last call
    /// got none (`None`: reachable, or never called).
    pub unreachable_ms: Option<u64>,
}

/// Why a leader did not start a leadership transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TransferFailure {
    #[error("node {at} is not the leader (leader hint: {hint:?})")]
    NotLeader { at: u64, hint: Option<u64> },
    #[error("node {0} is not a member of this cluster")]
    UnknownNode(u64),
    #[error("node {0} is already the leader")]
    AlreadyLeader(u64),
    #[error("a transfer to node {0} is already under way")]
    InProgress(u64),
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
    /// A command that only reads the state (postcard bytes, as for `submit`), answered with no
    /// log entry: the leader confirms its leadership (ReadIndex, thesis 6.4) and answers once
    /// it has applied everything committed when the read arrived. `BadCommand` if the
    /// command is not a read or this node's machine serves no reads.
    async fn read(
        cluster: u64,
        command: Vec<u8>,
    ) -> Result<Result<Vec<u8>, SubmitFailure>, WrongCluster>;
    /// Asks the leader to hand its leadership to node `to` (thesis 3.10). Returns once the
    /// transfer started; watch `status` for the outcome.
    async fn transfer(cluster: u64, to: u64) -> Result<Result<(), TransferFailure>, WrongCluster>;
    /// The node's state.
    async fn status(cluster: u64) -> Result<NodeStatus, WrongCluster>;
    /// Admin, for chaos testing: replaces the node's fault table (which peers' Raft messages
    /// it drops or delays) and returns the previous one. Refused with
    /// [`FaultInjectionDisabled`] unless the node was started with `--allow-fault-injection`.
    async fn set_faults(
        cluster: u64,
        table: FaultTable,
    ) -> Result<Result<FaultTable, FaultInjectionDisabled>, WrongCluster>;
}
