//! The RPC interface nodes serve over TCP (a tarpc service): Raft's messages between nodes,
//! client operations, and status for `raftlab cluster status`. Every call carries the cluster
//! id, and a node refuses calls from another cluster.

use kvraft::{Op, Reply};
use raft::Envelope;
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

#[tarpc::service]
pub trait RaftKv {
    /// The cluster this node belongs to (the one call that needs no id: clients learn it here).
    async fn cluster_id() -> u64;
    /// A Raft request from another node; returns its reply.
    async fn step(cluster: u64, env: Envelope) -> Result<Option<Envelope>, WrongCluster>;
    /// A client operation (Get/Put/Append).
    async fn command(cluster: u64, op: Op) -> Result<Reply, WrongCluster>;
    /// The node's state.
    async fn status(cluster: u64) -> Result<NodeStatus, WrongCluster>;
}
