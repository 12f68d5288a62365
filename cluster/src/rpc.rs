//! The RPC interface nodes serve over TCP (a tarpc service): Raft's messages between nodes,
//! commands for the node's state machine, and status for `raftlab cluster status`. Every call
//! carries the cluster id, and a node refuses calls from another cluster.
//!
//! Commands and outputs travel as bytes (postcard) so that one service serves any
//! [`rsm::StateMachine`]: the node decodes a command with its machine's `Command` type. Reads
//! ([`RaftKv::read`]) carry the same command bytes as [`RaftKv::submit`]: one codec for both.

use std::net::SocketAddr;

use raft::{ConfChange, Envelope};
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
    /// The configuration this node acts on (the latest in its log, committed or not).
    pub membership: MembershipStatus,
}

/// A configuration as `status` reports it (raft::Membership with plain ids).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipStatus {
    pub voters: Vec<u64>,
    /// While joint: the old configuration's voters.
    pub outgoing: Vec<u64>,
    pub learners: Vec<u64>,
    /// The index of its entry (0: the bootstrap configuration or the snapshot's).
    pub index: u64,
}

impl MembershipStatus {
    pub fn of(m: &raft::Membership, index: u64) -> MembershipStatus {
        let ids = |s: &std::collections::BTreeSet<raft::NodeId>| s.iter().map(|n| n.0).collect();
        MembershipStatus {
            voters: ids(&m.voters),
            outgoing: ids(&m.outgoing),
            learners: ids(&m.learners),
            index,
        }
    }

    pub fn is_voter(&self, id: u64) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    pub fn is_learner(&self, id: u64) -> bool {
        self.learners.contains(&id) && !self.is_voter(id)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.is_voter(id) || self.learners.contains(&id)
    }

    /// Its role for node `id`: `voter`, `learner` or `-` (not a member).
    pub fn role_of(&self, id: u64) -> &'static str {
        if self.is_voter(id) {
            "voter"
        } else if self.is_learner(id) {
            "learner"
        } else {
            "-"
        }
    }
}

impl std::fmt::Display for MembershipStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        write!(f, "voters {{{}}}", list(&self.voters))?;
        if !self.outgoing.is_empty() {
            write!(f, " outgoing {{{}}}", list(&self.outgoing))?;
        }
        if !self.learners.is_empty() {
            write!(f, " learners {{{}}}", list(&self.learners))?;
        }
        Ok(())
    }
}

/// Why a membership change was not made (raft::ConfChangeError over the wire, plus what the
/// node saw while waiting for it to commit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MembershipFailure {
    #[error("node {at} is not the leader (leader hint: {hint:?})")]
    NotLeader { at: u64, hint: Option<u64> },
    /// Retry shortly: the leader appended a no-op to commit an entry of its term.
    #[error("no entry of the leader's term has committed yet; retry shortly")]
    NotCommittedInTerm,
    /// Retry once the earlier change has committed.
    #[error("the configuration change at index {0} has not committed yet")]
    InProgress(u64),
    /// Wait for the node to catch up (as a learner), then retry.
    #[error("node {node} is {behind} entries behind the leader (at most {lag} allowed)")]
    Behind { node: u64, behind: u64, lag: u64 },
    #[error("node {0} already has that role")]
    NoChange(u64),
    #[error("node {0} is not a member")]
    NotMember(u64),
    /// The entry was appended but the leader lost its leadership, or the entry did not commit
    /// within the wait: look at the configuration (`status`) and retry if needed.
    #[error("the change at index {index} was appended but its commit is unknown: {why}")]
    Unknown { index: u64, why: String },
    /// A leadership transfer or a joint configuration is under way: retry shortly.
    #[error("the leader is busy ({0}); retry shortly")]
    Busy(String),
    #[error("the change was refused: {0}")]
    Refused(String),
}

impl MembershipFailure {
    /// Whether the same change may succeed if asked again shortly (possibly of another node).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MembershipFailure::NotLeader { .. }
                | MembershipFailure::NotCommittedInTerm
                | MembershipFailure::InProgress(_)
                | MembershipFailure::Behind { .. }
                | MembershipFailure::Unknown { .. }
                | MembershipFailure::Busy(_)
        )
    }
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
    /// This node does not lead; `leader` is the client address of the node it follows in
    /// its current term, if it knows one: ask that one next.
    #[error("not the leader (the leader is {})", leader.map_or("unknown".to_string(), |a| a.to_string()))]
    NotLeader { leader: Option<SocketAddr> },
    /// Not here (lost its place, timed out): try another node.
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
    /// Admin: node `id` is at `addr` (a node joining the cluster; the address is kept until
    /// the process exits: restarts get every address from their command line).
    async fn add_peer(cluster: u64, id: u64, addr: SocketAddr) -> Result<(), WrongCluster>;
    /// Admin: asks the leader to change the configuration (raft::Node::change_membership) and
    /// waits (a few seconds at most) until the entry commits; returns its index.
    async fn change_membership(
        cluster: u64,
        change: ConfChange,
    ) -> Result<Result<u64, MembershipFailure>, WrongCluster>;
    /// Admin, once this node's removal has committed: marks its data directory as removed,
    /// so that it never starts again (the caller then stops the process).
    async fn retire(cluster: u64) -> Result<Result<(), String>, WrongCluster>;
}
